"""Classification losses: cross_entropy, nll_loss, binary_cross_entropy(_with_logits), kl_div."""

from __future__ import annotations

import math
import warnings

import numpy as np

from backprop.errors import ShapeError
from backprop.nn.loss._common import (
    _KL_REDUCTIONS,
    _as_tensor,
    _check_broadcasts_to,
    _check_float_target,
    _check_reduction,
    _class_dim,
    _class_targets,
    _class_weight,
    _constant,
    _reduce,
)
from backprop.ops import nn_ops
from backprop.ops._util import const
from backprop.ops.activation import softplus
from backprop.ops.elementwise import where
from backprop.ops.nn_ops import BinaryCrossEntropy, _class_shape, log_softmax
from backprop.tensor import Tensor


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between softmax(input) over the class dimension and the target.

    Stable for any finite logits (±1e4 included). With class indices it is one fused op
    (``CrossEntropy``: log-softmax and NLL), whose gradient is softmax(input) - onehot(target)
    scaled; PyTorch records the same computation as two nodes (LogSoftmax, NLLLoss).

    Args:
        input: unnormalised scores (logits): (C,), (N, C) or (N, C, d1, ...).
        target: either class indices (int64) of shape (), (N,) or (N, d1, ...), each in [0, C)
            or equal to ``ignore_index``; or class probabilities, a float tensor of the input's
            shape (then ``ignore_index`` must stay negative).
        weight: (C,) rescaling weight per class (not differentiable, as in PyTorch).
        ignore_index: a class-index target whose positions add nothing to the loss or to the
            'mean' denominator.
        reduction: 'mean' (default; with class indices divided by the sum of the weights of the
            non-ignored targets, with probabilities by the number of positions), 'sum' or
            'none'.
        label_smoothing: ε in [0, 1]: the target becomes (1 - ε)·target + ε/C (PyTorch's formula,
            including with weights and ignored positions).

    Returns:
        A 0-d tensor, or shape (), (N,) or (N, d1, ...) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> logits = bp.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
        >>> loss = bp.nn.functional.cross_entropy(logits, bp.tensor([0, 0]))
        >>> round(loss.item(), 4)
        1.1269
    """
    fn = "cross_entropy"
    _check_reduction(fn, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    cdim = _class_dim(fn, input)
    w = _class_weight(fn, weight, input)
    target = _as_tensor(target)
    if target.shape == input.shape:  # class probabilities: PyTorch's rule, too
        return _cross_entropy_probs(input, target, w, ignore_index, reduction, label_smoothing,
                                    cdim)
    t = _class_targets(fn, input, target, ignore_index)
    return nn_ops.CrossEntropy.apply(input, target=t, weight=w, ignore_index=ignore_index,
                                     reduction=reduction, label_smoothing=label_smoothing)


def _cross_entropy_probs(input, target, w, ignore_index, reduction, label_smoothing, cdim):
    fn = "cross_entropy"
    if target.dtype.kind != "f":
        raise TypeError(
            f"{fn}: a target of the input's shape {input.shape} holds class probabilities and "
            f"must be floating point, got {target.dtype}; for class indices give it shape "
            f"{(input.shape[0],) + input.shape[2:] if cdim else ()}"
        )
    if ignore_index >= 0:
        raise ValueError(
            f"{fn}: ignore_index={ignore_index} is not supported with class-probability targets "
            "(as in PyTorch); leave it at its default"
        )
    n_classes = input.shape[cdim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
    # the fused log_softmax keeps this composite stable; the target gets its gradient too
    prod = log_softmax(input, cdim) * target
    if w is not None:
        prod = prod * const(_class_shape(w, input.ndim, cdim))
    if reduction == "none":
        return -prod.sum(cdim)
    total = -prod.sum()
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore"):  # no positions: nan, as PyTorch
        return total / (input.numel() // n_classes)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -weight[t]·input[n, t] per position, from log-probabilities.

    Args:
        input: log-probabilities (e.g. ``log_softmax`` output): (C,), (N, C) or (N, C, d1, ...).
        target: class indices (int64) of shape (), (N,) or (N, d1, ...), each in [0, C) or
            equal to ``ignore_index``.
        weight: (C,) rescaling weight per class (not differentiable, as in PyTorch).
        ignore_index: a target whose positions add nothing to the loss or the denominator.
        reduction: 'mean' (default: divided by the sum of the weights of the non-ignored
            targets; nan when all are ignored), 'sum' or 'none'.

    Returns:
        A 0-d tensor, or shape (), (N,) or (N, d1, ...) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> logp = bp.tensor([[-0.5, -1.0], [-2.0, -0.25]])
        >>> bp.nn.functional.nll_loss(logp, bp.tensor([0, 1]))
        tensor(0.375)
    """
    fn = "nll_loss"
    _check_reduction(fn, reduction)
    w = _class_weight(fn, weight, input)
    t = _class_targets(fn, input, target, ignore_index)
    return nn_ops.NLLLoss.apply(input, target=t, weight=w, ignore_index=ignore_index,
                            reduction=reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy between probabilities and targets:
    -weight·[t·ln x + (1 - t)·ln(1 - x)], with each log clamped to >= -100 as in PyTorch.

    Prefer ``binary_cross_entropy_with_logits`` on logits: it is stable where sigmoid saturates.

    Args:
        input: probabilities in [0, 1], any shape (*).
        target: floats of the same shape (*), usually in [0, 1] (differentiable).
        weight: rescaling weight broadcastable to (*) (not differentiable, as in PyTorch).
        reduction: 'mean' (default: over all elements), 'sum' or 'none'.

    Returns:
        A 0-d tensor, or shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> bce = bp.nn.functional.binary_cross_entropy
        >>> loss = bce(bp.tensor([0.5, 1.0]), bp.tensor([1.0, 0.0]))
        >>> round(loss.item(), 4)  # (ln 2 + 100) / 2: the log of 1 - 1 = 0 is clamped to -100
        50.3466
    """
    fn = "binary_cross_entropy"
    _check_reduction(fn, reduction)
    target = _as_tensor(target)
    _check_float_target(fn, input, target)
    x = input.data
    if not np.all((x >= 0) & (x <= 1)):  # written so that NaN fails too
        bad = x[~((x >= 0) & (x <= 1))]
        raise ValueError(
            f"{fn}: input must hold probabilities in [0, 1], found {bad[:5].tolist()}; apply "
            "sigmoid first, or pass the logits to binary_cross_entropy_with_logits"
        )
    w = _constant(fn, "weight", weight, input.dtype)
    loss = BinaryCrossEntropy.apply(input, target)
    if w is not None:
        _check_broadcasts_to(fn, "weight", w, input.shape)
        loss = loss * const(w)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None, *, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on logits: -weight·[p·t·ln σ(x) + (1 - t)·ln(1 - σ(x))], with
    p = pos_weight, computed as weight·[(1 - t)·x + (1 + (p - 1)·t)·softplus(-x)], which is
    finite for any |x| (PyTorch's log-sum-exp form).

    Args:
        input: logits, any shape (*).
        target: floats of the same shape (*), usually in [0, 1] (differentiable).
        weight: rescaling weight broadcastable to (*) (not differentiable, as in PyTorch).
        reduction: 'mean' (default: over all elements), 'sum' or 'none'.
        pos_weight: weight of the positive term, broadcast along the last dimension: shape
            (C,) for input (N, C) (not differentiable, as in PyTorch).

    Returns:
        A 0-d tensor, or shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> bce = bp.nn.functional.binary_cross_entropy_with_logits
        >>> loss = bce(bp.tensor([1e4, -1e4, 0.0]), bp.tensor([1.0, 0.0, 1.0]), reduction='none')
        >>> [round(v, 4) for v in loss.tolist()]
        [0.0, 0.0, 0.6931]
    """
    fn = "binary_cross_entropy_with_logits"
    _check_reduction(fn, reduction)
    target = _as_tensor(target)
    _check_float_target(fn, input, target)
    w = _constant(fn, "weight", weight, input.dtype)
    pw = _constant(fn, "pos_weight", pos_weight, input.dtype)
    # softplus(-x) = -ln σ(x) as log1p(e^{-|x|}) + max(-x, 0): no overflow at any |x|; an
    # infinite threshold keeps it exact where PyTorch's softplus would switch to linear
    neg_log_sigmoid = softplus(-input, 1.0, math.inf)
    if pw is None:
        loss = (1 - target) * input + neg_log_sigmoid
    else:
        _check_broadcasts_to(fn, "pos_weight", pw, input.shape)
        loss = (1 - target) * input + ((const(pw) - 1) * target + 1) * neg_log_sigmoid
    if w is not None:
        _check_broadcasts_to(fn, "weight", w, input.shape)
        loss = loss * const(w)
    return _reduce(loss, reduction)



# --- kl_div ---


def kl_div(input: Tensor, target: Tensor, *, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence, pointwise t·(ln t - x) from log-probabilities x.

    With ``log_target=True`` the target holds log-probabilities too: exp(t)·(t - x). Otherwise
    the term t·ln t is taken as 0 where t = 0 (PyTorch's xlogy). Both the input and the target
    are differentiable.

    Args:
        input: log-probabilities, any shape (*), usually (N, C).
        target: probabilities (or log-probabilities) of the same shape (*); other shapes that
            broadcast are broadcast, as in PyTorch.
        reduction: 'mean' (default, with PyTorch's warning: the mean over *all* elements, which
            is not the KL divergence), 'batchmean' (the sum divided by the batch size
            ``input.shape[0]``, the mathematical KL divergence per sample; the sum for a 0-d
            input), 'sum' or 'none'.
        log_target: whether ``target`` is given as log-probabilities.

    Returns:
        A 0-d tensor, or the broadcast shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> logq = bp.tensor([[0.5, 0.5]]).log()
        >>> p = bp.tensor([[1.0, 0.0]])
        >>> round(bp.nn.functional.kl_div(logq, p, reduction='batchmean').item(), 4)  # ln 2
        0.6931
    """
    fn = "kl_div"
    _check_reduction(fn, reduction, _KL_REDUCTIONS)
    target = _as_tensor(target)
    try:
        np.broadcast_shapes(input.shape, target.shape)
    except ValueError:
        raise ShapeError(
            f"{fn}: target of shape {target.shape} does not fit input of shape {input.shape}; "
            "give the target the input's shape"
        ) from None
    if reduction == "mean":
        warnings.warn(
            f"{fn}: reduction='mean' divides the total loss by both the batch size and the "
            "support size; 'batchmean' divides only by the batch size, as the definition of the "
            "KL divergence does. ('mean' is kept as PyTorch computes it.)",
            stacklevel=2,
        )
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = _xlogx(target) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


def _xlogx(t: Tensor) -> Tensor:
    """t·ln t, taken as 0 at t = 0 (with gradient 0 there); NaN for t < 0, as in PyTorch."""
    zero = t.data == 0
    with np.errstate(invalid="ignore", divide="ignore"):  # ln of a negative target: NaN
        return where(zero, 0.0, t * where(zero, 1.0, t).log())
