"""Why backprop: the cost of a full gradient by finite differences against backprop, measured.

For MLPs of growing parameter count P, ``measure`` times (float64, one fixed batch):

- one forward pass (the unit of cost);
- the gradient by forward finite differences: one extra forward pass per parameter,
  (L(θ + ε e_i) − L(θ)) / ε, so P + 1 passes; run in full while it is predicted to take at most
  ``fd_budget`` seconds; beyond that, 64 random coordinates are computed (and checked) and the
  time is extrapolated as (P + 1) x their median time per pass;
- the gradient by backprop: one forward and one backward pass.

and checks that the two gradients agree: max |g_fd − g_bp| <= ``RTOL`` x max(1, max |g_bp|)
(forward differences with ε = 1e-7 in float64 are good to about 1e-6 here).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import backprop as bp
from backprop import nn

__all__ = ["HIDDEN", "RTOL", "CostRow", "measure", "plot"]

HIDDEN = (2, 8, 16, 30, 55, 100, 175, 315)  # h-h-1 tanh MLPs: 9 to 99,856 parameters
RTOL = 1e-4
EPS = 1e-7


@dataclass
class CostRow:
    """One network's measurements (seconds)."""

    params: int
    forward: float
    backprop: float  # one forward + one backward
    finite_difference: float  # P + 1 forward passes (measured or extrapolated)
    extrapolated: bool
    max_abs_diff: float  # between the two gradients, on the coordinates compared
    checked: int  # coordinates compared
    agree: bool

    @property
    def backward(self) -> float:
        """The backward pass alone: backprop minus one forward."""
        return max(self.backprop - self.forward, 0.0)


def _timed(fn, min_time: float = 0.2, min_reps: int = 10) -> float:
    """The fastest of repeated runs (the least disturbed by other processes)."""
    best, total, reps = math.inf, 0.0, 0
    while reps < min_reps or total < min_time:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best


def _network(h: int, seed: int):
    bp.manual_seed(seed)
    model = nn.Sequential(nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 1)).double()
    rng = np.random.default_rng(seed)
    x = bp.tensor(rng.standard_normal((32, h)))
    y = bp.tensor(rng.standard_normal((32, 1)))
    return model, x, y


def measure(hidden: Sequence[int] = HIDDEN, fd_budget: float = 4.0, seed: int = 0,
            log=None) -> list[CostRow]:
    """Time the gradient both ways for h-h-1 tanh MLPs (batch 32, MSE, float64).

    Args:
        hidden: the widths h (P = h² + 2h + 1 = (h + 1)² parameters each).
        fd_budget: run finite differences in full only when predicted to take at most this.
        seed: weights and data.
        log: called with a line of text per network (progress), or None.

    Timed with one BLAS thread (threadpoolctl), so that the unit is one plain forward pass.
    """
    try:  # scikit-learn's dependency, so normally present
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        limits = contextlib.nullcontext()
    else:
        # one BLAS thread: these small products gain nothing from two, and a multi-threaded
        # BLAS was seen to stall every call of one size for 10-20 ms after long loops
        limits = threadpool_limits(1)
    with limits:
        return _measure(hidden, fd_budget, seed, log)


def _measure(hidden, fd_budget, seed, log) -> list[CostRow]:
    rows = []
    for h in hidden:
        row = _one(h, fd_budget, seed)
        rows.append(row)
        if log is not None:
            log(_line(row))
    return rows


def _one(h: int, fd_budget: float, seed: int) -> CostRow:
    """Measure the h-h-1 network."""
    model, x, y = _network(h, seed)
    params = list(model.parameters())
    n_params = sum(p.data.size for p in params)

    def loss_value():
        with bp.no_grad():
            return float(nn.functional.mse_loss(model(x), y).item())

    def backprop_grad():
        for p in params:
            p.grad = None
        nn.functional.mse_loss(model(x), y).backward()

    # three interleaved rounds, the fastest of each kind: a burst of other work on the
    # machine during one round (seen: 100x slower calls for a second) does not decide
    forward = backprop = math.inf
    for _ in range(3):
        forward = min(forward, _timed(loss_value, min_time=0.05))
        backprop = min(backprop, _timed(backprop_grad, min_time=0.05))
    backprop_grad()
    g_bp = np.concatenate([p.grad.data.ravel() for p in params])
    predicted = (n_params + 1) * forward
    extrapolated = predicted > fd_budget
    if extrapolated:  # check a random sample of coordinates; time is extrapolated
        coords = np.sort(np.random.default_rng(seed).choice(n_params, 64, replace=False))
    else:
        coords = np.arange(n_params)
    t0 = time.perf_counter()
    base = loss_value()
    g_fd = np.empty(len(coords))
    flats = [p.data.reshape(-1) for p in params]
    offsets = np.cumsum([0] + [f.size for f in flats])
    passes = np.empty(len(coords))
    for k, c in enumerate(coords):
        t1 = time.perf_counter()
        j = int(np.searchsorted(offsets, c, side="right") - 1)
        flat, i = flats[j], c - offsets[j]
        old = flat[i]
        flat[i] = old + EPS
        g_fd[k] = (loss_value() - base) / EPS
        flat[i] = old
        passes[k] = time.perf_counter() - t1
    elapsed = time.perf_counter() - t0
    # extrapolated from the sampled passes' own median time (the same loop, so the same
    # overhead as a full run; the median, so a stall of the machine does not decide), times
    # the P + 1 passes a full run needs
    fd_time = float(np.median(passes)) * (n_params + 1) if extrapolated else elapsed
    diff = float(np.max(np.abs(g_fd - g_bp[coords])))
    agree = diff <= RTOL * max(1.0, float(np.max(np.abs(g_bp))))
    return CostRow(n_params, forward, backprop, fd_time, extrapolated, diff, len(coords),
                   agree)


def _line(r: CostRow) -> str:
    fd = f"{r.finite_difference:10.4f} s" + (" (extrapolated)" if r.extrapolated else "")
    return (f"{r.params:>9,} params  forward {r.forward * 1e3:8.3f} ms  backprop "
            f"{r.backprop * 1e3:8.3f} ms ({r.backprop / r.forward:4.2f} x forward)  "
            f"finite differences {fd}  max |diff| {r.max_abs_diff:.1e} over {r.checked:,} "
            f"coordinates {'agree' if r.agree else 'DISAGREE'}")


def plot(rows: list[CostRow], path) -> None:
    """Times against parameter count, log-log: finite differences (dashed where
    extrapolated), backprop (forward + backward) and one forward pass."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = np.array([r.params for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    measured = [r for r in rows if not r.extrapolated]
    extra = [r for r in rows if r.extrapolated]
    ax.plot([r.params for r in measured], [r.finite_difference for r in measured], "o-",
            color="#d2452f", label="finite differences (P + 1 forward passes), measured")
    if extra:
        tail = measured[-1:] + extra
        ax.plot([r.params for r in tail], [r.finite_difference for r in tail], "--",
                color="#d2452f")
        ax.plot([r.params for r in extra], [r.finite_difference for r in extra], "o",
                color="#d2452f", mfc="white", label="finite differences, extrapolated")
    ax.plot(p, [r.backprop for r in rows], "s-", color="#2f6fdf",
            label="backprop (one forward + one backward)")
    ax.plot(p, [r.forward for r in rows], "^:", color="#555555", label="one forward pass")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters P (h-h-1 tanh MLP, batch 32, float64)")
    ax.set_ylabel("seconds per full gradient")
    ax.set_title("The cost of a gradient: finite differences grow with P;\n"
                 "backprop stays a few forward passes")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8.5, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
