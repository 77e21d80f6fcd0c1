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


# --- losses ---


# Primitive for speed: the loss is linear in x with a coefficient fixed by the targets, so backward
# is one multiply, not a gather/mask/weight/sum/divide chain; after the fused LogSoftmax (stable at
# ±1e4) it is cross_entropy, the decomposition PyTorch uses.
class NLLLoss(Function):
    """Negative log-likelihood of class ``target`` (a constant int array) under log-probabilities
    x of shape (C,), (N, C) or (N, C, d1, ...), classes on dim 1 (dim 0 for (C,)).

    Per position n with tₙ ≠ ignore_index:
    yₙ = -[(1 - ε)·w_tₙ·x[n, tₙ] + (ε/C)·Σ_c w_c·x[n, c]], else yₙ = 0 (ε: label smoothing,
    w: class weights, 1 when absent). reduction 'none' gives y, 'sum' Σ yₙ, 'mean' Σ yₙ / D with
    D = Σ w_tₙ over the non-ignored positions (PyTorch's weighted mean).
    ∂y/∂x[n, c] = -[(1 - ε)·w_c·[c = tₙ] + (ε/C)·w_c] (÷ D for 'mean'; 0 where tₙ is ignored).
    """

    @staticmethod
    def forward(ctx, x, target=None, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
        cdim = 1 if x.ndim > 1 else 0
        ignored = target == ignore_index
        if not ignored.any():
            ignored = None  # the usual case: no masking work below
        safe = target if ignored is None else np.where(ignored, 0, target)  # any valid class
        # x[n, tₙ, d1, ...] for every position: sparse aranges plus the targets on the class dim
        at = list(np.indices(target.shape, sparse=True))
        at.insert(cdim, safe)
        at = tuple(at)
        w_t = np.ones(target.shape, x.dtype) if weight is None else weight[safe]
        y = x[at] if ignored is None else np.where(ignored, 0, x[at])  # never 0·(-inf)
        y = y * w_t if weight is not None else y
        if label_smoothing:
            xw = x if weight is None else x * _class_shape(weight, x.ndim, cdim)
            smooth = np.sum(xw, axis=cdim) * (label_smoothing / x.shape[cdim])
            y = y * (1 - label_smoothing) + smooth
        if ignored is not None:
            w_t = np.where(ignored, 0, w_t)
            y = np.where(ignored, 0, y)
        ctx.x_shape, ctx.cdim, ctx.at, ctx.ignored, ctx.w_t = x.shape, cdim, at, ignored, w_t
        ctx.weight, ctx.reduction, ctx.smoothing = weight, reduction, label_smoothing
        if reduction == "none":
            return -y
        if reduction == "sum":
            return -np.sum(y)
        ctx.total = np.sum(w_t)
        with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan, as PyTorch
            return -np.sum(y) / ctx.total

    @staticmethod
    def backward(ctx, grad_out):
        cdim, eps = ctx.cdim, ctx.smoothing
        with np.errstate(divide="ignore", invalid="ignore"):  # D = 0: nan, as PyTorch
            scale = 1 / ctx.total if ctx.reduction == "mean" else 1
            # -∂y/∂x: a constant of the targets and weights, so the gradient stays differentiable
            coef = np.zeros(ctx.x_shape, grad_out.dtype)
            at_target = ctx.w_t * ((1 - eps) * scale)
            if ctx.ignored is not None:  # 0 there, not 0·∞ when all are ignored
                at_target = np.where(ctx.ignored, 0, at_target)
            coef[ctx.at] = at_target
            if eps:
                w = 1 if ctx.weight is None else _class_shape(ctx.weight, coef.ndim, cdim)
                spread = w * (eps / coef.shape[cdim] * scale)
                if ctx.ignored is not None:
                    spread = np.where(np.expand_dims(ctx.ignored, cdim), 0, spread)
                coef += spread
        if ctx.reduction == "none":
            grad_out = unsqueeze(grad_out, cdim)
        return grad_out * const(-coef)


def _class_shape(weight: np.ndarray, ndim: int, cdim: int) -> np.ndarray:
    """Class weights (C,) shaped to broadcast along the class dimension of an ndim-d array."""
    return weight.reshape((-1,) + (1,) * (ndim - cdim - 1))


_BCE_EPS = float(np.float32(1e-12))  # PyTorch's EPSILON is the float 1e-12f, not the double


# Primitive for stability: where the log is clamped at -100 (x = 0 or 1) the composite's gradient
# is 0·∞ = NaN; PyTorch's formula (x - t)/max(x(1 - x), 1e-12) stays finite.
class BinaryCrossEntropy(Function):
    """y = -[t·max(ln x, -100) + (1 - t)·max(ln(1 - x), -100)], elementwise (no reduction);
    ∂y/∂x = (x - t) / max(x(1 - x), 10⁻¹²), ∂y/∂t = ln(1 - x) - ln x (PyTorch's formulas: the
    derivatives of the unclamped loss, so ∂y/∂t is ±∞ at x = 0 or 1, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, t):
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped just below
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log1p(-x), -100)
        ctx.save_for_backward(x, t)
        return (t - 1) * log_1mx - t * log_x

    @staticmethod
    def backward(ctx, grad_out):
        x, t = ctx.saved_tensors
        need_x, need_t = ctx.needs_input_grad
        grad_x = grad_out * (x - t) / clamp(x * (1 - x), min=_BCE_EPS) if need_x else None
        grad_t = None
        if need_t:
            with np.errstate(divide="ignore", invalid="ignore"):
                grad_t = grad_out * (log1p(-x) - log(x))
        return grad_x, grad_t


from backprop.ops._util import const  # noqa: E402
from backprop.ops.elementwise import clamp, exp, log, log1p  # noqa: E402
from backprop.ops.reduction import sum  # noqa: E402
from backprop.ops.shape import unsqueeze  # noqa: E402
