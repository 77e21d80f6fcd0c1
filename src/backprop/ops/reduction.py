"""Reductions: sum, prod, amax/amin, max/min with indices, logsumexp, cumsum; mean, var, std,
norm and the arg-reductions are composites or non-differentiable and live beside them.

Reductions take PyTorch's ``dim`` (an int, a tuple, or None for all) and ``keepdim``; NumPy's
``axis`` is accepted as an alias.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from backprop.autograd.function import Function
from backprop.ops._util import const, keepdim_shape, norm_dim, norm_dims, resolve_dim
from backprop.tensor import Tensor


class Sum(Function):
    """y = Σ_dims x;  ∂y/∂x = 1 (the gradient is broadcast back over the reduced dims)."""

    @staticmethod
    def forward(ctx, x, dims=None, keepdim=False):
        ctx.x_shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        if type(x) is np.ndarray:  # the method: np.sum's Python wrapper costs more than a sum
            return x.sum(axis=dims, keepdims=keepdim)
        return np.sum(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        if not ctx.keepdim:
            grad_out = reshape(grad_out, keepdim_shape(ctx.x_shape, ctx.dims))
        return broadcast_to(grad_out, ctx.x_shape)


class Mean(Function):
    """y = Σ_dims x / n (n: the count of the reduced elements);  ∂y/∂x = 1/n (the gradient
    divided by n and broadcast back). One op, as PyTorch's MeanBackward0, where Sum then Div
    was two: the same operations in the same order, so the same values."""

    @staticmethod
    def forward(ctx, x, dims=None, keepdim=False, n=1):
        ctx.x_shape, ctx.dims, ctx.keepdim, ctx.n = x.shape, dims, keepdim, n
        return x.sum(axis=dims, keepdims=keepdim) / n

    @staticmethod
    def backward(ctx, grad_out):
        g = grad_out / ctx.n
        if not ctx.keepdim:
            g = reshape(g, keepdim_shape(ctx.x_shape, ctx.dims))
        return broadcast_to(g, ctx.x_shape)


class Prod(Function):
    """y = Π_dims x;  ∂y/∂xᵢ = Π_{j≠i} xⱼ (= y/xᵢ where xᵢ ≠ 0)."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        ctx.dim, ctx.keepdim = dim, keepdim
        y = np.prod(x, axis=dim, keepdims=keepdim)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors
        dims = None if ctx.dim is None else (ctx.dim,)
        kshape = keepdim_shape(x.shape, dims)
        g = reshape(grad_out, kshape)
        if not np.any(x.data == 0):
            return g * reshape(y, kshape) / x  # differentiable: higher-order gradients work
        # with zeros, y/x is undefined: form the product of the other elements directly
        flat = x.data.reshape(-1) if ctx.dim is None else np.moveaxis(x.data, ctx.dim, -1)
        ones = np.ones_like(flat[..., :1])
        left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = left * right
        others = others.reshape(x.shape) if ctx.dim is None else np.moveaxis(others, -1, ctx.dim)
        return g * const(others)


class AMax(Function):
    """y = max over dims;  ∂y/∂xᵢ = 1/k for each of the k elements equal to the max, else 0."""

    @staticmethod
    def forward(ctx, x, dims=None, keepdim=False):
        return _extreme(ctx, np.max, x, dims, keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        return _even_split(ctx, grad_out)


class AMin(Function):
    """y = min over dims;  ∂y/∂xᵢ = 1/k for each of the k elements equal to the min, else 0."""

    @staticmethod
    def forward(ctx, x, dims=None, keepdim=False):
        return _extreme(ctx, np.min, x, dims, keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        return _even_split(ctx, grad_out)


def _extreme(ctx, reduce, x, dims, keepdim):
    ctx.dims, ctx.keepdim = dims, keepdim
    y = reduce(x, axis=dims, keepdims=keepdim)
    ctx.save_for_backward(x, y)
    return y


def _even_split(ctx, grad_out):
    x, y = ctx.saved_tensors
    kshape = keepdim_shape(x.shape, ctx.dims)
    hit = x.data == y.data.reshape(kshape)
    share = hit / np.sum(hit, axis=ctx.dims, keepdims=True)
    return broadcast_to(reshape(grad_out, kshape), x.shape) * const(share.astype(x.dtype))


class MaxDim(Function):
    """(values, indices) = max along dim;  ∂values/∂x = 1 at the returned index, else 0."""

    label = "Max"

    @staticmethod
    def forward(ctx, x, dim=0, keepdim=False, largest=True):
        idx = (np.argmax if largest else np.argmin)(x, axis=dim, keepdims=True)
        values = np.take_along_axis(x, idx, axis=dim)
        if not keepdim:
            values, idx = np.squeeze(values, dim), np.squeeze(idx, dim)
        ctx.x_shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        ctx.idx = idx.astype(np.int64)
        return values, ctx.idx

    @staticmethod
    def backward(ctx, grad_values, grad_indices):
        idx, g = ctx.idx, grad_values
        if not ctx.keepdim:
            idx = np.expand_dims(idx, ctx.dim)
            g = unsqueeze(g, ctx.dim)
        zeros = const(np.zeros(ctx.x_shape, dtype=g.dtype))
        return scatter_add(zeros, ctx.dim, idx, g)


class LogSumExp(Function):
    """y = ln Σ_dims eˣ, computed as m + ln Σ e^(x-m) with m the max;  ∂y/∂x = e^(x - y)."""

    @staticmethod
    def forward(ctx, x, dims=None, keepdim=False):
        m = np.max(x, axis=dims, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)  # all -inf (or an inf) along a slice: no shift
        y = np.log(np.sum(np.exp(x - m), axis=dims, keepdims=True)) + m
        if not keepdim:
            y = np.squeeze(y, axis=dims)
        ctx.dims, ctx.keepdim = dims, keepdim
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors
        kshape = keepdim_shape(x.shape, ctx.dims)
        return reshape(grad_out, kshape) * exp(x - reshape(y, kshape))


class Cumsum(Function):
    """yᵢ = Σ_{j≤i} xⱼ along dim;  ∂L/∂xⱼ = Σ_{i≥j} gᵢ (a reversed cumulative sum)."""

    @staticmethod
    def forward(ctx, x, dim=0):
        ctx.dim = dim
        y = np.cumsum(x, axis=dim)
        return y.reshape(()) if x.ndim == 0 else y  # NumPy returns shape (1,) for a 0-d input

    @staticmethod
    def backward(ctx, grad_out):
        # Σ_{i≥j} gᵢ = total - Σ_{i≤j} gᵢ + gⱼ, which stays in differentiable ops
        d = ctx.dim
        return sum(grad_out, d, keepdim=True) - cumsum(grad_out, d) + grad_out


# --- functional wrappers ---


def sum(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Sum over ``dim`` (an int, a tuple, or None for all elements).

    Shape: (d0, ..., dn) -> the shape without ``dim`` (kept as 1 with ``keepdim=True``).

    Example:
        >>> import backprop as bp
        >>> bp.tensor([[1.0, 2.0], [3.0, 4.0]]).sum(dim=0)
        tensor([4., 6.])
    """
    dims = norm_dims("sum", resolve_dim("sum", dim, axis), input.ndim)
    return Sum.apply(input, dims=dims, keepdim=keepdim)


def mean(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Arithmetic mean over ``dim`` (None: all elements). Shape as ``sum``."""
    if dim is None and axis is None and isinstance(input, Tensor):  # (a loss: every step)
        dims, n = None, input.data.size
    else:
        dims = norm_dims("mean", resolve_dim("mean", dim, axis), input.ndim)
        n = _count(input.shape, dims)
    if isinstance(input, Tensor) and input.data.dtype.kind == "f":
        return Mean.apply(input, dims=dims, keepdim=keepdim, n=n)
    return Sum.apply(input, dims=dims, keepdim=keepdim) / n


def var(input, dim=None, keepdim: bool = False, *, correction=1, unbiased=None, axis=None):
    """Variance over ``dim`` with Bessel's ``correction`` (1 by default, as PyTorch).

    ``unbiased=False`` is the older spelling of ``correction=0``.
    """
    if unbiased is not None:
        correction = 1 if unbiased else 0
    dims = norm_dims("var", resolve_dim("var", dim, axis), input.ndim)
    n = _count(input.shape, dims)
    centred = input - Sum.apply(input, dims=dims, keepdim=True) / n
    return Sum.apply(centred * centred, dims=dims, keepdim=keepdim) / builtins.max(
        n - correction, 0
    )


def std(input, dim=None, keepdim: bool = False, *, correction=1, unbiased=None, axis=None):
    """Standard deviation: the square root of ``var`` (same arguments). Where all values are
    equal the gradient is 0, as in PyTorch."""
    v = var(input, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis)
    return _zero_grad_at_zero(sqrt, v)


def prod(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Product over one ``dim`` (or all elements when None)."""
    dim = resolve_dim("prod", dim, axis)
    if dim is not None:
        dim = norm_dim("prod", dim, input.ndim)
    return Prod.apply(input, dim=dim, keepdim=keepdim)


def norm(input, p=2, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Vector p-norm over ``dim`` (None: all elements); p may be a number, ``inf`` or ``'fro'``.

    The gradient of an all-zero slice is 0, as in PyTorch."""
    dim = resolve_dim("norm", dim, axis)
    if p == "fro":
        p = 2
    if p == 2:
        return _zero_grad_at_zero(sqrt, sum(input * input, dim, keepdim))
    if p == 1:
        return sum(abs(input), dim, keepdim)
    if p == math.inf:
        return amax(abs(input), dim, keepdim)
    if p == -math.inf:
        return amin(abs(input), dim, keepdim)
    if isinstance(p, str) or p <= 0:
        raise ValueError(f"norm: p must be a positive number, inf, -inf or 'fro', got {p!r}")
    return _zero_grad_at_zero(lambda s: s ** (1 / p), sum(abs(input) ** p, dim, keepdim))


def _zero_grad_at_zero(root, v: Tensor) -> Tensor:
    """``root(v)`` for a root with root(0) = 0 and an infinite slope there (√ in norm and std):
    where v = 0 the gradient is taken as 0 (PyTorch's subgradient), not ∞·0 = NaN. The root
    sees 1 there instead of 0, so no infinity enters the graph, at any order."""
    zero = v.data == 0
    if not zero.any():
        return root(v)
    return where(const(zero), 0.0, root(where(const(zero), 1.0, v)))


def amax(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Maximum over ``dim`` (None: all); the gradient is split evenly among tied maxima."""
    dims = norm_dims("amax", resolve_dim("amax", dim, axis), input.ndim)
    _check_nonempty("amax", input)
    return AMax.apply(input, dims=dims, keepdim=keepdim)


def amin(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Minimum over ``dim`` (None: all); the gradient is split evenly among tied minima."""
    dims = norm_dims("amin", resolve_dim("amin", dim, axis), input.ndim)
    _check_nonempty("amin", input)
    return AMin.apply(input, dims=dims, keepdim=keepdim)


def max(input, dim=None, keepdim: bool = False, *, axis=None):
    """The maximum of all elements, or with ``dim`` the pair (values, indices) along it.

    With ``dim`` the gradient goes to the returned index (the first maximum), as PyTorch's
    ``max(dim)``; without, it is split evenly among ties, as PyTorch's ``max()``.
    A Tensor as second argument means ``maximum(input, other)``.
    """
    if isinstance(dim, Tensor):
        return maximum(input, dim)
    dim = resolve_dim("max", dim, axis)
    if dim is None:
        return amax(input)
    return _max_dim("max", input, dim, keepdim, True)


def min(input, dim=None, keepdim: bool = False, *, axis=None):
    """The minimum of all elements, or with ``dim`` the pair (values, indices) along it."""
    if isinstance(dim, Tensor):
        return minimum(input, dim)
    dim = resolve_dim("min", dim, axis)
    if dim is None:
        return amin(input)
    return _max_dim("min", input, dim, keepdim, False)


def _max_dim(op, input, dim, keepdim, largest):
    d = norm_dim(op, dim, input.ndim)
    if input.ndim == 0:  # as PyTorch: the value itself and index 0, both 0-d
        input, keepdim = reshape(input, (1,)), False
    _check_nonempty(op, input)
    values, indices = MaxDim.apply(input, dim=d, keepdim=keepdim, largest=largest)
    return _ValuesIndices(values, indices)


class _ValuesIndices(tuple):
    """(values, indices), also readable as ``.values`` and ``.indices`` (PyTorch's return type)."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self) -> Tensor:
        return self[0]

    @property
    def indices(self) -> Tensor:
        return self[1]


def argmax(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Index of the maximum (of the flattened tensor when ``dim`` is None); int64, no gradient."""
    return _arg("argmax", True, input, resolve_dim("argmax", dim, axis), keepdim)


def argmin(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """Index of the minimum (of the flattened tensor when ``dim`` is None); int64, no gradient."""
    return _arg("argmin", False, input, resolve_dim("argmin", dim, axis), keepdim)


def _arg(op, largest, input, dim, keepdim):
    if dim is not None:
        dim = norm_dim(op, dim, input.ndim)
        _check_nonempty(op, input)
    elif input.data.size == 0:
        raise ValueError(f"{op}: the tensor is empty (shape {input.shape}), so it has no "
                         "maximum or minimum")
    return ArgExtreme.apply(input, dim=dim, keepdim=keepdim, largest=largest)


def logsumexp(input, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    """ln Σ eˣ over ``dim`` (None: all), stable for any finite input (±1e4 included)."""
    dims = norm_dims("logsumexp", resolve_dim("logsumexp", dim, axis), input.ndim)
    return LogSumExp.apply(input, dims=dims, keepdim=keepdim)


def cumsum(input, dim=None, *, axis=None) -> Tensor:
    """Cumulative sum along ``dim``. Shape: unchanged."""
    dim = resolve_dim("cumsum", dim, axis)
    if dim is None:
        raise TypeError("cumsum: dim is required (as in PyTorch)")
    return Cumsum.apply(input, dim=norm_dim("cumsum", dim, input.ndim))


def _count(shape, dims) -> int:
    return math.prod(shape) if dims is None else math.prod(shape[d] for d in dims)


def _check_nonempty(op, input):
    # any empty dimension (reduced or not) leaves no element to pick: reject them all
    if input.data.size == 0:
        raise ValueError(f"{op}: cannot reduce over an empty dimension (input shape {input.shape})")


from backprop.ops.elementwise import abs, exp, maximum, minimum, sqrt, where  # noqa: E402
from backprop.ops.logical import ArgExtreme  # noqa: E402
from backprop.ops.shape import broadcast_to, reshape, scatter_add, unsqueeze  # noqa: E402
