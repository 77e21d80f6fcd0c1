"""Regression losses: mse_loss, l1_loss, huber_loss, smooth_l1_loss."""

from __future__ import annotations

import warnings

import numpy as np

from backprop.errors import ShapeError
from backprop.nn.loss._common import (
    _as_tensor,
    _check_reduction,
    _reduce,
)
from backprop.ops.elementwise import clamp
from backprop.ops.nn_ops import MseLoss
from backprop.tensor import Tensor

# --- functional losses ---


def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """Mean squared error: (input - target)², reduced.

    Args:
        input: predictions, any shape (*).
        target: the same shape (*); other broadcastable shapes warn, as in PyTorch.
        reduction: 'mean' (default), 'sum' or 'none'.
        weight: per-element weights of the input's shape; 'mean' then divides by their sum.

    Returns:
        A 0-d tensor, or shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.mse_loss(bp.tensor([1.0, 2.0]), bp.tensor([0.0, 4.0]))
        tensor(2.5)
    """
    return _regression_loss("mse_loss", input, target, reduction, weight, square=True)


def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    """Mean absolute error: |input - target|, reduced (gradient sign(input - target), 0 at 0).

    Args:
        input: predictions, any shape (*).
        target: the same shape (*); other broadcastable shapes warn, as in PyTorch.
        reduction: 'mean' (default), 'sum' or 'none'.
        weight: per-element weights of the input's shape; 'mean' then divides by their sum.

    Returns:
        A 0-d tensor, or shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.l1_loss(bp.tensor([1.0, 2.0]), bp.tensor([0.0, 4.0]))
        tensor(1.5)
    """
    return _regression_loss("l1_loss", input, target, reduction, weight, square=False)


def _regression_loss(fn, input, target, reduction, weight, square) -> Tensor:
    _check_reduction(fn, reduction)
    if square and weight is None and reduction != "none" and isinstance(input, Tensor) \
            and isinstance(target, Tensor) and input.data.shape == target.data.shape \
            and input.data.dtype is target.data.dtype and input.data.dtype.kind == "f" \
            and input.data.size:
        return MseLoss.apply(input, target, reduction=reduction)  # one op, as PyTorch's
    diff = _residual(fn, input, target, stacklevel=4)
    loss = diff * diff if square else diff.abs()
    if weight is None:
        return _reduce(loss, reduction)
    weight = _as_tensor(weight)
    if weight.shape != input.shape:
        raise ShapeError(
            f"{fn}: weight of shape {weight.shape} must have the input's shape {input.shape}"
        )
    loss = loss * weight
    return loss.sum() / weight.sum() if reduction == "mean" else _reduce(loss, reduction)


def _residual(fn: str, input: Tensor, target, stacklevel: int) -> Tensor:
    """input - target; a target of another shape that broadcasts warns (PyTorch's rule for the
    regression losses), one that does not is a ShapeError."""
    target = _as_tensor(target)
    if target.shape != input.shape:
        try:
            np.broadcast_shapes(input.shape, target.shape)
        except ValueError:
            raise ShapeError(
                f"{fn}: target of shape {target.shape} does not fit input of shape "
                f"{input.shape}; give the target the input's shape"
            ) from None
        warnings.warn(
            f"{fn}: target of shape {target.shape} differs from input of shape {input.shape}: "
            "they are broadcast together, which is likely to give wrong results; give the "
            "target the input's shape",
            stacklevel=stacklevel,
        )
    return input - target



# --- robust regression: huber_loss and smooth_l1_loss ---


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """Huber loss: ½·d² where |d| < delta, else delta·(|d| - ½·delta), with d = input - target.

    Its gradient is d clipped to [-delta, delta]. Computed as ½·q² + delta·(|d| - q) with
    q = min(|d|, delta): no residual beyond delta is ever squared, so a huge residual cannot
    overflow (in float32 either).

    Args:
        input: predictions, any shape (*).
        target: the same shape (*); other broadcastable shapes warn, as in PyTorch.
        reduction: 'mean' (default), 'sum' or 'none'.
        delta: the positive threshold between the quadratic and the linear part.
        weight: per-element weights of the input's shape (differentiable, as in PyTorch);
            'mean' is then the plain mean of the weighted losses, as in PyTorch.

    Returns:
        A 0-d tensor, or shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.huber_loss(bp.tensor([0.5, 3.0]), bp.tensor([0.0, 0.0]))
        tensor(1.3125)
    """
    fn = "huber_loss"
    _check_reduction(fn, reduction)
    if not delta > 0:  # written so that NaN fails too
        raise ValueError(f"{fn}: delta must be positive, got {delta}")
    z = _residual(fn, input, target, stacklevel=3).abs()
    q = clamp(z, max=delta)
    loss = 0.5 * q * q + delta * (z - q)
    if weight is None:
        return _reduce(loss, reduction)
    weight = _as_tensor(weight)
    if weight.shape != input.shape:
        raise ShapeError(
            f"{fn}: weight of shape {weight.shape} must have the input's shape {input.shape}"
        )
    return _reduce(loss * weight, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """Smooth L1 loss: ½·d²/beta where |d| < beta, else |d| - ½·beta, with d = input - target.

    Equal to ``huber_loss(input, target, delta=beta) / beta``; ``beta=0`` gives ``l1_loss``.
    Its gradient is d/beta clipped to [-1, 1].

    Args:
        input: predictions, any shape (*).
        target: the same shape (*); other broadcastable shapes warn, as in PyTorch.
        reduction: 'mean' (default), 'sum' or 'none'.
        beta: the non-negative threshold between the quadratic and the linear part.

    Returns:
        A 0-d tensor, or shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.smooth_l1_loss(bp.tensor([0.5, 3.0]), bp.tensor([0.0, 0.0]))
        tensor(1.3125)
    """
    fn = "smooth_l1_loss"
    _check_reduction(fn, reduction)
    if not beta >= 0:
        raise ValueError(f"{fn}: beta must be non-negative, got {beta}")
    z = _residual(fn, input, target, stacklevel=3).abs()
    if beta == 0:
        return _reduce(z, reduction)
    q = clamp(z, max=beta)  # as in huber_loss: nothing beyond beta is squared
    return _reduce(0.5 * q * q / beta + (z - q), reduction)
