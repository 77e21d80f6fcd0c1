"""Sorting and selection: sort, argsort, topk, triu/tril, index_fill, and the indices
that the in-place fills (``fill_diagonal_``, ``index_fill_``, ``masked_fill_``) write.

All composites (STYLE: none needs its own gradient): the order is found in NumPy, with no
gradient, and the values are picked with the differentiable ``gather`` / ``getitem`` /
``index_put``, whose backward scatters the gradient back to where each value came from.
"""

from __future__ import annotations

import numpy as np

from backprop.errors import ShapeError
from backprop.ops._util import norm_dim
from backprop.ops.elementwise import where
from backprop.ops.reduction import _ValuesIndices
from backprop.ops.shape import gather, index_put
from backprop.tensor import Tensor, _wrap


def _order(x: np.ndarray, dim: int, descending: bool) -> np.ndarray:
    """The stable sorting permutation of ``x`` along ``dim`` (ties keep their order)."""
    if descending:
        # negate instead of reversing an ascending sort, so equal values keep their order
        x = -x.astype(np.int64) if x.dtype.kind in "bu" else -x
    return np.argsort(x, axis=dim, kind="stable")


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """The indices that sort ``input`` along ``dim`` (int64; no gradient). Sorting is always
    stable here, so ``stable`` changes nothing."""
    if input.ndim == 0:
        return _wrap(np.zeros((), np.int64), False, None, 0)
    d = norm_dim("argsort", dim, input.ndim)
    return _wrap(_order(input.data, d, descending), False, None, 0)


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """Sort along ``dim``: returns ``(values, indices)`` (also ``.values``, ``.indices``).

    Differentiable in ``values``: each gradient goes back to the position the value came from.
    Ties keep their original order (a stable sort, whatever ``stable`` says).

    Example:
        >>> import backprop as bp
        >>> values, indices = bp.sort(bp.tensor([3.0, 1.0, 2.0]), descending=True)
        >>> values, indices
        (tensor([3., 2., 1.]), tensor([0, 2, 1]))
    """
    if input.ndim == 0:
        return _ValuesIndices(input, _wrap(np.zeros((), np.int64), False, None, 0))
    d = norm_dim("sort", dim, input.ndim)
    indices = _order(input.data, d, descending)
    return _ValuesIndices(gather(input, d, indices), _wrap(indices, False, None, 0))


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The ``k`` largest (or smallest) values along ``dim`` and their indices, largest first.

    Shapes: (..., n, ...) -> (..., k, ...) for values and int64 indices. Differentiable in the
    values. Among equal values the earlier index comes first.

    Raises:
        RuntimeError: ``k`` is negative or larger than the dimension (as PyTorch).

    Example:
        >>> import backprop as bp
        >>> bp.topk(bp.tensor([1.0, 5.0, 3.0, 4.0]), 2)
        (tensor([5., 4.]), tensor([1, 3]))
    """
    d = norm_dim("topk", dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    k = int(k)
    if not 0 <= k <= n:
        raise RuntimeError(
            f"topk: selected index k out of range: k={k} but dim {dim} of the input of shape "
            f"{tuple(input.shape)} has {n} elements"
        )
    if input.ndim == 0:
        return sort(input)
    order = _order(input.data, d, largest)
    indices = np.take(order, np.arange(k), axis=d)
    return _ValuesIndices(gather(input, d, indices), _wrap(indices, False, None, 0))


def masked_fill_index(input: Tensor, mask) -> np.ndarray:
    """``mask`` broadcast to ``input``'s shape, the index ``masked_fill_`` writes."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"masked_fill_: expected a bool mask, got dtype {m.dtype}")
    try:
        return np.broadcast_to(m, input.shape)
    except ValueError:
        raise ShapeError(f"masked_fill_: the mask of shape {m.shape} cannot be broadcast to the "
                         f"tensor's shape {tuple(input.shape)}") from None


def _triangle(op: str, input: Tensor, diagonal: int, upper: bool) -> Tensor:
    if input.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions, got shape "
                           f"{tuple(input.shape)}")
    rows, cols = input.shape[-2:]
    keep = np.triu(np.ones((rows, cols), bool), diagonal) if upper else np.tril(
        np.ones((rows, cols), bool), diagonal)
    return where(keep, input, np.zeros((), input.dtype))


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dimensions (on and above ``diagonal``); zeros below.
    Differentiable. Shape: (*, m, n) -> same.

    Example:
        >>> import backprop as bp
        >>> bp.triu(bp.ones(3, 3), diagonal=1)
        tensor([[0., 1., 1.],
                [0., 0., 1.],
                [0., 0., 0.]])
    """
    return _triangle("triu", input, diagonal, True)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dimensions (on and below ``diagonal``); zeros above.
    Differentiable. Shape: (*, m, n) -> same."""
    return _triangle("tril", input, diagonal, False)


def _index_vector(op: str, index) -> np.ndarray:
    arr = index.data if isinstance(index, Tensor) else np.asarray(index)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got dtype {arr.dtype}")
    if arr.ndim > 1:
        raise ShapeError(f"{op}: index must be a vector or a scalar, got shape {arr.shape}")
    return arr.reshape(-1)


def index_fill_index(input: Tensor, dim: int, index) -> tuple:
    """The ``tensor[...]`` index that ``index_fill`` writes: every entry at positions ``index``
    along ``dim``, after checking the range as PyTorch does."""
    op = "index_fill"
    d = norm_dim(op, dim, input.ndim)
    idx = _index_vector(op, index)
    n = input.shape[d] if input.ndim else 1
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"{op}: index {idx.max() if idx.max() >= n else idx.min()} is out of "
                         f"bounds for dim {dim} with size {n}")
    if input.ndim == 0:
        return ()
    return (slice(None),) * d + (idx,)


def index_fill(input: Tensor, dim: int, index, value) -> Tensor:
    """A copy of ``input`` with ``value`` at positions ``index`` along ``dim``; differentiable
    in ``input`` (and in ``value`` when it is a 0-d Tensor)."""
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"index_fill: only supports a 0-dimensional value tensor, but got "
                           f"tensor with {value.ndim} dimension(s)")
    return index_put(input, index_fill_index(input, dim, index), value)


def diagonal_index(shape: tuple, wrap: bool = False) -> tuple:
    """The index of the main diagonal that ``fill_diagonal_`` writes (PyTorch's rules).

    2-D: (i, i) for i < min(rows, cols); with ``wrap`` on a tall matrix the diagonal starts
    again every cols + 1 rows. More dimensions: all sizes must be equal, (i, i, ..., i).
    """
    if len(shape) < 2:
        raise RuntimeError(f"fill_diagonal_: dimensions must larger than 1, got shape {shape}")
    if len(shape) > 2 and len(set(shape)) != 1:
        raise RuntimeError(f"fill_diagonal_: all dimensions of input must be of equal length, "
                           f"got shape {shape}")
    if len(shape) > 2:
        i = np.arange(shape[0])
        return (i,) * len(shape)
    rows, cols = shape
    if wrap and rows > cols:
        # the flat positions 0, cols + 1, 2(cols + 1), ...: a blank row between repetitions
        flat = np.arange(0, rows * cols, cols + 1)
        return flat // cols, flat % cols
    i = np.arange(min(rows, cols))
    return i, i


__all__ = ["argsort", "diagonal_index", "index_fill", "masked_fill_index", "sort",
           "topk", "tril", "triu"]
