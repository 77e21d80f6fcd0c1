"""``Tensor``: an ndarray plus what reverse-mode differentiation needs.

``.data`` is the NumPy array itself (in PyTorch ``.data`` is a Tensor; here it is the raw array, so
NumPy code can read and write it directly, untracked). ``.grad`` is a Tensor, filled by
``backward()``. Every method and operator is a one-line call into ``backprop.ops``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from backprop._tensor_methods import OpMethods, TorchMethods
from backprop._tensor_operators import OperatorMethods

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
        if dtype is None and data.dtype.kind in "OUSV":  # objects, text, bytes, records
            raise TypeError(
                f"tensor(): cannot make a numeric tensor from an ndarray of dtype {data.dtype}; "
                "convert it first, e.g. arr.astype(np.float32)"
            )
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


# A version counter is a list [count, name of the latest in-place op], shared by a tensor, its
# views and its detach()ed copies: one memory, one history of in-place changes. A list, not an
# object: one is made for most tensors that a node saves, and a list literal costs the least.


def _wrap(data: np.ndarray, requires_grad: bool, grad_fn, output_nr: int) -> Tensor:
    """Make a Tensor around an existing array without copying or checks (the engine's fast path)."""
    t = _new(Tensor)
    t.data = data
    t._requires_grad = requires_grad
    t._grad_fn = grad_fn
    t._output_nr = output_nr
    t.grad = None
    t._vc = None
    t._base = None
    return t


# backprop.compile watches values read back into Python while it captures a step (a list of
# callbacks then, else None: one global lookup on the read-back methods, none on the hot path)
_readback_watchers: list | None = None


def _note_readback(what: str) -> None:
    for watch in _readback_watchers or ():
        watch(what)


class _RemovableHandle:
    """Returned by ``register_hook`` and its relatives; ``remove()`` takes the hook off again."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor(OperatorMethods, OpMethods, TorchMethods):
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

    # _vc: the version counter (None until first needed); _base: for a view, the tensor whose
    # memory it shares; _view: (recipe from the base, base version the history was made at);
    # _accum: a leaf's AccumulateGrad node. _view and _accum are set only when needed.
    __slots__ = ("data", "grad", "_requires_grad", "_grad_fn", "_output_nr", "_vc", "_base",
                 "_view", "_accum", "__weakref__")
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
        self._grad_fn = None
        self._output_nr = 0
        self.grad = None
        self._vc = None
        self._base = None

    # --- properties ---
    @property
    def requires_grad(self) -> bool:
        """True if gradients flow to (leaf) or through (non-leaf) this tensor."""
        if self._base is not None:
            self._refresh_view()
        return self._requires_grad

    @property
    def grad_fn(self):
        """The graph node that produced this tensor (None for leaves)."""
        if self._base is not None:
            self._refresh_view()
        return self._grad_fn

    @property
    def _version(self) -> int:
        """How many in-place changes the tensor's memory has seen (shared with its views)."""
        vc = self._vc
        return 0 if vc is None else vc[0]

    def _bump(self, op: str) -> None:
        """Count an in-place change made by ``op``."""
        vc = self._vc
        if vc is None:
            vc = self._vc = [0, None]
        vc[0] += 1
        vc[1] = op

    def _is_view(self) -> bool:
        """True if this tensor is a view of another tensor's memory (PyTorch's ``_is_view``)."""
        return self._base is not None

    def _refresh_view(self) -> None:
        """Bring a view's history up to date after an in-place change of its memory.

        A view records how to recreate it from its base. When the shared version counter moved
        since the view's history was made, the base may have a new history (an in-place op
        through another view, or on the base), so the view's ``grad_fn`` is rebuilt from the
        base's current one, as PyTorch regenerates a view's ``grad_fn``.
        """
        root = self._base
        chain, version = self._view
        now = root._vc[0]
        if now == version:
            return
        _inplace.refresh_view(self, root, chain)
        self._view = (chain, now)

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
        if _readback_watchers is not None:
            _note_readback("numpy()")
        return self.data

    def item(self) -> float | int | bool:
        """The single value of a one-element tensor, as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item(): only one-element tensors can be converted to a Python number, "
                f"this one has shape {self.data.shape}"
            )
        if _readback_watchers is not None:
            _note_readback("item()")
        return self.data.item()

    def tolist(self):
        """The values as (nested) Python lists."""
        if _readback_watchers is not None:
            _note_readback("tolist()")
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
        if _readback_watchers is not None:
            _note_readback("bool()")
        return bool(self.data.item())

    # identity, as PyTorch's: a Tensor keys optimizer state and the engine's maps (object's C
    # hash, not a Python method: those lookups run for every parameter of every step)
    __hash__ = object.__hash__

    def __array__(self, dtype=None, copy=None):
        # np.asarray(tensor) gives the values, as torch's __array__ does
        if _readback_watchers is not None:
            _note_readback("np.asarray()")
        return self.data if dtype is None else self.data.astype(dtype)

    # what a copy starts afresh: the graph (a leaf's accumulator would still deliver the copy's
    # gradients to this tensor, and holds a weak reference, which cannot be pickled), the
    # version counter and view links
    _FRESH_ON_COPY = frozenset({"_grad_fn", "_output_nr", "_vc", "_base", "_view", "_accum",
                                "__weakref__"})

    def _leaf_state(self, refusal: str) -> dict:
        """The values, ``.grad``, flags and subclass attributes, without the graph; raises
        RuntimeError starting with ``refusal`` for a non-leaf (as PyTorch does)."""
        if self._grad_fn is not None:
            raise RuntimeError(f"{refusal} (this one was computed by {self._grad_fn.name()}); "
                               "use .detach() of it, or the leaves it was computed from")
        state = {}
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if name not in self._FRESH_ON_COPY and hasattr(self, name):
                    state[name] = getattr(self, name)
        if hasattr(self, "__dict__"):
            state.update(self.__dict__)
        return state

    def __deepcopy__(self, memo):
        """A new leaf with copies of the values and of ``.grad`` (PyTorch's rule: only leaves
        can be deep-copied). Its gradients accumulate into the copy, never into this tensor."""
        state = self._leaf_state("Only Tensors created explicitly by the user (graph leaves) "
                                 "support the deepcopy protocol")
        import copy

        new = _new(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(state, memo))
        return new

    def __getstate__(self) -> dict:
        # pickle and copy.copy: the same state, its arrays shared (copy) or serialised (pickle)
        return self._leaf_state("Cowardly refusing to serialize non-leaf tensor which "
                                "requires_grad, since autograd does not support crossing "
                                "process boundaries")

    def __setstate__(self, state: dict) -> None:
        self._grad_fn, self._output_nr, self._vc, self._base = None, 0, None, None
        for name, value in state.items():
            setattr(self, name, value)

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
        if not self.requires_grad:
            raise RuntimeError("register_hook(): cannot register a hook on a tensor that does "
                               "not require grad")
        node = self._grad_fn
        if node is None:
            acc = _function.accumulator(self)
            if acc._tensor_hooks is None:
                acc._tensor_hooks = []
            acc._hooked = True
            hooks = acc._tensor_hooks
        else:
            if node._hooks is None:
                node._hooks = {}
            node._hooked = True
            hooks = node._hooks.setdefault(self._output_nr, [])
        hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable) -> _RemovableHandle:
        """Call ``hook(tensor)`` right after a backward pass added to this leaf's ``.grad``.

        The leaf's gradient is final for this backward at that moment (while the rest of the
        backward may still be running): data-parallel training starts its all-reduce there.
        """
        if not self._requires_grad or self.grad_fn is not None:
            raise RuntimeError(
                "register_post_accumulate_grad_hook(): only leaf tensors that require grad have "
                "a gradient accumulated into .grad; use register_hook on a non-leaf tensor"
            )
        acc = _function.accumulator(self)
        if acc._post_acc_hooks is None:
            acc._post_acc_hooks = []
        acc._hooked = True
        acc._post_acc_hooks.append(hook)
        return _RemovableHandle(acc._post_acc_hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after ``backward()`` (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad(): cannot retain the grad of a tensor that does not "
                               "require grad")
        node = self.grad_fn
        if node is not None:
            if node._retain is None:
                node._retain = {}
            node._hooked = True
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
        """A new leaf tensor sharing this one's array (and version counter), cut off from the
        graph: an in-place change to either is seen by every node that saved the other."""
        t = _wrap(self.data, False, None, 0)
        vc = self._vc
        if vc is None:
            vc = self._vc = [0, None]
        t._vc = vc
        return t

    def detach_(self) -> Tensor:
        """Cut this tensor off from the graph in place; returns self. Earlier consumers keep
        their edges to its old history."""
        if self._base is not None:
            raise RuntimeError(
                "detach_(): cannot detach a view in place (it shares its base's history); use "
                "t = t.detach() instead"
            )
        self._grad_fn = None
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
from backprop import _tensor_methods, _tensor_operators  # noqa: E402
from backprop import devices as _devices  # noqa: E402
from backprop.autograd import engine as _engine  # noqa: E402
from backprop.autograd import function as _function  # noqa: E402
from backprop.ops import (  # noqa: E402
    clone,
    permute,
    to_dtype,
    transpose,
)
from backprop.ops import inplace as _inplace  # noqa: E402

_tensor_methods._bind()  # the methods of OpMethods and TorchMethods call ops too
_tensor_operators._bind()  # and the operators
