"""Argument checks and helpers shared by the losses."""

from __future__ import annotations

import numpy as np

from backprop.autograd.grad_mode import is_grad_enabled
from backprop.errors import ShapeError
from backprop.ops._util import const
from backprop.tensor import Tensor

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
