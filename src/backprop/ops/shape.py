"""Shape and indexing ops. Most come in adjoint pairs, each the other's backward:
reshape/reshape, permute/permute, broadcast_to/sum_to, getitem/scatter into zeros,
gather/scatter_add, index_select/index_add, pad/slice, tile/reshape-and-sum.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import ShapeError
from backprop.ops._strided import diagonal_view
from backprop.ops._util import const, norm_dim, norm_dims
from backprop.tensor import Tensor, _raw_index

# --- views: reshape, permute, broadcast ---


class Reshape(Function):
    """y = x with a new shape (same elements, C order);  ∂L/∂x = ∂L/∂y reshaped back."""

    label = "View"
    is_view = True  # when NumPy can reshape without copying

    @staticmethod
    def forward(ctx, x, shape=()):
        ctx.x_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ShapeError(
                f"reshape: cannot view a tensor of shape {x.shape} ({x.size} elements) as shape "
                f"{tuple(shape)}; the number of elements must stay the same (use -1 for one "
                "dimension to have it inferred)"
            ) from None

    @staticmethod
    def backward(ctx, grad_out):
        return reshape(grad_out, ctx.x_shape)


class Permute(Function):
    """y = x with its dimensions reordered;  ∂L/∂x = ∂L/∂y with the inverse order."""

    is_view = True

    @staticmethod
    def forward(ctx, x, dims=()):
        ctx.dims = dims
        return np.transpose(x, dims)

    @staticmethod
    def backward(ctx, grad_out):
        return permute(grad_out, tuple(np.argsort(ctx.dims)))


class BroadcastTo(Function):
    """y = x repeated along broadcast dimensions;  ∂L/∂x = sum_to(∂L/∂y, x.shape)."""

    label = "Expand"
    is_view = True  # read-only: an in-place change of an expanded tensor is refused

    @staticmethod
    def forward(ctx, x, shape=()):
        ctx.x_shape = x.shape
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ShapeError(
                f"broadcast_to: cannot broadcast shape {x.shape} to {tuple(shape)}: each "
                "dimension, aligned from the right, must equal the target or be 1"
            ) from None

    @staticmethod
    def backward(ctx, grad_out):
        return sum_to(grad_out, ctx.x_shape)


class SumTo(Function):
    """y = x summed over the dimensions that broadcasting added or stretched from 1;
    ∂L/∂x = broadcast_to(∂L/∂y, x.shape). The adjoint of broadcast_to."""

    @staticmethod
    def forward(ctx, x, shape=()):
        ctx.x_shape = x.shape
        return sum_to_array(x, shape)

    @staticmethod
    def backward(ctx, grad_out):
        return broadcast_to(grad_out, ctx.x_shape)


def sum_to_array(x: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum an array down to ``shape`` (the engine's broadcast reduction when not recording)."""
    lead = x.ndim - len(shape)
    if lead and x.shape[lead:] == shape:  # only leading dimensions were added (a bias)
        return np.add.reduce(x, axis=tuple(range(lead)))
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1
    )
    y = np.add.reduce(x, axis=axes, keepdims=True) if axes else x
    return y.reshape(shape) if lead else y


class Diagonal(Function):
    """y = the diagonal of x over (dim1, dim2) at ``offset``, as the last dimension (a view);
    ∂L/∂x = zeros with ∂L/∂y written on that diagonal."""

    is_view = True

    @staticmethod
    def forward(ctx, x, offset=0, dim1=0, dim2=1):
        ctx.x_shape = x.shape
        return diagonal_view(x, offset, dim1, dim2)

    @staticmethod
    def backward(ctx, grad_out):
        zeros = const(np.zeros(ctx.x_shape, dtype=grad_out.dtype))
        attrs = {k: ctx._attrs[k] for k in ("offset", "dim1", "dim2") if k in ctx._attrs}
        return CopySlices.apply(zeros, grad_out, chain=((Diagonal, attrs, None),))


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


# --- joining, padding, flipping, tiling ---


class Cat(Function):
    """y = the inputs joined along dim;  ∂L/∂xᵢ = the slice of ∂L/∂y that xᵢ occupies."""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        ctx.dim = dim
        ctx.sizes = [x.shape[dim] for x in xs]
        return np.concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        grads, start = [], 0
        lead = (slice(None),) * ctx.dim
        for need, size in zip(ctx.needs_input_grad, ctx.sizes):
            grads.append(getitem(grad_out, lead + (slice(start, start + size),)) if need else None)
            start += size
        return tuple(grads)


class Pad(Function):
    """y = x with a constant border;  ∂L/∂x = the interior of ∂L/∂y."""

    @staticmethod
    def forward(ctx, x, widths=(), value=0.0):
        ctx.interior = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return np.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad_out):
        return getitem(grad_out, ctx.interior)


class Flip(Function):
    """y = x reversed along dims;  ∂L/∂x = ∂L/∂y reversed along the same dims."""

    @staticmethod
    def forward(ctx, x, dims=()):
        ctx.dims = dims
        return np.flip(x, dims).copy()

    @staticmethod
    def backward(ctx, grad_out):
        return flip(grad_out, ctx.dims)


class Tile(Function):
    """y = x repeated reps times along each dimension;  ∂L/∂x = the sum over the copies."""

    @staticmethod
    def forward(ctx, x, reps=()):
        ctx.x_shape, ctx.reps = x.shape, reps
        return np.tile(x, reps)

    @staticmethod
    def backward(ctx, grad_out):
        shape = (1,) * (len(ctx.reps) - len(ctx.x_shape)) + tuple(ctx.x_shape)
        split = tuple(v for r, s in zip(ctx.reps, shape) for v in (r, s))
        g = sum(reshape(grad_out, split), tuple(range(0, len(split), 2)))
        return reshape(g, ctx.x_shape)


# --- functional wrappers ---


def _shape_args(op, shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        return tuple(map(int, shape))  # (map: a generator costs more than the ints on the hot path)
    except TypeError:
        raise TypeError(f"{op}: sizes must be ints, got {shape!r}") from None


def reshape(input, *shape) -> Tensor:
    """The same elements in a new shape (one entry may be -1). ``view`` is the same op.

    Example:
        >>> import backprop as bp
        >>> bp.arange(6).reshape(2, -1).shape
        (2, 3)
    """
    shape = _shape_args("reshape", shape)
    if shape == input.data.shape:
        return input
    return Reshape.apply(input, shape=shape)


view = reshape


def permute(input, *dims) -> Tensor:
    """Reorder the dimensions: output dimension i is input dimension ``dims[i]``."""
    dims = _shape_args("permute", dims)
    ndim = input.ndim
    if len(dims) != ndim or sorted(d % ndim for d in dims) != list(range(ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {ndim} dimensions")
    dims = tuple(d % ndim for d in dims)
    return Permute.apply(input, dims=dims)


def transpose(input, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    ndim = input.ndim
    if ndim < 2:
        return input
    d0, d1 = norm_dim("transpose", dim0, ndim), norm_dim("transpose", dim1, ndim)
    dims = list(range(ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(input, dims=tuple(dims))


def broadcast_to(input, shape) -> Tensor:
    """Repeat size-1 (and new leading) dimensions to reach ``shape`` (NumPy rules)."""
    shape = tuple(shape)
    if shape == input.shape:
        return input
    return BroadcastTo.apply(input, shape=shape)


def expand(input, *sizes) -> Tensor:
    """``broadcast_to`` with PyTorch's spelling: -1 keeps a dimension's size."""
    sizes = _shape_args("expand", sizes)
    lead = len(sizes) - input.ndim
    if lead < 0:
        raise ShapeError(f"expand: cannot expand shape {input.shape} to fewer dimensions {sizes}")
    shape = tuple(
        input.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes)
    )
    return broadcast_to(input, shape)


def sum_to(input, shape) -> Tensor:
    """Sum ``input`` down to ``shape`` (the adjoint of ``broadcast_to``)."""
    shape = tuple(shape)
    if shape == input.shape:
        return input
    return SumTo.apply(input, shape=shape)


def squeeze(input, dim=None) -> Tensor:
    """Remove size-1 dimensions (all of them, or only ``dim``, an int or a tuple)."""
    shape = input.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = norm_dims("squeeze", dim, input.ndim) or ()
        new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
    return reshape(input, new)


def unsqueeze(input, dim: int) -> Tensor:
    """Insert a size-1 dimension at ``dim`` (negative counts from the end of the result)."""
    ndim = input.ndim + 1
    d = norm_dim("unsqueeze", dim, ndim)
    shape = list(input.shape)
    shape.insert(d, 1)
    return reshape(input, tuple(shape))


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` into one. Shape (N, C, H, W) -> (N, C·H·W) for
    ``start_dim=1``."""
    if input.ndim == 0:
        return reshape(input, (1,))
    s, e = norm_dim("flatten", start_dim, input.ndim), norm_dim("flatten", end_dim, input.ndim)
    shape = input.shape
    return reshape(input, shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :])


def narrow(input, dim: int, start: int, length: int) -> Tensor:
    """The ``length`` entries of ``dim`` from ``start`` on (negative counts from the end): a view,
    as PyTorch's ``narrow``. Shape: (..., n, ...) -> (..., length, ...).

    Example:
        >>> import backprop as bp
        >>> bp.arange(10).narrow(0, 2, 3)
        tensor([2, 3, 4])
    """
    if input.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = norm_dim("narrow", dim, input.ndim)
    n = input.shape[d]
    start, length = int(start), int(length)
    if not -n <= start <= n:
        raise IndexError(f"narrow: start {start} is out of range for dim {dim} of size {n} "
                         f"(valid: {-n} to {n})")
    start = start + n if start < 0 else start
    if length < 0 or start + length > n:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                           f"({n}) of the input of shape {tuple(input.shape)}")
    return getitem(input, (slice(None),) * d + (slice(start, start + length),))


def select(input, dim: int, index: int) -> Tensor:
    """Entry ``index`` of dimension ``dim`` (which disappears): a view, as PyTorch's ``select``."""
    d = norm_dim("select", dim, input.ndim)
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select: index {index} is out of range for dim {dim} of size {n}")
    return getitem(input, (slice(None),) * d + (int(index),))


def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal over ``dim1`` and ``dim2`` (shifted by ``offset``), as the last dimension:
    a view, as PyTorch's ``diagonal``. Shape (n, n) -> (n,)."""
    d1, d2 = norm_dim("diagonal", dim1, input.ndim), norm_dim("diagonal", dim2, input.ndim)
    if d1 == d2:
        raise ValueError(f"diagonal: dim1 and dim2 must differ, both are {dim1}")
    return Diagonal.apply(input, offset=int(offset), dim1=d1, dim2=d2)


def unflatten(input, dim: int, sizes) -> Tensor:
    """Split dimension ``dim`` into ``sizes`` (one may be -1): a view when possible."""
    d = norm_dim("unflatten", dim, input.ndim)
    shape = input.shape
    return reshape(input, shape[:d] + tuple(int(s) for s in sizes) + shape[d + 1 :])


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


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension ``dim``; the other dimensions must match."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    ndim = tensors[0].ndim
    d = norm_dim("cat", dim, ndim)
    shapes = [tuple(t.shape) for t in tensors]
    for s in shapes:
        if len(s) != ndim or s[:d] + s[d + 1 :] != shapes[0][:d] + shapes[0][d + 1 :]:
            raise ShapeError(
                f"cat: shapes {', '.join(map(str, shapes))} do not fit along dim {dim}: all "
                "dimensions except dim must be equal"
            )
    return Cat.apply(*tensors, dim=d)


concat = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dimension ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = [tuple(t.shape) for t in tensors]
    if builtins.any(s != shapes[0] for s in shapes):
        raise ShapeError(
            f"stack: all tensors must have the same shape, got {', '.join(map(str, shapes))}"
        )
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(input, split_size_or_sections, dim: int = 0) -> tuple:
    """Split into pieces of ``split_size`` (the last may be smaller), or of the listed sizes."""
    d = norm_dim("split", dim, input.ndim)
    n = input.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [builtins.min(size, n - s) for s in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n:
            raise ShapeError(
                f"split: sections {sizes} sum to {builtins.sum(sizes)}, but dim {dim} has size {n}"
            )
    lead = (slice(None),) * d
    out, start = [], 0
    for s in sizes:
        out.append(getitem(input, lead + (slice(start, start + s),)))
        start += s
    return tuple(out)


def chunk(input, chunks: int, dim: int = 0) -> tuple:
    """Split into ``chunks`` pieces of equal size (the last may be smaller), as PyTorch."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = input.shape[norm_dim("chunk", dim, input.ndim)]
    return split(input, builtins.max(1, -(-n // chunks)), dim)


def pad(input, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad with a constant. ``pad`` follows PyTorch's order: (left, right) of the last dimension,
    then (top, bottom) of the one before, and so on."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: expects an even number of values, two per padded dimension, for at most "
            f"{input.ndim} dimensions; got {len(pad)}"
        )
    if builtins.any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding is not supported, got {pad}")
    widths = [(0, 0)] * input.ndim
    for k in range(len(pad) // 2):
        widths[input.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return Pad.apply(input, widths=tuple(widths), value=value)


def flip(input, dims) -> Tensor:
    """Reverse the order of elements along ``dims`` (an int or a tuple)."""
    return Flip.apply(input, dims=norm_dims("flip", dims, input.ndim))


def tile(input, dims) -> Tensor:
    """Repeat the tensor ``dims[i]`` times along each dimension (NumPy's and PyTorch's tile)."""
    reps = _shape_args("tile", (dims,) if isinstance(dims, int) else tuple(dims))
    reps = (1,) * (input.ndim - len(reps)) + reps
    return Tile.apply(input, reps=reps)


def repeat(input, *sizes) -> Tensor:
    """PyTorch's ``Tensor.repeat``: tile with at least as many sizes as dimensions."""
    sizes = _shape_args("repeat", sizes)
    if len(sizes) < input.ndim:
        raise ValueError(
            f"repeat: needs at least as many sizes ({len(sizes)}) as dimensions ({input.ndim})"
        )
    return Tile.apply(input, reps=sizes)


from backprop.ops.inplace import CopySlices  # noqa: E402
from backprop.ops.reduction import sum  # noqa: E402
