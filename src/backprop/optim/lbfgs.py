"""L-BFGS (Nocedal 1980; Liu & Nocedal 1989) with an optional strong-Wolfe line search: PyTorch's
``torch.optim.LBFGS``, step for step, so float64 runs agree with it to rounding.

One ``step(closure)`` runs up to ``max_iter`` quasi-Newton iterations on the flattened
parameters. The direction is the two-loop recursion over the last ``history_size`` curvature
pairs (s = x_{k+1} - x_k, y = g_{k+1} - g_k), started from the scaled identity
(sᵀy / yᵀy)·I. Without a line search each iteration moves ``lr`` along it (the first one a
step of min(1, 1/‖g‖₁)·lr); with ``line_search_fn="strong_wolfe"`` the step length satisfies
the strong Wolfe conditions (sufficient decrease c₁ = 1e-4, curvature c₂ = 0.9), found by
bracketing and then zooming with safeguarded cubic interpolation (Nocedal & Wright, Alg. 3.5
and 3.6; the same variant as minFunc's and PyTorch's).

The arithmetic runs on NumPy arrays in the parameters' dtype; parameters change only through
``Tensor.add_`` / ``copy_`` under ``no_grad``, so their version counters move as for every
optimizer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backprop.autograd.grad_mode import enable_grad, no_grad
from backprop.optim.optimizer import Optimizer
from backprop.tensor import Tensor

__all__ = ["LBFGS"]


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimiser of the cubic through (x1, f1, f1'=g1) and (x2, f2, g2), clipped to
    ``bounds`` (default: the interval between the points); the midpoint when the cubic has no
    real minimiser."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = float(np.sqrt(disc))
    if x1 <= x2:
        t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(t, lo), hi)


def _strong_wolfe(evaluate: Callable, t: float, d: np.ndarray, f: float, g: np.ndarray,
                  gtd: float, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9, max_ls: int = 25) -> tuple:
    """A step length ``t`` along ``d`` meeting the strong Wolfe conditions.

    ``evaluate(t)`` returns (loss, flat gradient) at x + t·d. Returns
    ``(loss, gradient, t, evaluations)`` at the accepted step.
    """
    d_norm = float(np.abs(d).max())
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = float(g_new @ d)
    # bracketing: grow the step until an interval must contain an acceptable one
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [[t, f_new, g_new, gtd_new]], True
            break
        if gtd_new >= 0:
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        # extrapolate: a cubic step, at least 1% beyond t and at most 10·t
        t_next = _cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [[0.0, f, g, None], [t, f_new, g_new, None]]
    # zoom: shrink the bracket until a point meets the conditions
    insufficient = False
    low, high = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1][0] - bracket[0][0]) * d_norm < tolerance_change:
            break
        (ta, fa, _, ga), (tb, fb, _, gb) = bracket
        t = _cubic_minimum(ta, fa, ga, tb, fb, gb)
        # a point too near an end of the bracket gains little: move it 10% inside, unless the
        # previous step was already such a near miss only once
        lo, hi = min(ta, tb), max(ta, tb)
        eps = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < eps:
            if insufficient or t >= hi or t <= lo:
                t = hi - eps if abs(t - hi) < abs(t - lo) else lo + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket[low][1]:
            bracket[high] = [t, f_new, g_new, gtd_new]
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = [t, f_new, g_new, gtd_new]
    t, f_new, g_new, _ = bracket[low]
    return f_new, g_new, t, evals


class LBFGS(Optimizer):
    """Limited-memory BFGS, PyTorch's ``torch.optim.LBFGS`` (one parameter group).

    Args:
        params: the parameters (one group only, as in PyTorch).
        lr: step scale (default 1).
        max_iter: iterations per ``step`` (default 20).
        max_eval: closure evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when every |gradient| entry is at most this (default 1e-7).
        tolerance_change: stop when the loss or the step changes less than this (default 1e-9).
        history_size: curvature pairs kept (default 100).
        line_search_fn: None (fixed steps) or ``"strong_wolfe"``.

    ``step(closure)`` needs the closure (which zeroes the gradients, computes the loss, calls
    ``backward`` and returns the loss) and returns the loss of its first evaluation.

    Example:
        >>> import backprop as bp
        >>> x = bp.tensor([-1.5, 2.0], dtype=bp.float64, requires_grad=True)
        >>> opt = bp.optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=100)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # Rosenbrock
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> [round(v, 4) for v in x.tolist()]  # torch: 0.9999979943196398, 0.9999973438921637
        [1.0, 1.0]
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {"lr": lr, "max_iter": max_iter, "max_eval": max_eval,
                    "tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change,
                    "history_size": history_size, "line_search_fn": line_search_fn}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    _per_parameter_state = False  # flat vectors and lists of them, under the first parameter

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state from ``state_dict()`` (its tensors come back as the arrays ``step``
        works on)."""
        super().load_state_dict(state_dict)

        def arrays(v):
            if isinstance(v, Tensor):
                return v.data
            return [arrays(e) for e in v] if isinstance(v, list) else v

        for values in self.state.values():
            for k, v in values.items():
                values[k] = arrays(v)

    def _check_group(self, group: dict) -> None:
        self._check_range("lr", group["lr"])
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                             f"{group['line_search_fn']!r}")

    # --- the flat view of the parameters ---
    def _flat_grad(self) -> np.ndarray:
        return np.concatenate([
            np.zeros(p.data.size, p.dtype) if p.grad is None else p.grad.data.reshape(-1)
            for p in self._params
        ])

    def _add(self, t: float, d: np.ndarray) -> None:
        offset = 0
        for p in self._params:
            n = p.data.size
            p.add_(Tensor(d[offset:offset + n].reshape(p.shape)), alpha=t)
            offset += n

    def _evaluate(self, closure: Callable, x0: list, t: float, d: np.ndarray) -> tuple:
        """Loss and flat gradient at x0 + t·d; the parameters are back at x0 afterwards."""
        self._add(t, d)
        with enable_grad():
            loss = float(closure())
        flat = self._flat_grad()
        for p, saved in zip(self._params, x0):
            p.copy_(saved)
        return loss, flat

    def step(self, closure: Callable[[], Tensor]):  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; returns the closure's first loss."""
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that re-evaluates the model and "
                               "returns the loss")
        group = self.param_groups[0]
        lr, max_iter, max_eval = float(group["lr"]), group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        # PyTorch keeps the whole (global) state under the first parameter
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if np.abs(flat_grad).max() <= tol_grad:
            return orig_loss
        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag = state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        with no_grad():
            n_iter = 0
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                if state["n_iter"] == 1:
                    d = -flat_grad
                    old_dirs, old_stps, ro = [], [], []
                    h_diag = 1
                else:
                    y = flat_grad - prev_flat_grad
                    s = d * t
                    ys = y @ s
                    if ys > 1e-10:  # keep only pairs with positive curvature
                        if len(old_dirs) == history_size:
                            old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                        old_dirs.append(y)
                        old_stps.append(s)
                        ro.append(1.0 / ys)
                        h_diag = ys / (y @ y)
                    # two-loop recursion: d = -H g
                    al = [None] * len(old_dirs)
                    q = -flat_grad
                    for i in range(len(old_dirs) - 1, -1, -1):
                        al[i] = (old_stps[i] @ q) * ro[i]
                        q = q - al[i] * old_dirs[i]
                    d = r = q * h_diag
                    for i in range(len(old_dirs)):
                        be_i = (old_dirs[i] @ r) * ro[i]
                        r = r + (al[i] - be_i) * old_stps[i]
                    d = r
                prev_flat_grad = flat_grad.copy()
                prev_loss = loss
                if state["n_iter"] == 1:
                    t = min(1.0, 1.0 / float(np.abs(flat_grad).sum())) * lr
                else:
                    t = lr
                gtd = float(flat_grad @ d)
                if gtd > -tol_change:  # not a descent direction any more
                    break
                if group["line_search_fn"] == "strong_wolfe":
                    x0 = [p.data.copy() for p in self._params]
                    loss, flat_grad, t, ls_evals = _strong_wolfe(
                        lambda step, x0=x0, d=d: self._evaluate(closure, x0, step, d),
                        t, d, loss, flat_grad, gtd, max_ls=max_eval - evals)
                    self._add(t, d)
                    opt_cond = np.abs(flat_grad).max() <= tol_grad
                else:
                    self._add(t, d)
                    ls_evals = 0
                    opt_cond = False
                    if n_iter != max_iter:  # the last iteration's loss would go unused
                        with enable_grad():
                            loss = float(closure())
                        flat_grad = self._flat_grad()
                        opt_cond = np.abs(flat_grad).max() <= tol_grad
                        ls_evals = 1
                evals += ls_evals
                state["func_evals"] += ls_evals
                if n_iter == max_iter or evals >= max_eval or opt_cond:
                    break
                if np.abs(d * t).max() <= tol_change or abs(loss - prev_loss) < tol_change:
                    break
        state.update({"d": d, "t": t, "old_dirs": old_dirs, "old_stps": old_stps, "ro": ro,
                      "H_diag": h_diag, "prev_flat_grad": prev_flat_grad,
                      "prev_loss": prev_loss})
        return orig_loss
