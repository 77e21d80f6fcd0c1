"""Indexing ops, in adjoint pairs: getitem and a scatter into zeros, gather and scatter_add,
index_select and index_add, index_put (``ops.shape`` re-exports every name)."""

from __future__ import annotations

import builtins

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import ShapeError
from backprop.ops._util import const, norm_dim
from backprop.tensor import Tensor, _raw_index

# --- indexing ---


def _is_advanced(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return builtins.any(
        isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype != bool for i in items
    )


class GetItem(Function):
    """y = x[index] (basic or advanced);  ∂L/∂x = zeros with ∂L/∂y added at index
    (repeated indices accumulate)."""

    label = "Index"
    is_view = True  # basic indexing (slices, ints, None, ...): a view, as PyTorch's

    @staticmethod
    def forward(ctx, x, index=None):
        ctx.x_shape, ctx.index = x.shape, index
        try:
            y = x[index]
            if not isinstance(y, np.ndarray):  # all-int index: NumPy gives a scalar copy
                y = x[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None
        return y

    @staticmethod
    def backward(ctx, grad_out):
        return ScatterItem.apply(grad_out, shape=ctx.x_shape, index=ctx.index)


class ScatterItem(Function):
    """y = zeros(shape) with g added at index;  ∂L/∂g = (∂L/∂y)[index]. getitem's adjoint."""

    @staticmethod
    def forward(ctx, g, shape=(), index=None):
        ctx.index = index
        out = np.zeros(shape, dtype=g.dtype)
        if _is_advanced(index):
            np.add.at(out, index, g)  # accumulates repeated indices, unlike out[index] += g
        else:
            out[index] = g
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return getitem(grad_out, ctx.index)


class IndexPut(Function):
    """y = x with y[index] = v;  ∂L/∂x = ∂L/∂y with zeros at index, ∂L/∂v = (∂L/∂y)[index]
    summed to v's shape. Backs a recorded ``tensor[index] = value``."""

    broadcasts = True  # v broadcasts into the indexed region

    @staticmethod
    def forward(ctx, x, v, index=None):
        ctx.index = index
        out = x.copy()
        try:
            out[index] = v
        except ValueError:
            raise ShapeError(
                f"setitem: cannot assign a value of shape {np.shape(v)} to the indexed region "
                f"of shape {x[index].shape} (tensor shape {x.shape})"
            ) from None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        need_x, need_v = ctx.needs_input_grad
        grad_x = IndexPut.apply(grad_out, 0.0, index=ctx.index) if need_x else None
        grad_v = getitem(grad_out, ctx.index) if need_v else None
        return grad_x, grad_v


class Gather(Function):
    """y[i][j][k] = x[i][index[i][j][k]][k] (for dim=1);  ∂L/∂x = scatter_add of ∂L/∂y at index."""

    @staticmethod
    def forward(ctx, x, index, dim=0):
        ctx.x_shape, ctx.dim, ctx.index = x.shape, dim, index
        # PyTorch lets index be smaller than x in the other dimensions: use the leading part
        region = tuple(slice(0, n) if d != dim else slice(None) for d, n in enumerate(index.shape))
        return np.take_along_axis(x[region], index, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        zeros = const(np.zeros(ctx.x_shape, dtype=grad_out.dtype))
        return scatter_add(zeros, ctx.dim, ctx.index, grad_out), None


class ScatterAdd(Function):
    """y = x, then y[i][index[i][j]][k] += src[i][j][k] (for dim=1);
    ∂L/∂x = ∂L/∂y, ∂L/∂src = gather(∂L/∂y, dim, index) (zero outside index's extent)."""

    @staticmethod
    def forward(ctx, x, index, src, dim=0):
        ctx.dim, ctx.src_shape, ctx.index = dim, np.shape(src), index
        out = x.copy()
        np.add.at(out, _scatter_coords(index, dim), _leading(src, index.shape))
        return out

    @staticmethod
    def backward(ctx, grad_out):
        need_x, _, need_src = ctx.needs_input_grad
        grad_src = None
        if need_src:
            grad_src = gather(grad_out, ctx.dim, ctx.index)
            if grad_src.shape != ctx.src_shape:
                widths = [(0, s - n) for s, n in zip(ctx.src_shape, grad_src.shape)]
                grad_src = pad(grad_src, tuple(v for w in reversed(widths) for v in w))
        return (grad_out if need_x else None), None, grad_src


def _scatter_coords(index: np.ndarray, dim: int) -> tuple:
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index
    return tuple(coords)


def _leading(src, shape):
    if np.ndim(src) == 0:
        return src
    return src[tuple(slice(0, n) for n in shape)]


class IndexSelect(Function):
    """y = x.take(index, dim);  ∂L/∂x = index_add of ∂L/∂y into zeros at index along dim."""

    @staticmethod
    def forward(ctx, x, index, dim=0):
        ctx.x_shape, ctx.dim, ctx.index = x.shape, dim, index
        return np.take(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        zeros = const(np.zeros(ctx.x_shape, dtype=grad_out.dtype))
        return index_add(zeros, ctx.dim, ctx.index, grad_out), None


class IndexAdd(Function):
    """y = x, then y.select(dim, index[i]) += alpha·src.select(dim, i);
    ∂L/∂x = ∂L/∂y, ∂L/∂src = alpha·index_select(∂L/∂y, dim, index)."""

    @staticmethod
    def forward(ctx, x, index, src, dim=0, alpha=1):
        ctx.dim, ctx.alpha, ctx.index = dim, alpha, index
        out = x.copy()
        np.add.at(out, (slice(None),) * dim + (index,), src * alpha if alpha != 1 else src)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        need_x, _, need_src = ctx.needs_input_grad
        grad_src = None
        if need_src:
            grad_src = index_select(grad_out, ctx.dim, ctx.index)
            if ctx.alpha != 1:
                grad_src = grad_src * ctx.alpha
        return (grad_out if need_x else None), None, grad_src


# --- functional wrappers ---


def getitem(input, index) -> Tensor:
    """``input[index]`` with NumPy's basic and advanced indexing; differentiable."""
    return GetItem.apply(input, index=_raw_index(index))


def index_put(input, index, value) -> Tensor:
    """A copy of ``input`` with ``value`` written at ``index`` (differentiable in both)."""
    return IndexPut.apply(input, value, index=_raw_index(index))


def gather(input, dim: int, index) -> Tensor:
    """Pick values along ``dim`` at ``index`` (an int64 tensor of input's rank)."""
    idx = _index_array("gather", index)
    if idx.ndim != input.ndim:
        raise ShapeError(
            f"gather: index has {idx.ndim} dimensions but input has {input.ndim}; they must match"
        )
    return Gather.apply(input, index, dim=norm_dim("gather", dim, input.ndim))


def scatter_add(input, dim: int, index, src) -> Tensor:
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (repeats accumulate)."""
    _index_array("scatter_add", index)
    return ScatterAdd.apply(input, index, src, dim=norm_dim("scatter_add", dim, input.ndim))


def index_select(input, dim: int, index) -> Tensor:
    """Select entries ``index`` (a 1-D int tensor) along ``dim``."""
    _index_array("index_select", index)
    return IndexSelect.apply(input, index, dim=norm_dim("index_select", dim, input.ndim))


def index_add(input, dim: int, index, source, *, alpha=1) -> Tensor:
    """A copy of ``input`` with ``alpha * source`` added at ``index`` along ``dim``."""
    _index_array("index_add", index)
    return IndexAdd.apply(input, index, source, dim=norm_dim("index_add", dim, input.ndim),
                          alpha=alpha)


def _index_array(op, index) -> np.ndarray:
    arr = index.data if isinstance(index, Tensor) else np.asarray(index)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got dtype {arr.dtype}")
    return arr


# ScatterAdd's backward pads: ops.shape imports this module at its end, so bound last
from backprop.ops.shape import pad  # noqa: E402
