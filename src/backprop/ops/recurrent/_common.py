"""What the recurrent ops share: the fast-path check, gradient buffers, and Unbind/Stack
(a sequence split into steps and put back)."""

from __future__ import annotations

import numpy as np

from backprop import _fast
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _state
from backprop.ops._util import const
from backprop.tensor import Tensor


def _kernels(*arrays):
    """The recurrent kernel module when the fast path is on and suits these arrays, else None."""
    fk = _fast.kernels("recurrent")
    if fk is None or not fk.HAS_BLAS or not _fast.suits(*arrays):
        return None
    return fk


def _contiguous(grad, dt):
    """A gradient Tensor's array as the kernels take it (C-contiguous, ``dt``), or None."""
    return None if grad is None else np.ascontiguousarray(grad.data, dt)




class Unbind(Function):
    """(y₀, ..., y_{T-1}) = (x[0], ..., x[T-1]);  ∂L/∂x = stack(∂L/∂y₀, ..., ∂L/∂y_{T-1}).
    One op for the whole sequence: T getitems would each scatter into a full-size zero array."""

    is_view = True

    @staticmethod
    def forward(ctx, x):
        return tuple(x[t] for t in range(x.shape[0]))

    @staticmethod
    def backward(ctx, *grads):
        if _state.grad_enabled:
            return Stack.apply(*grads)
        return const(np.stack([g.data for g in grads]))


class Stack(Function):
    """y = stack(x₀, ..., x_{T-1}) along a new first dimension;  ∂L/∂xₜ = (∂L/∂y)[t].
    Unbind's adjoint, one op: the composite is T unsqueezes and a cat, each with a backward."""

    @staticmethod
    def forward(ctx, *xs):
        return np.stack(xs)

    @staticmethod
    def backward(ctx, grad_out):
        if _state.grad_enabled:
            return Unbind.apply(grad_out)
        g = grad_out.data
        return tuple(const(g[t]) for t in range(g.shape[0]))


def unbind(input: Tensor, dim: int = 0) -> tuple:
    """The slices of ``input`` along ``dim`` (PyTorch's ``unbind``); one op for all of them.

    Shapes: (T, *rest) -> T tensors of shape rest (for dim=0).

    Example:
        >>> import backprop as bp
        >>> [t.shape for t in bp.ops.recurrent.unbind(bp.zeros(3, 2))]
        [(2,), (2,), (2,)]
    """
    if dim != 0:
        input = movedim0(input, dim)
    return Unbind.apply(input)


def movedim0(input: Tensor, dim: int) -> Tensor:
    d = dim % input.ndim
    order = (d,) + tuple(k for k in range(input.ndim) if k != d)
    return permute(input, order)


from backprop.ops.shape import permute  # noqa: E402
