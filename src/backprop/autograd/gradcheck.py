"""Gradient checks: analytic gradients against central finite differences, in float64.

Small inputs (up to ``max_full_size`` elements in all) get the full Jacobian compared element by
element. Larger ones get random projections: for random directions u (inputs) and v (outputs),
the directional derivative ⟨v, (f(x + εu) - f(x - εu)) / 2ε⟩ must equal ⟨Jᵀv, u⟩ from one
backward pass, as in HIPS autograd, Chainer and PyTorch's fast mode.
"""

from __future__ import annotations

import numpy as np

from backprop.autograd.engine import grad as _grad
from backprop.tensor import Tensor, _wrap


class GradcheckError(AssertionError):
    """Raised by ``gradcheck`` / ``gradgradcheck`` when analytic and numeric gradients differ."""


def _as_tuple(x) -> tuple:
    return (x,) if isinstance(x, Tensor) or not isinstance(x, (tuple, list)) else tuple(x)


def _prepare(inputs) -> tuple[list, list]:
    """The inputs copied to float64, and the indices of those that require grad."""
    xs = _to_float64(_as_tuple(inputs))
    return xs, [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]


def _to_float64(inputs) -> list:
    out = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            t = _wrap(x.data.astype(np.float64), False, None, 0)
            t._requires_grad = x.requires_grad
            out.append(t)
        else:
            out.append(x)
    return out


def _name(fn) -> str:
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type):  # Function.apply of a subclass: name the op
        return f"{owner.__name__}.{fn.__name__}"
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _flat_outputs(fn, xs) -> np.ndarray:
    # not under no_grad: fn may itself differentiate (gradgradcheck's fn calls autograd.grad)
    outs = _as_tuple(fn(*xs))
    return np.concatenate([np.asarray(o.data, dtype=np.float64).reshape(-1) for o in outs])


def gradcheck(fn, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, fast_mode: bool | None = None,
              max_full_size: int = 1000, n_projections: int = 3, seed: int = 0) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central finite differences.

    Floating inputs are copied to float64 (keeping ``requires_grad``); only inputs that require
    grad are checked. ``fn`` returns a Tensor or a tuple of Tensors.

    Args:
        fn: the function to check, called as ``fn(*inputs)``.
        inputs: a Tensor or a tuple of Tensors (and other arguments, passed through).
        eps: the finite-difference step.
        atol, rtol: an element passes when |analytic - numeric| <= atol + rtol·|numeric|.
        raise_exception: raise ``GradcheckError`` on failure (else return False).
        fast_mode: force random projections (True) or the full Jacobian (False); by default
            projections are used when the checked inputs hold more than ``max_full_size``
            elements.

    Returns:
        True when every gradient matches.

    Raises:
        GradcheckError: naming the input, the element, both values and the error.

    Example:
        >>> import backprop as bp
        >>> x = bp.randn(3, dtype=bp.float64, requires_grad=True)
        >>> bp.gradcheck(bp.tanh, (x,))
        True
    """
    xs, checked = _prepare(inputs)
    if not checked:
        raise ValueError(
            "gradcheck: no input requires grad; set requires_grad=True on at least one"
        )
    outs = _as_tuple(fn(*xs))
    if not all(isinstance(o, Tensor) for o in outs):
        raise TypeError(f"gradcheck: {_name(fn)} must return a Tensor or a tuple of Tensors")
    diff_outs = [o for o in outs if o.requires_grad]
    sizes = [o.data.size for o in outs]
    n_out = sum(sizes)
    n_in = sum(xs[i].data.size for i in checked)
    if fast_mode is None:
        fast_mode = n_in > max_full_size
    try:
        if fast_mode:
            _check_projections(fn, xs, checked, outs, diff_outs, eps, atol, rtol, n_projections,
                               seed)
        else:
            _check_full(fn, xs, checked, outs, diff_outs, sizes, n_out, eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _analytic(outs, diff_outs, xs, checked, grad_outputs) -> list:
    """Jᵀv for each checked input, with v given per output (zeros for outputs without grad)."""
    if not diff_outs:
        return [np.zeros_like(xs[i].data) for i in checked]
    gos = [
        _wrap(go, False, None, 0) for o, go in zip(outs, grad_outputs) if o.requires_grad
    ]
    grads = _grad(diff_outs, [xs[i] for i in checked], gos, retain_graph=True, allow_unused=True)
    result = []
    for i, g in zip(checked, grads):
        if g is None:
            result.append(np.zeros_like(xs[i].data))
            continue
        if g.shape != xs[i].shape:
            raise GradcheckError(
                f"gradcheck: the gradient for input {i} has shape {g.shape}, "
                f"but the input has shape {xs[i].shape}"
            )
        result.append(np.asarray(g.data, dtype=np.float64))
    return result


def _check_full(fn, xs, checked, outs, diff_outs, sizes, n_out, eps, atol, rtol) -> None:
    # analytic Jacobian, one backward pass per output element
    analytic = {i: np.zeros((n_out, xs[i].data.size)) for i in checked}
    for row in range(n_out):
        onehot = np.zeros(n_out)
        onehot[row] = 1.0
        pieces, start = [], 0
        for o, n in zip(outs, sizes):
            pieces.append(onehot[start : start + n].reshape(o.shape).astype(o.dtype))
            start += n
        for i, g in zip(checked, _analytic(outs, diff_outs, xs, checked, pieces)):
            analytic[i][row] = g.reshape(-1)
    for i in checked:
        x = xs[i].data
        flat = x.reshape(-1)
        numeric = np.zeros((n_out, flat.size))
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = _flat_outputs(fn, xs)
            flat[j] = orig - eps
            minus = _flat_outputs(fn, xs)
            flat[j] = orig
            numeric[:, j] = (plus - minus) / (2 * eps)
        _compare(fn, i, x.shape, analytic[i], numeric, outs, sizes, atol, rtol)


def _compare(fn, i, shape, analytic, numeric, outs, sizes, atol, rtol) -> None:
    err = np.abs(analytic - numeric)
    bad = ~(err <= atol + rtol * np.abs(numeric))  # also catches NaN
    if not bad.any():
        return
    excess = np.where(bad, np.nan_to_num(err, nan=np.inf) - rtol * np.abs(numeric), -np.inf)
    row, col = np.unravel_index(np.argmax(excess), excess.shape)
    k = int(np.searchsorted(np.cumsum(sizes), row, side="right"))
    out_elem = [int(v) for v in np.unravel_index(row - sum(sizes[:k]), outs[k].shape)]
    in_elem = [int(v) for v in np.unravel_index(col, shape)]
    raise GradcheckError(
        f"gradcheck failed for {_name(fn)}: d(output {k}{out_elem})/d(input {i}"
        f"{in_elem}): analytic {analytic[row, col]:.10g}, numeric {numeric[row, col]:.10g}, "
        f"error {err[row, col]:.3g} > atol {atol:g} + rtol {rtol:g}·|numeric| "
        f"({int(bad.sum())} of {bad.size} Jacobian entries differ)"
    )


def _check_projections(fn, xs, checked, outs, diff_outs, eps, atol, rtol, n, seed) -> None:
    rng = np.random.default_rng(seed)
    for trial in range(n):
        vs = [rng.standard_normal(o.shape) for o in outs]
        us = {i: rng.standard_normal(xs[i].shape) for i in checked}
        grads = _analytic(outs, diff_outs, xs, checked, vs)
        analytic = sum(float(np.sum(g * us[i])) for i, g in zip(checked, grads))
        saved = {i: xs[i].data.copy() for i in checked}
        for i in checked:
            xs[i].data[...] = saved[i] + eps * us[i]
        plus = _flat_outputs(fn, xs)
        for i in checked:
            xs[i].data[...] = saved[i] - eps * us[i]
        minus = _flat_outputs(fn, xs)
        for i in checked:
            xs[i].data[...] = saved[i]
        v_flat = np.concatenate([v.reshape(-1) for v in vs])
        numeric = float(np.dot(v_flat, (plus - minus) / (2 * eps)))
        err = abs(analytic - numeric)
        if not err <= atol + rtol * abs(numeric):
            raise GradcheckError(
                f"gradcheck failed for {_name(fn)} (random projection {trial} over inputs "
                f"{checked}): ⟨Jᵀv, u⟩ analytic {analytic:.10g}, ⟨v, Ju⟩ numeric {numeric:.10g}, "
                f"error {err:.3g} > atol {atol:g} + rtol {rtol:g}·|numeric|"
            )


def gradgradcheck(fn, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True, fast_mode: bool | None = None,
                  max_full_size: int = 1000, seed: int = 0) -> bool:
    """Check second derivatives: ``gradcheck`` applied to the map (inputs, v) -> Jᵀv.

    ``grad_outputs`` (the v) default to seeded random float64 tensors that require grad, so the
    check covers the derivative with respect to them as well.

    Example:
        >>> import backprop as bp
        >>> x = bp.randn(3, dtype=bp.float64, requires_grad=True)
        >>> bp.gradgradcheck(bp.tanh, (x,))
        True
    """
    xs, checked = _prepare(inputs)
    outs = _as_tuple(fn(*xs))
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        gos = [_wrap(rng.standard_normal(o.shape), o.requires_grad, None, 0) for o in outs]
    else:
        gos = _to_float64(_as_tuple(grad_outputs))
    n = len(xs)

    def first_derivative(*args):
        inner, vs = args[:n], args[n:]
        res = _as_tuple(fn(*inner))
        pairs = [(o, v) for o, v in zip(res, vs) if o.requires_grad]
        grads = _grad([o for o, _ in pairs], [inner[i] for i in checked], [v for _, v in pairs],
                      create_graph=True, allow_unused=True)
        return tuple(
            g if g is not None else _wrap(np.zeros_like(inner[i].data), False, None, 0)
            for i, g in zip(checked, grads)
        )

    first_derivative.__qualname__ = f"grad of {_name(fn)}"
    return gradcheck(first_derivative, tuple(xs) + tuple(gos), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode,
                     max_full_size=max_full_size, seed=seed)
