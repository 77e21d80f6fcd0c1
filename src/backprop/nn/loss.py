"""Loss functions and loss modules, with PyTorch's names, signatures, defaults and semantics.

The functions (``mse_loss``, ``l1_loss``, ``huber_loss``, ``smooth_l1_loss``, ``cross_entropy``,
``nll_loss``, ``binary_cross_entropy``, ``binary_cross_entropy_with_logits``, ``kl_div``,
``multi_margin_loss``, ``hinge_embedding_loss``, ``cosine_embedding_loss``,
``triplet_margin_loss``) are re-exported by ``backprop.nn.functional``; the modules (``MSELoss``,
``CrossEntropyLoss``, ...) by ``backprop.nn``. Every loss takes ``reduction='mean' | 'sum' |
'none'`` (``kl_div`` also ``'batchmean'``).

Only cross_entropy, nll_loss and binary_cross_entropy use primitives of their own; every other
loss is a composite of core ops, so its gradients (of any order) follow automatically. cross_entropy
with class indices is one ``CrossEntropy`` op (log-softmax and NLL fused: stable for logits of
±1e4, and its backward is softmax - onehot in three in-place passes), and
binary_cross_entropy has its own primitive (``BinaryCrossEntropy``) to keep PyTorch's finite
gradient where the log is clamped. See ``backprop.ops.nn_ops`` for the reasons.

Arguments after the first few are keyword-only: PyTorch still carries the deprecated
``size_average`` and ``reduce`` in those positions, so a positional call that means one thing in
PyTorch fails here instead of silently meaning another.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from backprop.autograd.grad_mode import is_grad_enabled
from backprop.errors import ShapeError
from backprop.nn.module import Module
from backprop.ops import nn_ops
from backprop.ops._util import const
from backprop.ops.elementwise import clamp, minimum, relu, softplus, where
from backprop.ops.nn_ops import BinaryCrossEntropy, _class_shape, log_softmax
from backprop.ops.reduction import norm
from backprop.tensor import Tensor

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CosineEmbeddingLoss", "CrossEntropyLoss",
    "HingeEmbeddingLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MSELoss", "MultiMarginLoss",
    "NLLLoss", "SmoothL1Loss", "TripletMarginLoss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_embedding_loss",
    "cross_entropy", "hinge_embedding_loss", "huber_loss", "kl_div", "l1_loss", "mse_loss",
    "multi_margin_loss", "nll_loss", "smooth_l1_loss", "triplet_margin_loss",
]

_REDUCTIONS = ("mean", "sum", "none")
_KL_REDUCTIONS = ("mean", "batchmean", "sum", "none")
_COSINE_EPS = 1e-12  # added to each squared norm, as PyTorch's cosine_embedding_loss does


# --- argument checks shared by the losses ---


def _check_reduction(fn: str, reduction, allowed: tuple = _REDUCTIONS) -> None:
    if reduction not in allowed:
        names = [repr(r) for r in allowed]
        raise ValueError(
            f"{fn}: reduction must be {', '.join(names[:-1])} or {names[-1]}, got {reduction!r}"
        )


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _as_tensor(value) -> Tensor:
    return value if isinstance(value, Tensor) else const(np.asarray(value))


def _constant(fn: str, name: str, value, dtype) -> np.ndarray | None:
    """A weight PyTorch does not differentiate, as an array of the input's dtype (no upcast)."""
    if value is None:
        return None
    if isinstance(value, Tensor) and value.requires_grad and is_grad_enabled():
        raise RuntimeError(
            f"{fn}: {name} is not differentiable (as in PyTorch), but it requires grad; pass "
            f"{name}.detach()"
        )
    arr = value.data if isinstance(value, Tensor) else np.asarray(value)
    return arr.astype(dtype, copy=False)


def _check_broadcasts_to(fn: str, name: str, arr: np.ndarray, shape: tuple) -> None:
    try:
        fits = np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(
            f"{fn}: {name} of shape {arr.shape} does not broadcast to the input's shape {shape}; "
            f"give it the input's shape or one that broadcasts to it (e.g. {shape[-1:]})"
        )


def _check_float_target(fn: str, input: Tensor, target: Tensor) -> None:
    if target.shape != input.shape:
        raise ShapeError(
            f"{fn}: target of shape {target.shape} must have the input's shape {input.shape} "
            "(one target per input element); reshape the target, e.g. target.view_as(input)"
        )
    if target.dtype.kind != "f":
        raise TypeError(
            f"{fn}: target must be a floating-point tensor of values in [0, 1], got dtype "
            f"{target.dtype}; convert it with target.float()"
        )


def _class_dim(fn: str, input: Tensor) -> int:
    if input.ndim == 0:
        raise ShapeError(
            f"{fn}: input of shape () has no class dimension; expected (C,), (N, C) or "
            "(N, C, d1, ...) scores"
        )
    return 1 if input.ndim > 1 else 0


def _class_targets(fn: str, input: Tensor, target, ignore_index: int | None) -> np.ndarray:
    """Check class-index targets against the input and return them as an int64 array."""
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    cdim = _class_dim(fn, input)
    n_classes = input.shape[cdim]
    expected = () if cdim == 0 else (input.shape[0],) + input.shape[2:]
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{fn}: class-index targets must be integers, got a {t.dtype} target of shape "
            f"{t.shape} for input {input.shape}; convert it with target.long()"
            + (", or pass class probabilities of the input's shape" if fn == "cross_entropy"
               else "")
        )
    if t.shape != expected:
        batch = ""
        if cdim == 1 and t.ndim and t.shape[0] != input.shape[0]:
            batch = f" (batch sizes differ: input {input.shape[0]}, target {t.shape[0]})"
        raise ShapeError(
            f"{fn}: target of shape {t.shape} does not fit input of shape {input.shape}{batch}: "
            f"class indices need shape {expected}, the input's shape without its class "
            f"dimension {cdim} (of size C={n_classes})"
        )
    bad = (t < 0) | (t >= n_classes)
    if ignore_index is not None:
        bad &= t != ignore_index
    if bad.any():
        found = np.unique(t[bad])
        ignored = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise IndexError(
            f"{fn}: target values must be class indices in [0, {n_classes}){ignored}; "
            f"found {found[:5].tolist()} (input of shape "
            f"{input.shape} has C={n_classes} classes); check the labels and the number of "
            "outputs of the last layer"
        )
    return t.astype(np.int64, copy=False)


def _class_weight(fn: str, weight, input: Tensor) -> np.ndarray | None:
    w = _constant(fn, "weight", weight, input.dtype)
    n_classes = input.shape[_class_dim(fn, input)]
    if w is not None and w.shape != (n_classes,):
        raise ShapeError(
            f"{fn}: weight of shape {w.shape} must hold one weight per class: shape "
            f"({n_classes},) for input {input.shape}"
        )
    return w


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


# --- margin losses ---


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Tensor | None = None, *, reduction: str = "mean") -> Tensor:
    """Multi-class hinge (SVM) loss: per sample, Σ_{i≠y} w[y]·max(0, margin - x[y] + x[i])^p / C.

    Args:
        input: scores (N, C), or (C,) for one sample.
        target: class indices (int64) of shape (N,) (or () for a (C,) input), each in [0, C).
        p: 1 (default) or 2.
        margin: the margin each wrong class must stay below the true one.
        weight: (C,) rescaling weight per class, applied by the true class y (not
            differentiable, as in PyTorch).
        reduction: 'mean' (default: over the samples), 'sum' or 'none'.

    Returns:
        A 0-d tensor, or shape (N,) (or ()) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> x = bp.tensor([[0.1, 0.2, 0.4, 0.8]])
        >>> round(bp.nn.functional.multi_margin_loss(x, bp.tensor([3])).item(), 4)
        0.325
    """
    fn = "multi_margin_loss"
    _check_reduction(fn, reduction)
    _check_multi_margin_p(fn, p)
    if input.ndim not in (1, 2) or input.numel() == 0:
        raise ShapeError(
            f"{fn}: input of shape {input.shape} must hold scores of shape (N, C), or (C,) for "
            "one sample, with C > 0"
        )
    t = _class_targets(fn, input, target, None)
    w = _class_weight(fn, weight, input)
    x = input if input.ndim == 2 else input.unsqueeze(0)
    y = t.reshape(-1)
    n_classes = x.shape[1]
    x_y = x[np.arange(x.shape[0]), y].unsqueeze(1)
    h = relu(margin - x_y + x)
    if p == 2:
        h = h * h
    # the true class's own term (max(0, margin)) is left out of the sum
    others = np.arange(n_classes) != y[:, None]
    loss = (h * const(others.astype(input.dtype))).sum(1) / n_classes
    if w is not None:
        loss = loss * const(w[y])
    if input.ndim == 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def _check_multi_margin_p(fn: str, p) -> None:
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"{fn}: only p == 1 and p == 2 are supported (as in PyTorch), got {p!r}")


def _sign_targets(fn: str, target, shape: tuple, exact: bool) -> np.ndarray:
    """Check ±1 targets (1: similar, -1: dissimilar) and return where they are 1."""
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if exact:
        if t.shape != shape:
            raise ShapeError(f"{fn}: target of shape {t.shape} must have shape {shape}")
    else:
        _check_broadcasts_to(fn, "target", t, shape)
    bad = (t != 1) & (t != -1)
    if bad.any():
        raise ValueError(
            f"{fn}: target values must be 1 (similar) or -1 (dissimilar), found "
            f"{np.unique(t[bad])[:5].tolist()}"
        )
    return t == 1


def _check_margin(fn: str, margin, low: float = -math.inf, high: float = math.inf,
                  rule: str = "a finite number") -> None:
    if isinstance(margin, bool) or not (low <= margin <= high and math.isfinite(margin)):
        raise ValueError(f"{fn}: margin must be {rule}, got {margin!r}")


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, *,
                         reduction: str = "mean") -> Tensor:
    """Hinge embedding loss: x where the target is 1, max(0, margin - x) where it is -1.

    Used with x a distance (e.g. the L1 distance of a pair) and the target saying whether the
    pair is similar (1) or dissimilar (-1).

    Args:
        input: any shape (*).
        target: 1 or -1 per element: the input's shape (*), or one that broadcasts to it (not
            differentiable).
        margin: the distance beyond which dissimilar pairs cost nothing.
        reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
        A 0-d tensor, or shape (*) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> x, t = bp.tensor([0.3, 0.25, 2.0]), bp.tensor([1.0, -1.0, -1.0])
        >>> bp.nn.functional.hinge_embedding_loss(x, t, reduction='none')
        tensor([0.3 , 0.75, 0.  ])
    """
    fn = "hinge_embedding_loss"
    _check_reduction(fn, reduction)
    _check_margin(fn, margin)
    similar = _sign_targets(fn, target, input.shape, exact=False)
    # clamp, not relu: PyTorch's clamp_min passes the gradient at margin - x = 0 too
    return _reduce(where(similar, input, clamp(margin - input, min=0.0)), reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor,
                          margin: float = 0.0, *, reduction: str = "mean") -> Tensor:
    """Cosine embedding loss: 1 - cos(x1, x2) where the target is 1, max(0, cos(x1, x2) - margin)
    where it is -1.

    cos = Σ x1·x2 / √((Σ x1² + ε)(Σ x2² + ε)) with ε = 1e-12, as in PyTorch, so a zero vector
    gives cos = 0 and a finite gradient.

    Args:
        input1: (N, D), or (D,) for one pair.
        input2: the same shape (or one that broadcasts with it).
        target: 1 or -1 per pair, shape (N,) (or ()); not differentiable.
        margin: in [-1, 1]; 0 (default) to 0.5 is suggested.
        reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
        A 0-d tensor, or shape (N,) (or ()) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> a, b = bp.tensor([[1.0, 0.0], [1.0, 1.0]]), bp.tensor([[0.0, 1.0], [1.0, 1.0]])
        >>> bp.nn.functional.cosine_embedding_loss(a, b, bp.tensor([1, -1]), reduction='none')
        tensor([1., 1.])
    """
    fn = "cosine_embedding_loss"
    _check_reduction(fn, reduction)
    _check_margin(fn, margin, -1.0, 1.0, "in [-1, 1]")
    t_shape = target.shape if isinstance(target, Tensor) else np.shape(target)
    if len(t_shape) > 1 or input1.ndim != len(t_shape) + 1 or input2.ndim != input1.ndim:
        raise ShapeError(
            f"{fn}: inputs of shapes {input1.shape} and {input2.shape} with a target of shape "
            f"{t_shape}: expected inputs (N, D) with a target (N,), or inputs (D,) with a "
            "target ()"
        )
    try:
        shape = np.broadcast_shapes(input1.shape, input2.shape)
    except ValueError:
        raise ShapeError(
            f"{fn}: input1 of shape {input1.shape} and input2 of shape {input2.shape} do not "
            "fit; give them the same shape"
        ) from None
    similar = _sign_targets(fn, target, shape[:-1], exact=True)
    dim = input1.ndim - 1
    dot = (input1 * input2).sum(dim)
    sq1 = (input1 * input1).sum(dim) + _COSINE_EPS
    sq2 = (input2 * input2).sum(dim) + _COSINE_EPS
    cos = dot / (sq1 * sq2).sqrt()
    return _reduce(where(similar, 1 - cos, clamp(cos - margin, min=0.0)), reduction)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor,
                        margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                        swap: bool = False, *, reduction: str = "mean") -> Tensor:
    """Triplet margin loss: max(0, margin + d(a, pos) - d(a, neg)) per triplet.

    d is PyTorch's ``pairwise_distance``: the p-norm of x1 - x2 + eps over the last dimension
    (eps keeps the norm's gradient finite when x1 = x2).

    Args:
        anchor: (N, D), or (D,) for one triplet.
        positive: the same number of dimensions; shapes that broadcast together.
        negative: the same number of dimensions; shapes that broadcast together.
        margin: greater than 0.
        p: the norm degree, greater than 0.
        eps: added to each difference before the norm.
        swap: use min(d(a, neg), d(pos, neg)) as the negative distance (the distance swap of
            Balntas et al., 2016).
        reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
        A 0-d tensor, or shape (N,) (or ()) for ``reduction='none'``.

    Example:
        >>> import backprop as bp
        >>> a, pos, neg = bp.tensor([[0.0, 0.0]]), bp.tensor([[1.0, 0.0]]), bp.tensor([[3.0, 0.0]])
        >>> bp.nn.functional.triplet_margin_loss(a, pos, neg, eps=0.0)  # max(0, 1 + 1 - 3)
        tensor(0.)
    """
    fn = "triplet_margin_loss"
    _check_reduction(fn, reduction)
    _check_margin(fn, margin, math.ulp(0.0), math.inf, "greater than 0 (as in PyTorch)")
    if isinstance(p, bool) or not p > 0:
        raise ValueError(f"{fn}: p must be greater than 0 (the degree of the norm), got {p!r}")
    shapes = (anchor.shape, positive.shape, negative.shape)
    fits = len({len(s) for s in shapes}) == 1 and anchor.ndim > 0
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(
            f"{fn}: anchor {anchor.shape}, positive {positive.shape} and negative "
            f"{negative.shape} must have the same number of dimensions (at least 1) and "
            "shapes that broadcast together, e.g. all (N, D)"
        )
    d_pos = _pairwise_distance(anchor, positive, p, eps)
    d_neg = _pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = minimum(d_neg, _pairwise_distance(positive, negative, p, eps))
    return _reduce(clamp(margin + d_pos - d_neg, min=0.0), reduction)


def _pairwise_distance(x1: Tensor, x2: Tensor, p: float, eps: float) -> Tensor:
    """PyTorch's pairwise_distance: ‖x1 - x2 + eps‖_p over the last dimension."""
    return norm(x1 - x2 + eps, p, -1)


# --- loss modules ---


class _Loss(Module):
    """Base of the loss modules: holds ``reduction`` (checked here, not at the first call)."""

    _reductions = _REDUCTIONS

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(type(self).__name__, reduction, self._reductions)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with a class ``weight``, registered as a buffer (saved in ``state_dict``)."""

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """Mean absolute error, ``l1_loss``. Shapes: input (*), target (*) -> () or (*) for 'none'.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error, ``mse_loss``. Shapes: input (*), target (*) -> () or (*) for 'none'.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.

    Example:
        >>> import backprop as bp
        >>> bp.nn.MSELoss()(bp.tensor([1.0, 2.0]), bp.tensor([0.0, 4.0]))
        tensor(2.5)
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy from logits, ``cross_entropy``.

    Shapes: input (N, C), (C,) or (N, C, d1, ...); target class indices (N,), () or
    (N, d1, ...), or class probabilities of the input's shape -> () or the target's
    per-position shape for 'none'.

    Args:
        weight: (C,) class weights (a buffer).
        ignore_index: class-index target to skip (-100 by default).
        reduction: 'mean' (default), 'sum' or 'none'.
        label_smoothing: ε in [0, 1].

    Example:
        >>> import backprop as bp
        >>> criterion = bp.nn.CrossEntropyLoss()
        >>> round(criterion(bp.tensor([[2.0, 0.0]]), bp.tensor([0])).item(), 4)
        0.1269
    """

    def __init__(self, weight: Tensor | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood on log-probabilities, ``nll_loss``.

    Shapes: input (N, C), (C,) or (N, C, d1, ...); target (N,), () or (N, d1, ...) -> () or
    the target's shape for 'none'.

    Args:
        weight: (C,) class weights (a buffer).
        ignore_index: target to skip (-100 by default).
        reduction: 'mean' (default), 'sum' or 'none'.
    """

    def __init__(self, weight: Tensor | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy on probabilities, ``binary_cross_entropy``.

    Shapes: input (*), target (*) -> () or (*) for 'none'.

    Args:
        weight: rescaling weight broadcastable to the input (a buffer).
        reduction: 'mean' (default), 'sum' or 'none'.
    """

    def __init__(self, weight: Tensor | None = None, *, reduction: str = "mean") -> None:
        super().__init__(weight, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, ``binary_cross_entropy_with_logits`` (stable for any
    |logit|). Shapes: input (*), target (*) -> () or (*) for 'none'.

    Args:
        weight: rescaling weight broadcastable to the input (a buffer).
        reduction: 'mean' (default), 'sum' or 'none'.
        pos_weight: weight of positive examples, broadcast along the last dimension (a buffer).
    """

    def __init__(self, weight: Tensor | None = None, *, reduction: str = "mean",
                 pos_weight: Tensor | None = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class HuberLoss(_Loss):
    """Huber loss, ``huber_loss``. Shapes: input (*), target (*) -> () or (*) for 'none'.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.
        delta: the positive threshold between the quadratic and the linear part (1.0).
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta}")
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Smooth L1 loss, ``smooth_l1_loss``. Shapes: input (*), target (*) -> () or (*) for
    'none'.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.
        beta: the non-negative threshold between the quadratic and the linear part (1.0).
    """

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        if not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be non-negative, got {beta}")
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence from log-probabilities, ``kl_div``.

    Shapes: input (*), target (*) -> () or (*) for 'none'.

    Args:
        reduction: 'mean' (default; warns, as in PyTorch), 'batchmean' (the KL divergence per
            sample), 'sum' or 'none'.
        log_target: whether the target holds log-probabilities.

    Example:
        >>> import backprop as bp
        >>> criterion = bp.nn.KLDivLoss(reduction='batchmean', log_target=True)
        >>> logq = bp.tensor([[0.5, 0.5]]).log()
        >>> criterion(logq, logq)
        tensor(0.)
    """

    _reductions = _KL_REDUCTIONS

    def __init__(self, *, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MultiMarginLoss(_WeightedLoss):
    """Multi-class hinge (SVM) loss, ``multi_margin_loss``.

    Shapes: input (N, C) or (C,); target (N,) or () -> () or the target's shape for 'none'.

    Args:
        p: 1 (default) or 2.
        margin: 1.0 by default.
        weight: (C,) class weights (a buffer).
        reduction: 'mean' (default), 'sum' or 'none'.
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Tensor | None = None, *,
                 reduction: str = "mean") -> None:
        _check_multi_margin_p("MultiMarginLoss", p)
        super().__init__(weight, reduction)
        self.p = p
        self.margin = margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return multi_margin_loss(input, target, self.p, self.margin, self.weight,
                                 reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    """Hinge embedding loss, ``hinge_embedding_loss``. Shapes: input (*), target (*) of 1 and
    -1 -> () or (*) for 'none'.

    Args:
        margin: 1.0 by default.
        reduction: 'mean' (default), 'sum' or 'none'.
    """

    def __init__(self, margin: float = 1.0, *, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return hinge_embedding_loss(input, target, self.margin, reduction=self.reduction)


class CosineEmbeddingLoss(_Loss):
    """Cosine embedding loss, ``cosine_embedding_loss``.

    Shapes: input1 (N, D) or (D,), input2 the same, target (N,) or () of 1 and -1 -> () or the
    target's shape for 'none'.

    Args:
        margin: in [-1, 1], 0.0 by default.
        reduction: 'mean' (default), 'sum' or 'none'.
    """

    def __init__(self, margin: float = 0.0, *, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return cosine_embedding_loss(input1, input2, target, self.margin,
                                     reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """Triplet margin loss, ``triplet_margin_loss``.

    Shapes: anchor, positive, negative (N, D) or (D,) -> () or (N,) (or ()) for 'none'.

    Args:
        margin: greater than 0 (1.0 by default).
        p: the norm degree (2.0).
        eps: added to each difference before the norm (1e-6).
        swap: use the distance swap.
        reduction: 'mean' (default), 'sum' or 'none'.

    Example:
        >>> import backprop as bp
        >>> a, pos, neg = bp.zeros(1, 2), bp.ones(1, 2), bp.full((1, 2), 3.0)
        >>> round(bp.nn.TripletMarginLoss(margin=5.0, eps=0.0)(a, pos, neg).item(), 4)  # 5 - √8
        2.1716
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                 swap: bool = False, *, reduction: str = "mean") -> None:
        super().__init__(reduction)
        _check_margin("TripletMarginLoss", margin, math.ulp(0.0), math.inf,
                      "greater than 0 (as in PyTorch)")
        self.margin = margin
        self.p = p
        self.eps = eps
        self.swap = swap

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return triplet_margin_loss(anchor, positive, negative, self.margin, self.p, self.eps,
                                   self.swap, reduction=self.reduction)
