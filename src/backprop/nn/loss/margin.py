"""Margin and embedding losses: multi_margin, hinge_embedding, cosine_embedding, triplet_margin."""

from __future__ import annotations

import math

import numpy as np

from backprop.errors import ShapeError
from backprop.nn.loss._common import (
    _COSINE_EPS,
    _check_broadcasts_to,
    _check_reduction,
    _class_targets,
    _class_weight,
    _reduce,
)
from backprop.ops._util import const
from backprop.ops.activation import relu
from backprop.ops.elementwise import clamp, minimum, where
from backprop.ops.reduction import norm
from backprop.tensor import Tensor

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
