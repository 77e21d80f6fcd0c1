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
from backprop.tensor import Tensor

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


# the indexing ops live in ops.indexing (which calls pad above): bound here, at the end
from backprop.ops.indexing import (  # noqa: E402,F401
    Gather,
    GetItem,
    IndexAdd,
    IndexPut,
    IndexSelect,
    ScatterAdd,
    ScatterItem,
    _index_array,
    _is_advanced,
    _leading,
    _scatter_coords,
    gather,
    getitem,
    index_add,
    index_put,
    index_select,
    scatter_add,
)
from backprop.ops.inplace import CopySlices  # noqa: E402
from backprop.ops.reduction import sum  # noqa: E402
