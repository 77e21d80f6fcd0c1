"""Fused neural-network kernels, each with a stated reason for being one op."""

from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.ops._util import norm_dim
from backprop.tensor import Tensor


class LogSoftmax(Function):
    """y = x - logsumexp(x) along dim;  ∂L/∂x = g - eʸ·Σ g.  Fused for stability and speed: the
    shift by the max keeps ±1e4 logits finite, and the backward needs only the output."""

    @staticmethod
    def forward(ctx, x, dim=-1):
        shifted = x - np.max(x, axis=dim, keepdims=True)
        y = shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))
        ctx.dim = dim
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out - exp(y) * sum(grad_out, ctx.dim, keepdim=True)


def log_softmax(input, dim: int = -1) -> Tensor:
    """ln softmax(x) along ``dim``, stable for any finite input. Shape: unchanged.

    Example:
        >>> import backprop as bp
        >>> bp.log_softmax(bp.tensor([0.0, 1e4]), dim=0)
        tensor([-10000.,      0.])
    """
    return LogSoftmax.apply(input, dim=norm_dim("log_softmax", dim, input.ndim))


def softmax(input, dim: int = -1) -> Tensor:
    """e^(xᵢ) / Σⱼ e^(xⱼ) along ``dim``, computed as exp(log_softmax) so ±1e4 inputs stay finite.

    Example:
        >>> import backprop as bp
        >>> bp.softmax(bp.tensor([1e4, 1e4]), dim=0)
        tensor([0.5, 0.5])
    """
    return exp(log_softmax(input, dim))


from backprop.ops.elementwise import exp  # noqa: E402
from backprop.ops.reduction import sum  # noqa: E402
