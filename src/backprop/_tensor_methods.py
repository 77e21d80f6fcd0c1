"""Two families of ``Tensor``'s methods, split out of tensor.py as its base classes: the
one-line method forms of the ops (``t.exp()`` is ``backprop.exp(t)``) and what PyTorch programs
call on tensors.

Both call ops, and the ops import Tensor: ``_bind`` binds the names they call at the end of
``backprop.tensor``, once Tensor exists (the one import cycle, broken there, once). Until then
the ops' names here that are also builtins (``abs``, ``sum``, ``max``...) are the builtins; no
method runs before it.
"""

from __future__ import annotations

import numpy as np


class OpMethods:
    """The one-line method forms of the ops (a base class of ``Tensor``)."""

    __slots__ = ()

    def add(self, other, *, alpha=1):
        return add(self, other, alpha=alpha)

    def sub(self, other, *, alpha=1):
        return sub(self, other, alpha=alpha)

    def mul(self, other):
        return mul(self, other)

    def div(self, other):
        return div(self, other)

    def neg(self):
        return neg(self)

    def square(self):
        return mul(self, self)

    def erf(self):
        return erf(self)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def log1p(self):
        return log1p(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        return abs(self)

    def sin(self):
        return sin(self)

    def cos(self):
        return cos(self)

    def tanh(self):
        return tanh(self)

    def sigmoid(self):
        return sigmoid(self)

    def relu(self):
        return relu(self)

    def pow(self, exponent):
        return pow(self, exponent)

    def clamp(self, min=None, max=None):
        return clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return maximum(self, other)

    def minimum(self, other):
        return minimum(self, other)

    def masked_fill(self, mask, value):
        return masked_fill(self, mask, value)

    def where(self, condition, other):
        return where(condition, self, other)

    def sum(self, dim=None, keepdim=False, *, axis=None):
        return sum(self, dim, keepdim, axis=axis)

    def mean(self, dim=None, keepdim=False, *, axis=None):
        return mean(self, dim, keepdim, axis=axis)

    def var(self, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None):
        return var(self, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis)

    def std(self, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None):
        return std(self, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis)

    def prod(self, dim=None, keepdim=False, *, axis=None):
        return prod(self, dim, keepdim, axis=axis)

    def norm(self, p=2, dim=None, keepdim=False, *, axis=None):
        return norm(self, p, dim, keepdim, axis=axis)

    def max(self, dim=None, keepdim=False, *, axis=None):
        return max(self, dim, keepdim, axis=axis)

    def min(self, dim=None, keepdim=False, *, axis=None):
        return min(self, dim, keepdim, axis=axis)

    def amax(self, dim=None, keepdim=False, *, axis=None):
        return amax(self, dim, keepdim, axis=axis)

    def amin(self, dim=None, keepdim=False, *, axis=None):
        return amin(self, dim, keepdim, axis=axis)

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        return argmax(self, dim, keepdim, axis=axis)

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        return argmin(self, dim, keepdim, axis=axis)

    def any(self, dim=None, keepdim=False):
        return any(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return all(self, dim, keepdim)

    def logsumexp(self, dim=None, keepdim=False, *, axis=None):
        return logsumexp(self, dim, keepdim, axis=axis)

    def softmax(self, dim=-1):
        return softmax(self, dim)

    def log_softmax(self, dim=-1):
        return log_softmax(self, dim)

    def cumsum(self, dim, *, axis=None):
        return cumsum(self, dim, axis=axis)

    def matmul(self, other):
        return matmul(self, other)

    def reshape(self, *shape):
        return reshape(self, *shape)

    def view(self, *shape):
        return reshape(self, *shape)

    def view_as(self, other):
        return reshape(self, other.shape)

    def transpose(self, dim0, dim1):
        return transpose(self, dim0, dim1)

    def t(self):
        if self.data.ndim > 2:
            raise ValueError(
                f"t(): expects a tensor of at most 2 dimensions, got shape {self.shape}"
            )
        return transpose(self, 0, -1) if self.data.ndim == 2 else self

    def permute(self, *dims):
        return permute(self, *dims)

    def squeeze(self, dim=None):
        return squeeze(self, dim)

    def unsqueeze(self, dim):
        return unsqueeze(self, dim)

    def expand(self, *sizes):
        return expand(self, *sizes)

    def expand_as(self, other):
        return expand(self, other.shape)

    def broadcast_to(self, shape):
        return broadcast_to(self, shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return flatten(self, start_dim, end_dim)

    def narrow(self, dim, start, length):
        return narrow(self, dim, start, length)

    def select(self, dim, index):
        return select(self, dim, index)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return diagonal(self, offset, dim1, dim2)

    def unflatten(self, dim, sizes):
        return unflatten(self, dim, sizes)

    def unbind(self, dim=0):
        return unbind(self, dim)

    def split(self, split_size_or_sections, dim=0):
        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return chunk(self, chunks, dim)

    def flip(self, dims):
        return flip(self, dims)

    def gather(self, dim, index):
        return gather(self, dim, index)

    def scatter_add(self, dim, index, src):
        return scatter_add(self, dim, index, src)

    def index_select(self, dim, index):
        return index_select(self, dim, index)

    def index_add(self, dim, index, source, *, alpha=1):
        return index_add(self, dim, index, source, alpha=alpha)

    def repeat(self, *sizes):
        return repeat(self, *sizes)

    def tile(self, dims):
        return tile(self, dims)


class TorchMethods:
    """PyTorch compatibility (issue 15), a base class of ``Tensor``. Each method is what PyTorch
    programs call on tensors; one line into an op where possible. The in-place ones write
    through ``self[index] = value`` (``__setitem__``), the engine's public in-place primitive,
    so they are recorded exactly as an indexed assignment is."""

    __slots__ = ()

    @property
    def device(self) -> _devices.device:
        """Where the values live: always the CPU here (``device(type='cpu')``)."""
        return _devices.CPU

    @property
    def is_cuda(self) -> bool:
        """False: tensors live on the CPU."""
        return False

    def cpu(self, memory_format=None) -> Tensor:
        """This tensor (it is already on the CPU)."""
        return self

    def cuda(self, device=None, non_blocking: bool = False, memory_format=None) -> Tensor:
        """Raises ``DeviceUnavailableError``: there is no CUDA backend (as PyTorch without CUDA)."""
        _devices.check_device("cuda" if device is None else device)
        return self

    def half(self) -> Tensor:
        """Cast to float16."""
        return to_dtype(self, np.float16)

    def type(self, dtype=None, non_blocking: bool = False):
        """Without ``dtype``: PyTorch's type name (``'torch.FloatTensor'``); with one (a dtype or
        such a name): the tensor cast to it."""
        if dtype is None:
            return _devices.type_name(self.data.dtype)
        return to_dtype(self, _devices.dtype_from_type_name(dtype))

    def element_size(self) -> int:
        """Bytes per element (4 for float32)."""
        return self.data.itemsize

    def nelement(self) -> int:
        """Number of elements (``numel``)."""
        return self.data.size

    def contiguous(self, memory_format=None) -> Tensor:
        """This tensor: every backprop op returns arrays that ops may read in any layout."""
        return self

    def is_contiguous(self, memory_format=None) -> bool:
        """True when the array is C-contiguous."""
        return bool(self.data.flags.c_contiguous)

    def __format__(self, format_spec: str) -> str:
        # as PyTorch: a 0-d tensor formats as its number (f"{loss:.4f}"), others only as str()
        if self.data.ndim == 0:
            return self.item().__format__(format_spec)
        if format_spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return str(self)

    def eq(self, other) -> Tensor:
        return self.__eq__(other)

    def ne(self, other) -> Tensor:
        return self.__ne__(other)

    def lt(self, other) -> Tensor:
        return self.__lt__(other)

    def le(self, other) -> Tensor:
        return self.__le__(other)

    def gt(self, other) -> Tensor:
        return self.__gt__(other)

    def ge(self, other) -> Tensor:
        return self.__ge__(other)

    def new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """A new tensor holding ``data``, with this tensor's dtype unless ``dtype`` is given."""
        return _creation.tensor(data, dtype or self.dtype, device, requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """Zeros of ``size``, with this tensor's dtype unless ``dtype`` is given."""
        return _creation.zeros(*size, dtype=dtype or self.dtype, device=device,
                               requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """Ones of ``size``, with this tensor's dtype unless ``dtype`` is given."""
        return _creation.ones(*size, dtype=dtype or self.dtype, device=device,
                              requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """An uninitialised tensor of ``size``, with this tensor's dtype by default."""
        return _creation.empty(*size, dtype=dtype or self.dtype, device=device,
                               requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None,
                 requires_grad: bool = False) -> Tensor:
        """``fill_value`` everywhere in ``size``, with this tensor's dtype by default."""
        return _creation.full(size, fill_value, dtype=dtype or self.dtype, device=device,
                              requires_grad=requires_grad)

    def mm(self, mat2) -> Tensor:
        return mm(self, mat2)

    def bmm(self, mat2) -> Tensor:
        return bmm(self, mat2)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return topk(self, k, dim, largest, sorted)

    def sort(self, dim=-1, descending=False, stable=False):
        return sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False) -> Tensor:
        return argsort(self, dim, descending, stable)

    def triu(self, diagonal=0) -> Tensor:
        return triu(self, diagonal)

    def tril(self, diagonal=0) -> Tensor:
        return tril(self, diagonal)

    def index_fill(self, dim, index, value) -> Tensor:
        return index_fill(self, dim, index, value)

    def index_fill_(self, dim, index, value) -> Tensor:
        """In place: ``value`` at positions ``index`` along ``dim``; returns self."""
        self[index_fill_index(self, dim, index)] = value
        return self

    def masked_fill_(self, mask, value) -> Tensor:
        """In place: ``value`` wherever ``mask`` (broadcast to this shape) is true; returns self."""
        self[masked_fill_index(self, mask)] = value
        return self

    def fill_diagonal_(self, fill_value, wrap: bool = False) -> Tensor:
        """In place: ``fill_value`` on the main diagonal (PyTorch's rules for tall matrices and
        ``wrap``); returns self."""
        self[diagonal_index(self.shape, wrap)] = fill_value
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
        """In place: samples from U(a, b); returns self."""
        return self.copy_(_creation.rand(self.shape, generator=generator, dtype=self.dtype)
                          * (b - a) + a)

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
        """In place: samples from N(mean, std²); returns self."""
        return self.copy_(_creation.randn(self.shape, generator=generator, dtype=self.dtype)
                          * std + mean)


def _bind() -> None:
    """Bind the ops and helpers the methods call (run by ``backprop.tensor`` at its end)."""
    global Tensor, _creation, _devices, _raw, _wrap, abs, add, all, amax, amin, any, argmax
    global argmin, argsort, bmm, broadcast_to, chunk, clamp, cos, cumsum, diagonal
    global diagonal_index, div, erf, exp, expand, flatten, flip, gather, index_add, index_fill
    global index_fill_index, index_select, log, log1p, log_softmax, logsumexp, masked_fill
    global masked_fill_index, matmul, max, maximum, mean, min, minimum, mm, mul, narrow, neg
    global norm, permute, pow, prod, relu, repeat, reshape, scatter_add, select, sigmoid, sin
    global softmax, sort, split, sqrt, squeeze, std, sub, sum, tanh, tile, to_dtype, topk
    global transpose, tril, triu, unbind, unflatten, unsqueeze, var, where
    from backprop import creation as _creation
    from backprop import devices as _devices
    from backprop.ops import (
        abs,
        add,
        all,
        amax,
        amin,
        any,
        argmax,
        argmin,
        argsort,
        bmm,
        broadcast_to,
        chunk,
        clamp,
        cos,
        cumsum,
        diagonal,
        div,
        erf,
        exp,
        expand,
        flatten,
        flip,
        gather,
        index_add,
        index_fill,
        index_select,
        log,
        log1p,
        log_softmax,
        logsumexp,
        masked_fill,
        matmul,
        max,
        maximum,
        mean,
        min,
        minimum,
        mm,
        mul,
        narrow,
        neg,
        norm,
        permute,
        pow,
        prod,
        relu,
        repeat,
        reshape,
        scatter_add,
        select,
        sigmoid,
        sin,
        softmax,
        sort,
        split,
        sqrt,
        squeeze,
        std,
        sub,
        sum,
        tanh,
        tile,
        to_dtype,
        topk,
        transpose,
        tril,
        triu,
        unbind,
        unflatten,
        unsqueeze,
        var,
        where,
    )
    from backprop.ops.selection import diagonal_index, index_fill_index, masked_fill_index
    from backprop.tensor import Tensor, _raw, _wrap
