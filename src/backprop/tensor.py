"""``Tensor``: an ndarray plus what reverse-mode differentiation needs.

``.data`` is the NumPy array itself (in PyTorch ``.data`` is a Tensor; here it is the raw array, so
NumPy code can read and write it directly, untracked). ``.grad`` is a Tensor, filled by
``backward()``. Every method and operator is a one-line call into ``backprop.ops``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from backprop.errors import ShapeError

float16 = np.float16
float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
bool_ = np.bool_

_DTYPE_NAMES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def _resolve_dtype(dtype) -> np.dtype:
    """Turn ``backprop.float32``, ``np.float32``, ``'float32'`` or a NumPy dtype into a dtype."""
    if isinstance(dtype, str) and dtype not in _DTYPE_NAMES:
        raise TypeError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPE_NAMES)}")
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPE_NAMES)} "
            "(as names, NumPy dtypes or backprop.float32 and friends)"
        ) from None


def _to_array(data, dtype=None, copy: bool = True) -> np.ndarray:
    """Convert data to an ndarray with PyTorch's dtype rules for Python values.

    Python floats (and lists of them) become float32 and Python ints int64; an ndarray or a NumPy
    scalar keeps its dtype, so float64 stays float64.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = _resolve_dtype(dtype)
    if isinstance(data, (np.ndarray, np.generic)):
        if dtype is None:
            return np.array(data, copy=copy)
        return np.array(data, dtype=dtype, copy=copy)
    arr = np.array(data, dtype=dtype)
    if dtype is None:
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind == "i" and arr.dtype != np.int64:
            arr = arr.astype(np.int64)
        elif arr.dtype.kind not in "fiub":
            raise TypeError(
                f"tensor(): cannot make a numeric tensor from {type(data).__name__} data "
                f"(NumPy saw dtype {arr.dtype}); pass numbers, nested lists of numbers or an "
                "ndarray"
            )
    return arr


def _check_can_require_grad(arr: np.ndarray) -> None:
    if arr.dtype.kind not in "fc":
        raise TypeError(
            f"only floating-point tensors can require gradients, but this tensor is {arr.dtype} "
            f"with shape {arr.shape}; convert it first, e.g. x.float().requires_grad_()"
        )


_new = object.__new__


def _wrap(data: np.ndarray, requires_grad: bool, grad_fn, output_nr: int) -> Tensor:
    """Make a Tensor around an existing array without copying or checks (the engine's fast path)."""
    t = _new(Tensor)
    t.data = data
    t._requires_grad = requires_grad
    t.grad_fn = grad_fn
    t._output_nr = output_nr
    t.grad = None
    t._version = 0
    t._hooks = None
    return t


class _RemovableHandle:
    """Returned by ``Tensor.register_hook`` and ``Module.register_forward_hook``;
    ``remove()`` takes the hook off again."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    """An n-dimensional array that can record the ops applied to it and compute gradients.

    Args:
        data: an ndarray (wrapped without copying), or numbers / nested lists (converted with
            PyTorch's rules: Python floats become float32, Python ints int64).
        dtype: optional dtype (``backprop.float32``, ``np.float64``, ``"int64"``, ...).
        requires_grad: record ops on this tensor so ``backward()`` can fill ``.grad``.

    Attributes:
        data: the ndarray holding the values (the array itself, unlike PyTorch's ``.data``).
        grad: a Tensor of the same shape after ``backward()``, else None.
        grad_fn: the graph node that produced this tensor, None for leaves.

    Prefer ``backprop.tensor(...)`` (which copies its input) to build tensors.
    """

    __slots__ = ("data", "grad", "_requires_grad", "grad_fn", "_output_nr", "_version",
                 "_hooks", "__weakref__")
    # NumPy must defer to our reflected operators (ndarray * Tensor -> Tensor.__rmul__).
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, dtype=None, requires_grad: bool = False) -> None:
        arr = data if (type(data) is np.ndarray and dtype is None) else _to_array(
            data, dtype, copy=False
        )
        if requires_grad:
            _check_can_require_grad(arr)
        self.data = arr
        self._requires_grad = bool(requires_grad)
        self.grad_fn = None
        self._output_nr = 0
        self.grad = None
        self._version = 0
        self._hooks = None

    # --- properties ---
    @property
    def requires_grad(self) -> bool:
        """True if gradients flow to (leaf) or through (non-leaf) this tensor."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    @property
    def is_leaf(self) -> bool:
        """True for tensors created by the user, not by a recorded op."""
        return self.grad_fn is None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape, a tuple of ints."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the values."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    @property
    def T(self) -> Tensor:
        """All dimensions reversed (for 2-D: the transpose). Shape (a, ..., z) -> (z, ..., a)."""
        return permute(self, tuple(range(self.data.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:
        """The last two dimensions swapped (batched matrix transpose)."""
        return transpose(self, -2, -1)

    def size(self, dim: int | None = None):
        """The shape (a tuple), or its entry at ``dim``."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    def numel(self) -> int:
        """Number of elements."""
        return self.data.size

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # --- conversion ---
    def numpy(self) -> np.ndarray:
        """The values as an ndarray (the same memory as ``.data``).

        Raises on tensors that require grad, as PyTorch does: call ``.detach().numpy()``.
        """
        if self._requires_grad:
            raise RuntimeError(
                "numpy(): this tensor requires grad, so its array would escape the graph; "
                "call tensor.detach().numpy() instead"
            )
        return self.data

    def item(self) -> float | int | bool:
        """The single value of a one-element tensor, as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item(): only one-element tensors can be converted to a Python number, "
                f"this one has shape {self.data.shape}"
            )
        return self.data.item()

    def tolist(self):
        """The values as (nested) Python lists."""
        return self.data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data.item())

    def __hash__(self) -> int:
        return id(self)

    def __array__(self, dtype=None, copy=None):
        # np.asarray(tensor) gives the values, as torch's __array__ does
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (np.float32, np.int64, np.bool_):  # PyTorch's defaults
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    # --- autograd ---
    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Compute the gradient of this tensor with respect to the graph's leaves.

        Gradients are *added* to each leaf's ``.grad`` (call ``zero_grad`` between steps).

        Args:
            gradient: d(something)/d(self), same shape as self; may be omitted for one element.
            retain_graph: keep the saved values so backward can run through the graph again
                (defaults to ``create_graph``).
            create_graph: record the backward pass itself, for higher-order gradients.
            inputs: if given, accumulate only into these leaves.
        """
        _engine.backward((self,), None if gradient is None else (gradient,),
                         retain_graph, create_graph, inputs)

    def register_hook(self, hook: Callable) -> _RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None return
        replaces the gradient. Returns a handle whose ``remove()`` unregisters it."""
        if not self._requires_grad:
            raise RuntimeError("register_hook(): cannot register a hook on a tensor that does "
                               "not require grad")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            node = self.grad_fn
            if node._hooks is None:
                node._hooks = {}
            hooks = node._hooks.setdefault(self._output_nr, [])
        hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after ``backward()`` (leaves always keep it)."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad(): cannot retain the grad of a tensor that does not "
                               "require grad")
        if self.grad_fn is not None:
            node = self.grad_fn
            if node._retain is None:
                node._retain = {}
            node._retain[self._output_nr] = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        """True for a non-leaf tensor on which ``retain_grad()`` was called."""
        node = self.grad_fn
        return bool(node is not None and node._retain and self._output_nr in node._retain)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` on a leaf tensor in place; returns self."""
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError(
                    "requires_grad_(False) on a non-leaf tensor: it was computed by "
                    f"{self.grad_fn.name()}; use .detach() to get a tensor without history"
                )
            return self
        if requires_grad:
            _check_can_require_grad(self.data)
        self._requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """A new leaf tensor sharing this one's array, cut off from the graph."""
        return _wrap(self.data, False, None, 0)

    def detach_(self) -> Tensor:
        """Cut this tensor off from the graph in place; returns self."""
        self.grad_fn = None
        self._requires_grad = False
        return self

    def clone(self) -> Tensor:
        """A differentiable copy with its own memory."""
        return clone(self)

    def to(self, *args, **kwargs) -> Tensor:
        """The values cast to a dtype and/or moved to a device, PyTorch's ``Tensor.to``.

        Accepts ``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other_tensor)`` and
        the keywords ``device``, ``dtype``, ``non_blocking`` (ignored) and ``copy``. Returns
        ``self`` when nothing changes (unless ``copy=True``); a cast is differentiable between
        floating dtypes. Only the CPU exists here: another device raises
        ``DeviceUnavailableError``.
        """
        dtype, copy = _devices.parse_to("Tensor.to", args, kwargs)
        out = self if dtype is None else to_dtype(self, dtype)
        return clone(out) if copy and out is self else out

    def float(self) -> Tensor:
        """Cast to float32."""
        return to_dtype(self, np.float32)

    def double(self) -> Tensor:
        """Cast to float64."""
        return to_dtype(self, np.float64)

    def long(self) -> Tensor:
        """Cast to int64 (no gradient)."""
        return to_dtype(self, np.int64)

    def int(self) -> Tensor:
        """Cast to int32 (no gradient)."""
        return to_dtype(self, np.int32)

    def bool(self) -> Tensor:
        """Cast to bool (no gradient)."""
        return to_dtype(self, np.bool_)

    # --- operators ---
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return pow(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return abs(self)

    # comparisons: no gradient, bool results (PyTorch semantics: elementwise ==)
    def __eq__(self, other):
        return _wrap(np.asarray(self.data == _raw(other)), False, None, 0)

    def __ne__(self, other):
        return _wrap(np.asarray(self.data != _raw(other)), False, None, 0)

    def __lt__(self, other):
        return _wrap(np.asarray(self.data < _raw(other)), False, None, 0)

    def __le__(self, other):
        return _wrap(np.asarray(self.data <= _raw(other)), False, None, 0)

    def __gt__(self, other):
        return _wrap(np.asarray(self.data > _raw(other)), False, None, 0)

    def __ge__(self, other):
        return _wrap(np.asarray(self.data >= _raw(other)), False, None, 0)

    def __invert__(self):
        return _wrap(np.invert(self.data), False, None, 0)

    def __and__(self, other):
        return _wrap(np.asarray(self.data & _raw(other)), False, None, 0)

    def __or__(self, other):
        return _wrap(np.asarray(self.data | _raw(other)), False, None, 0)

    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value) -> None:
        index = _raw_index(index)
        if self._tracked_inplace(value):
            self._rebind(index_put(self._snapshot("__setitem__"), index, value))
        else:
            self.data[index] = _raw(value)
        self._version += 1

    # --- in-place ops: each bumps the version counter ---
    def _tracked_inplace(self, *others) -> bool:
        """True when an in-place op must be recorded in the graph (grad mode on, grad needed)."""
        if not _state.grad_enabled:
            return False
        return self._requires_grad or any(
            isinstance(o, Tensor) and o._requires_grad for o in others
        )

    def _snapshot(self, op: str) -> Tensor:
        """The tensor's current value and history, as a separate node input for a tracked op."""
        if self.grad_fn is None and self._requires_grad:
            raise RuntimeError(
                f"{op}: a leaf tensor that requires grad cannot be changed in place while the "
                "graph is being recorded; do it inside `with backprop.no_grad():` (as optimizers "
                "do), or use the out-of-place op"
            )
        old = _wrap(self.data, self._requires_grad, self.grad_fn, self._output_nr)
        old._version = self._version
        return old

    def _rebind(self, result: Tensor) -> None:
        """Take over a tracked in-place op's result: new values (own array) and new history."""
        if result.shape != self.shape:
            raise ShapeError(
                f"in-place op: the result has shape {result.shape} but the tensor has shape "
                f"{self.shape}; an in-place op cannot change a tensor's shape"
            )
        if result.dtype != self.dtype:
            result = to_dtype(result, self.dtype)
        self.data = result.data
        self.grad_fn = result.grad_fn
        self._output_nr = result._output_nr
        self._requires_grad = result._requires_grad
        node = result.grad_fn
        if node is not None and node._saved:
            # the node saved its output: point it at this tensor, so later in-place changes to
            # this tensor are detected when the node's backward runs
            node._saved = tuple(
                (e[0], e[1], weakref.ref(self), e[3], self._version + 1)
                if e[0] == 1 and e[2]() is result else e
                for e in node._saved
            )

    def _inplace_binary(self, name: str, op, ufunc, other) -> Tensor:
        if self._tracked_inplace(other):
            self._rebind(op(self._snapshot(name), other))
        else:
            ufunc(self.data, _raw(other), out=self.data)
        self._version += 1
        return self

    def add_(self, other, alpha=1) -> Tensor:
        """In place: self += alpha * other."""
        if alpha != 1:
            # untracked (an optimizer step): scale the array directly, not through an op
            other = other * alpha if self._tracked_inplace(other) else _raw(other) * alpha
        return self._inplace_binary("add_", add, np.add, other)

    def sub_(self, other, alpha=1) -> Tensor:
        """In place: self -= alpha * other."""
        if alpha != 1:
            other = other * alpha if self._tracked_inplace(other) else _raw(other) * alpha
        return self._inplace_binary("sub_", sub, np.subtract, other)

    def mul_(self, other) -> Tensor:
        """In place: self *= other."""
        return self._inplace_binary("mul_", mul, np.multiply, other)

    def div_(self, other) -> Tensor:
        """In place: self /= other."""
        return self._inplace_binary("div_", div, np.divide, other)

    def clamp_(self, min=None, max=None) -> Tensor:
        """In place: clamp the values to [min, max]."""
        if self._tracked_inplace(min, max):
            self._rebind(clamp(self._snapshot("clamp_"), min, max))
        else:
            np.clip(self.data, _raw(min), _raw(max), out=self.data)
        self._version += 1
        return self

    def copy_(self, src) -> Tensor:
        """In place: copy ``src``'s values (broadcast to this shape, cast to this dtype)."""
        if self._tracked_inplace(src):
            old = self._snapshot("copy_")
            self._rebind(where(np.zeros(self.shape, dtype=bool), old, src))
        else:
            np.copyto(self.data, _raw(src), casting="unsafe")
        self._version += 1
        return self

    def fill_(self, value) -> Tensor:
        """In place: set every element to ``value``."""
        if self._tracked_inplace(value):
            old = self._snapshot("fill_")
            self._rebind(where(np.zeros(self.shape, dtype=bool), old, value))
        else:
            self.data.fill(_raw(value))
        self._version += 1
        return self

    def zero_(self) -> Tensor:
        """In place: set every element to zero."""
        return self.fill_(0)

    # --- one-line method forms of the ops ---
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

    def any(self):
        return _wrap(np.asarray(self.data.any()), False, None, 0)

    def all(self):
        return _wrap(np.asarray(self.data.all()), False, None, 0)

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

    # --- PyTorch compatibility (issue 15) ---
    # Each method is what PyTorch programs call on tensors; one line into an op where possible.
    # The in-place ones write through ``self[index] = value`` (``__setitem__``), the engine's
    # public in-place primitive, so they are recorded exactly as an indexed assignment is.
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

    # augmented assignment updates the tensor in place, as in PyTorch (the manual-SGD idiom
    # `with no_grad(): w -= lr * w.grad` must keep w the same leaf)
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __floordiv__(self, other):
        # piecewise constant: no gradient (PyTorch's floor_divide has none either)
        return _wrap(np.asarray(np.floor_divide(self.data, _raw(other))), False, None, 0)

    def __rfloordiv__(self, other):
        return _wrap(np.asarray(np.floor_divide(_raw(other), self.data)), False, None, 0)

    def __mod__(self, other):
        # PyTorch's remainder: a - floor(a / b)·b (the sign of b), differentiable in a and b
        return self - (self // other) * other

    def __rmod__(self, other):
        return other - (other // self) * self

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

    def narrow(self, dim, start, length) -> Tensor:
        return narrow(self, dim, start, length)

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


def _raw(x):
    """The array behind a Tensor, or the value itself."""
    return x.data if isinstance(x, Tensor) else x


def _raw_index(index):
    """An index with every Tensor replaced by its array (for basic and advanced indexing)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


# Tensor methods call ops and ops return Tensors: the one import cycle, broken here, once.
from backprop import creation as _creation  # noqa: E402
from backprop import devices as _devices  # noqa: E402
from backprop.autograd import engine as _engine  # noqa: E402
from backprop.autograd.grad_mode import _state  # noqa: E402
from backprop.ops import (  # noqa: E402
    abs,
    add,
    amax,
    amin,
    argmax,
    argmin,
    argsort,
    bmm,
    broadcast_to,
    chunk,
    clamp,
    clone,
    cos,
    cumsum,
    div,
    erf,
    exp,
    expand,
    flatten,
    flip,
    gather,
    getitem,
    index_add,
    index_fill,
    index_put,
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
    unsqueeze,
    var,
    where,
)
from backprop.ops.selection import (  # noqa: E402
    diagonal_index,
    index_fill_index,
    masked_fill_index,
)
