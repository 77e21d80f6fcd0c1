"""Small helpers shared by the op modules (argument normalisation, constants)."""

from __future__ import annotations

import numpy as np

from backprop.autograd.grad_mode import _debug, _state
from backprop.tensor import Tensor, _wrap


class _Scratch:
    """The ctx of a forward kernel run for its values alone (``kernel``)."""

    def save_for_backward(self, *values) -> None:
        pass


_SCRATCH = _Scratch()


def first_order() -> bool:
    """True when a backward rule runs first order with nothing watching ops (no recorder, no
    anomaly check): the ops it would apply build no graph then, so the rule may run their
    forward kernels on arrays instead (``kernel``), with the same results and without a
    dispatch per op (the hot rules: a linear layer's, the activations')."""
    return not _state.grad_enabled and not _debug.recorders and not _debug.anomaly


def kernel(cls, *arrays, **kwargs) -> Tensor:
    """``cls.apply(*arrays, **kwargs)``'s value as a constant Tensor, from the op's forward
    kernel itself (same operations, same bits; for rules under ``first_order()``)."""
    out = cls.forward(_SCRATCH, *arrays, **kwargs)
    return _wrap(out if type(out) is np.ndarray else np.asarray(out), False, None, 0)


def const(arr) -> Tensor:
    """Wrap an array as a constant Tensor (no history, no grad)."""
    return _wrap(np.asarray(arr), False, None, 0)


def resolve_dim(op: str, dim, axis):
    """Accept NumPy's ``axis`` as an alias of PyTorch's ``dim`` (one of them, not both)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or its alias axis, not both")
        return axis
    return dim


def norm_dims(op: str, dim, ndim: int):
    """``dim`` (None, an int or a sequence) as a sorted tuple of non-negative axes, or None."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        d = int(d)
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(
                f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions "
                f"(valid: {-max(ndim, 1)} to {max(ndim, 1) - 1})"
            )
        out.append(d % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim} names the same dimension twice")
    if not ndim:
        return ()  # a 0-d tensor's dim 0 (or -1) is the tensor itself: nothing to reduce
    return tuple(sorted(out))


def norm_dim(op: str, dim, ndim: int) -> int:
    """A single ``dim`` as a non-negative axis (0 for a 0-d tensor, after checking the range)."""
    dims = norm_dims(op, int(dim), ndim)
    return dims[0] if dims else 0


def keepdim_shape(shape: tuple, dims) -> tuple:
    """The shape a reduction over ``dims`` has with keepdim=True."""
    if dims is None:
        return (1,) * len(shape)
    return tuple(1 if i in dims else s for i, s in enumerate(shape))
