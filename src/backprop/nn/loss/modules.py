"""The loss modules (``MSELoss``, ``CrossEntropyLoss``, ...): PyTorch's classes over the
functions."""

from __future__ import annotations

import math

from backprop.nn.loss._common import (
    _KL_REDUCTIONS,
    _REDUCTIONS,
    _check_reduction,
)
from backprop.nn.loss.classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    nll_loss,
)
from backprop.nn.loss.margin import (
    _check_margin,
    _check_multi_margin_p,
    cosine_embedding_loss,
    hinge_embedding_loss,
    multi_margin_loss,
    triplet_margin_loss,
)
from backprop.nn.loss.regression import (
    huber_loss,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)
from backprop.nn.module import Module
from backprop.tensor import Tensor

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
