"""Loss functions and loss modules, with PyTorch's names, signatures, defaults and semantics.

The functions (``mse_loss``, ``l1_loss``, ``cross_entropy``, ``nll_loss``,
``binary_cross_entropy``, ``binary_cross_entropy_with_logits``) are re-exported by
``backprop.nn.functional``; the modules (``MSELoss``, ``CrossEntropyLoss``, ...) by ``backprop.nn``.
Every loss takes ``reduction='mean' | 'sum' | 'none'``.

mse and l1 losses and binary_cross_entropy_with_logits are composites of core ops. cross_entropy
is the fused ``LogSoftmax`` followed by the ``NLLLoss`` primitive (stable for logits of ±1e4), and
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
from backprop.ops.elementwise import softplus
from backprop.ops.nn_ops import BinaryCrossEntropy, _class_shape, log_softmax
from backprop.tensor import Tensor

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "l1_loss",
    "mse_loss", "nll_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


# --- argument checks shared by the losses ---


def _check_reduction(fn: str, reduction) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
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


def _class_targets(fn: str, input: Tensor, target, ignore_index: int) -> np.ndarray:
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
    bad = ((t < 0) | (t >= n_classes)) & (t != ignore_index)
    if bad.any():
        found = np.unique(t[bad])
        raise IndexError(
            f"{fn}: target values must be class indices in [0, {n_classes}) or "
            f"ignore_index={ignore_index}; found {found[:5].tolist()} (input of shape "
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
            stacklevel=3,
        )
    diff = input - target
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


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between softmax(input) over the class dimension and the target.

    Stable for any finite logits (±1e4 included): the fused log-softmax feeds the NLLLoss
    primitive, whose gradient is softmax(input) - onehot(target) scaled, as in PyTorch.

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
    return nn_ops.NLLLoss.apply(log_softmax(input, cdim), target=t, weight=w,
                            ignore_index=ignore_index, reduction=reduction,
                            label_smoothing=label_smoothing)


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


# --- loss modules ---


class _Loss(Module):
    """Base of the loss modules: holds ``reduction`` (checked here, not at the first call)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(type(self).__name__, reduction)
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
