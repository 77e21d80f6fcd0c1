"""Exploding gradients in a vanilla RNN, and gradient-norm clipping as the cure.

    python examples/exploding_gradients.py

One tanh RNN is trained twice on the adding problem (the data generator of
``examples/lstm_adding.py``): the same data in the same order, the same initial weights, the same
plain SGD at the same learning rate; the only difference is that the second run rescales the
gradient with ``clip_grad_norm_`` to a norm of at most ``--clip`` before each step.

The recurrent matrix starts orthogonal times ``--gain`` > 1. Backpropagation through time
multiplies the gradient by the transposed recurrent Jacobian once per step back, and with weights
that large the product grows with the distance travelled: at the start the gradient of the
recurrent weights and biases is already several times that of the head, and it grows with T and
the gain (for hidden 32, T = 50 and gain 2 it is in the thousands). Plain SGD (no momentum, no
adaptive step size such as Adam's, which would hide the spike by normalising it) takes a step of
lr times that norm; the step lands where the gradient is larger still, and within a few dozen
steps the norms reach 1e7 and beyond, the weights overflow and the loss becomes NaN: training
never recovers. With clipping, no step moves the weights by more than ``lr * clip``, and the same
network, from the same start, learns.

The adding problem: sequences of T (value, marker) pairs, the values uniform in [0, 1], exactly
two markers; the target is the sum of the two marked values. Always predicting 1 (the mean of the
target) gives an MSE of 1/6 ~ 0.167, the baseline.

Reported for both runs after steps 1, 10, 25, 50, 100 and then every ``--eval-every`` steps: the
mean training loss since the previous report, the largest gradient norm (before clipping) since
the previous report and the test MSE; then a summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from pathlib import Path

import numpy as np

import backprop as bp
import backprop.nn.functional as F
from backprop import nn
from backprop.data import DataLoader, TensorDataset
from backprop.nn.utils import clip_grad_norm_
from backprop.optim import SGD


def _lstm_adding():
    """examples/lstm_adding.py as a module, loaded from its file (examples/ is not a package, and
    this script may be run from anywhere or loaded by the tests): its data and its data flags."""
    path = Path(__file__).resolve().with_name("lstm_adding.py")
    spec = importlib.util.spec_from_file_location("lstm_adding_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_adding = _lstm_adding()
adding_problem, positive = _adding.adding_problem, _adding.positive


class AddingRNN(nn.Module):
    """A one-layer tanh RNN over the sequence (batch_first), linear head on the last output; the
    recurrent matrix orthogonal times ``gain``."""

    def __init__(self, hidden_size: int, gain: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(2, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=gain)

    def forward(self, x: bp.Tensor) -> bp.Tensor:
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


def make_model(hidden_size: int, gain: float, seed: int) -> AddingRNN:
    """The model with the initial weights of ``seed``: the same for every call."""
    bp.manual_seed(seed)
    return AddingRNN(hidden_size, gain)


def grad_norm(model: nn.Module) -> float:
    """The 2-norm of all the gradients together (what ``clip_grad_norm_`` returns)."""
    return math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum())
                         for p in model.parameters() if p.grad is not None))


def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Mean squared error of ``model`` over ``loader`` (NaN once the weights are)."""
    model.eval()
    total = count = 0.0
    with bp.no_grad():
        for x, y in loader:
            total += float(((model(x).data.astype(np.float64) - y.data) ** 2).sum())
            count += len(y.data)
    model.train()
    return total / count


EARLY_REPORTS = (1, 10, 25, 50, 100)  # also reported (when before the first --eval-every)


def train(model: nn.Module, loader: DataLoader, test_loader: DataLoader, *, steps: int,
          lr: float, clip: float | None, eval_every: int) -> dict:
    """``steps`` steps of plain SGD at ``lr``, the gradient clipped to norm ``clip`` with
    ``clip_grad_norm_`` (None: not clipped). Returns per step ``losses`` and ``norms`` (the
    gradient norm before any clipping), and per report ``reports``: (step, mean train loss since
    the previous report, largest norm since the previous report, test MSE); reports come every
    ``eval_every`` steps, after the last step, and after the steps of ``EARLY_REPORTS`` that come
    before ``eval_every``."""
    optimizer = SGD(model.parameters(), lr=lr)
    losses, norms, reports = [], [], []
    step = last = 0
    early = {s for s in EARLY_REPORTS if s < eval_every}
    with np.errstate(over="ignore", invalid="ignore"):  # the unclipped run may overflow
        while step < steps:
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                if clip is None:
                    norms.append(grad_norm(model))
                else:
                    norms.append(float(clip_grad_norm_(model.parameters(), clip).item()))
                optimizer.step()
                losses.append(loss.item())
                step += 1
                if step % eval_every == 0 or step == steps or step in early:
                    reports.append((step, float(np.mean(losses[last:])),
                                    float(np.max(norms[last:])), evaluate(model, test_loader)))
                    last = step
                if step == steps:
                    break
    return {"losses": losses, "norms": norms, "reports": reports}


def positive_float(value: str) -> float:
    x = float(value)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return x


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    _adding.add_data_arguments(p, seq_len=20, train_size=50_000)
    p.add_argument("--steps", type=positive, default=4000, help="SGD steps of each run")
    p.add_argument("--eval-every", type=positive, default=500,
                   help="report train loss, largest grad norm and test MSE every N steps")
    p.add_argument("--batch-size", type=positive, default=32)
    p.add_argument("--hidden-size", type=positive, default=32)
    p.add_argument("--gain", type=positive_float, default=1.5,
                   help="the recurrent matrix starts orthogonal times this")
    p.add_argument("--lr", type=positive_float, default=0.1, help="SGD learning rate (both runs)")
    p.add_argument("--clip", type=positive_float, default=0.5,
                   help="max gradient norm of the clipped run")
    args = p.parse_args(argv)
    _adding.check_data_arguments(p, args)
    return args


def _fmt(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) and x < 1e4 else f"{x:.3g}"


def main(argv: list[str] | None = None) -> dict:
    """Train without and with clipping; return the figures of both runs and the baseline."""
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    train_set = TensorDataset(*adding_problem(args.train_size, args.seq_len, rng))
    test_x, test_y = adding_problem(args.test_size, args.seq_len, rng)
    baseline = float(((test_y - 1.0) ** 2).mean())  # always predict 1, the mean of the target
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=1000)
    n_params = sum(p.numel() for p in make_model(args.hidden_size, args.gain, args.seed)
                   .parameters())
    print(f"adding problem, T = {args.seq_len}: train {args.train_size:,} / test "
          f"{args.test_size:,} sequences; tanh RNN, hidden {args.hidden_size}, recurrent matrix "
          f"orthogonal x {args.gain:g}, {n_params:,} parameters; plain SGD lr {args.lr:g}, "
          f"batch {args.batch_size}, {args.steps} steps")
    print(f"baseline (always predict 1): test MSE {baseline:.4f}")

    runs = {}
    start = time.perf_counter()
    for name, clip in (("unclipped", None), ("clipped", args.clip)):
        t0 = time.perf_counter()
        model = make_model(args.hidden_size, args.gain, args.seed)  # same initial weights
        # the same seed, so the same batches in the same order in both runs
        loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed)
        runs[name] = train(model, loader, test_loader, steps=args.steps, lr=args.lr, clip=clip,
                           eval_every=args.eval_every)
        runs[name]["seconds"] = time.perf_counter() - t0

    print()
    print(f"| step | unclipped: train loss | grad norm (max) | test MSE "
          f"| clipped to {args.clip:g}: train loss | pre-clip grad norm (max) | test MSE |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (step, l0, n0, m0), (_, l1, n1, m1) in zip(runs["unclipped"]["reports"],
                                                   runs["clipped"]["reports"]):
        print(f"| {step} | {_fmt(l0)} | {n0:.3g} | {_fmt(m0)} | {_fmt(l1)} | {n1:.3g} "
              f"| {_fmt(m1)} |")
    print()

    result = {"baseline": baseline}
    for name, run in runs.items():
        norms = np.array(run["norms"])
        finite = np.isfinite(norms)
        result[name] = {
            "test_mse": run["reports"][-1][3],
            "max_norm": float(norms[finite].max()) if finite.any() else math.inf,
            "median_norm": float(np.median(norms[finite])) if finite.any() else math.nan,
            "nonfinite_steps": int((~finite).sum()),
            "first_nonfinite_step": int(np.argmin(finite)) + 1 if not finite.all() else None,
            "norms": run["norms"],
            "losses": run["losses"],
        }
        r = result[name]
        print(f"{name}: pre-clip grad norm median {r['median_norm']:.3g}, max {r['max_norm']:.3g}"
              f" (of the finite ones; {r['nonfinite_steps']}/{len(norms)} steps non-finite"
              + (f", from step {r['first_nonfinite_step']}" if r["nonfinite_steps"] else "")
              + "), "
              + (f"{int((norms > args.clip).sum())}/{len(norms)} steps clipped, "
                 if name == "clipped" else "")
              + f"final test MSE {_fmt(r['test_mse'])}, {run['seconds']:.1f} s")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    u, c = result["unclipped"]["test_mse"], result["clipped"]["test_mse"]
    print(f"test MSE: unclipped {_fmt(u)}, clipped {_fmt(c)} (baseline {baseline:.4f}, "
          f"clipped {baseline / c:.0f}x lower)")
    return result


if __name__ == "__main__":
    main()
