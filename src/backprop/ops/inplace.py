"""In-place ops and views: how a change to a tensor's memory reaches its values, its version
counter and its history, the same whether or not grad is recorded.

Every in-place op writes into the tensor's own array, so every view and ``detach()``ed copy of
that memory sees the new values, and bumps the shared version counter, so any node that saved
the old values refuses to backward through them.

- **Not recorded** (grad mode off, or nothing involved requires grad; optimizers, gradient
  clipping): an in-place kernel (``AddInplace``, ...) writes into the array. It is an op like any
  other, so the op recorder sees it.
- **Recorded**: the op is computed out of place from a snapshot of the tensor's history (so its
  gradient rule is the ordinary one), values the new node saved from the old memory are cloned
  first (PyTorch saves ``original_self`` the same way), then the result is written back:
  - into a tensor that is not a view: the tensor takes over the new node as its history;
  - into a view: ``CopySlices`` writes it into the base's region and becomes the base's
    history (PyTorch's CopySlices), and the view's history is rebuilt from the base's. Other
    views of the same base rebuild theirs when next used (their version is stale).

PyTorch's refusals are kept: a leaf that requires grad, or a view of one, cannot be changed in
place while grad is recorded, and an ``expand()``ed tensor (read-only memory) never.
"""

from __future__ import annotations

import weakref

import numpy as np

from backprop.autograd.function import _INPUT, _OUTPUT, Context, Function, _sequence
from backprop.autograd.grad_mode import _debug, _state, no_grad
from backprop.errors import ShapeError
from backprop.ops._util import _SCRATCH, const, first_order
from backprop.tensor import Tensor, _raw_index, _wrap

# --- in-place kernels (the untracked path) ---------------------------------------------------


class _InplaceKernel(Function):
    """Writes into its first input's array and returns it (``mark_dirty``)."""

    inplace = True


def _cast_error(op: str, x: np.ndarray, exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"{op}: the result cannot be stored in this tensor's dtype {x.dtype} ({exc}); cast "
        "the tensor first (e.g. .float()) or use the out-of-place op"
    )


class AddInplace(_InplaceKernel):
    """x += alpha · other, in place."""

    label = "add_"

    @staticmethod
    def forward(ctx, x, other, alpha=1):
        try:
            np.add(x, other if alpha == 1 else np.multiply(other, alpha), out=x)
        except TypeError as e:  # NumPy's casting error (an int tensor += a float)
            raise _cast_error("add_", x, e) from None
        ctx.mark_dirty(x)
        return x


class SubInplace(_InplaceKernel):
    """x -= alpha · other, in place."""

    label = "sub_"

    @staticmethod
    def forward(ctx, x, other, alpha=1):
        try:
            np.subtract(x, other if alpha == 1 else np.multiply(other, alpha), out=x)
        except TypeError as e:
            raise _cast_error("sub_", x, e) from None
        ctx.mark_dirty(x)
        return x


class MulInplace(_InplaceKernel):
    """x *= other, in place."""

    label = "mul_"

    @staticmethod
    def forward(ctx, x, other):
        try:
            np.multiply(x, other, out=x)
        except TypeError as e:
            raise _cast_error("mul_", x, e) from None
        ctx.mark_dirty(x)
        return x


class DivInplace(_InplaceKernel):
    """x /= other, in place."""

    label = "div_"

    @staticmethod
    def forward(ctx, x, other):
        try:
            np.divide(x, other, out=x)
        except TypeError as e:
            raise _cast_error("div_", x, e) from None
        ctx.mark_dirty(x)
        return x


class ClampInplace(_InplaceKernel):
    """x = clamp(x, min, max), in place."""

    label = "clamp_"

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        np.clip(x, min, max, out=x)
        ctx.mark_dirty(x)
        return x


class CopyInplace(_InplaceKernel):
    """x[...] = src (broadcast to x's shape, cast to x's dtype), in place."""

    label = "copy_"

    @staticmethod
    def forward(ctx, x, src):
        try:
            np.copyto(x, src, casting="unsafe")
        except ValueError:
            raise ShapeError(f"copy_: cannot broadcast a source of shape {np.shape(src)} to the "
                             f"tensor's shape {x.shape}") from None
        ctx.mark_dirty(x)
        return x


class FillInplace(_InplaceKernel):
    """x[...] = value, in place."""

    label = "fill_"

    @staticmethod
    def forward(ctx, x, value=0):
        x.fill(value)
        ctx.mark_dirty(x)
        return x


class SetItemInplace(_InplaceKernel):
    """x[index] = value, in place."""

    label = "setitem"

    @staticmethod
    def forward(ctx, x, value, index=None):
        try:
            x[index] = value
        except ValueError:
            raise ShapeError(
                f"setitem: cannot assign a value of shape {np.shape(value)} to the indexed "
                f"region of shape {x[index].shape} (tensor shape {x.shape})"
            ) from None
        ctx.mark_dirty(x)
        return x


# --- views -----------------------------------------------------------------------------------


def view_of(arr: np.ndarray, chain: tuple) -> np.ndarray:
    """Replay a view recipe ((op, attrs, output index or None), ...) on an array: the same
    region, as a NumPy view."""
    for cls, kwargs, j in chain:
        arr = cls.forward(Context(), arr, **kwargs)
        if j is not None:
            arr = arr[j]
    return arr


def apply_view(t: Tensor, chain: tuple) -> Tensor:
    """Replay a view recipe on a Tensor with the view ops themselves (recorded when needed)."""
    for cls, kwargs, j in chain:
        t = cls.apply(t, **kwargs)
        if j is not None:
            t = t[j]
    return t


def refresh_view(t: Tensor, root: Tensor, chain: tuple) -> None:
    """Rebuild a view's history from its base's current one (see ``Tensor._refresh_view``)."""
    recorders, _debug.recorders = _debug.recorders, None  # bookkeeping, not a step's work
    prev, _state.grad_enabled = _state.grad_enabled, True
    try:
        v = apply_view(root, chain)
    finally:
        _debug.recorders, _state.grad_enabled = recorders, prev
    t._grad_fn, t._output_nr, t._requires_grad = v._grad_fn, v._output_nr, v._requires_grad


class CopySlices(Function):
    """base[view] = value, in place: the write-back of an in-place op on a view (PyTorch's
    CopySlices). ``chain`` is the view's recipe from the base.
    ∂L/∂base = ∂L/∂y with the view's region zeroed;  ∂L/∂value = the view of ∂L/∂y."""

    inplace = True

    @staticmethod
    def forward(ctx, base, value, chain=()):
        ctx.chain = chain
        view_of(base, chain)[...] = value
        ctx.mark_dirty(base)
        return base

    @staticmethod
    def backward(ctx, grad_out):
        need_base, need_value = ctx.needs_input_grad
        grad_base = grad_value = None
        if need_base:
            keep = np.ones(grad_out.shape, dtype=grad_out.dtype)
            view_of(keep, ctx.chain)[...] = 0
            grad_base = grad_out * const(keep)
        if need_value:
            grad_value = apply_view(grad_out, ctx.chain)
        return grad_base, grad_value


# --- the driver --------------------------------------------------------------------------------


def _apply(t: Tensor, name: str, op, kernel, args: tuple, kwargs: dict) -> Tensor:
    if t._base is not None:
        t._refresh_view()
    try:
        if _state.grad_enabled and (t._requires_grad or any(
                isinstance(a, Tensor) and a.requires_grad for a in args)):
            _recorded(t, name, op, args, kwargs)
        elif _debug.recorders:
            kernel.apply(t, *args, **kwargs)
        else:  # nothing records this: the same kernel, without the dispatch (optimizer loops)
            if len(args) == 1:
                kernel.forward(_DIRECT, t.data, _operand(args[0]), **kwargs)
            else:
                kernel.forward(_DIRECT, t.data, *map(_operand, args), **kwargs)
            vc = t._vc
            if vc is None:
                vc = t._vc = [0, None]
            vc[0] += 1
            vc[1] = name
    except ValueError:
        if t.data.flags.writeable:
            raise
        raise RuntimeError(
            f"{name}: unsupported operation: this tensor's memory is read-only: more than one "
            "of its elements may refer to a single memory location (an expand()ed or "
            "broadcast view), or it wraps a read-only NumPy array. .clone() it before changing "
            "it in place"
        ) from None
    return t


class _Direct:
    """The ``ctx`` of a kernel run outside ``Function.apply``: ``apply`` would only bump the
    version of what ``mark_dirty`` names, which the caller does itself."""

    @staticmethod
    def mark_dirty(*arrays) -> None:
        pass

    @staticmethod
    def save_for_backward(*values) -> None:  # ReluInplace saves its result when recorded
        pass


_DIRECT = _Direct()


def _operand(a):
    # as Function.apply passes it: the array of a Tensor, NumPy scalars and 0-d arrays as
    # Python numbers (weak scalars: a float32 tensor times np.float64 stays float32 math)
    if isinstance(a, Tensor):
        return a.data
    if isinstance(a, np.generic) or (type(a) is np.ndarray and a.ndim == 0):
        return a.item()
    return a


def _recorded(t: Tensor, name: str, op, args: tuple, kwargs: dict) -> None:
    base = t._base
    if base is None and t._grad_fn is None and t._requires_grad:
        raise RuntimeError(
            f"{name}: a leaf tensor that requires grad cannot be changed in place while the "
            "graph is being recorded; do it inside `with backprop.no_grad():` (as optimizers "
            "do), or use the out-of-place op"
        )
    if base is not None and base._grad_fn is None and base._requires_grad:
        raise RuntimeError(
            f"{name}: a view of a leaf tensor that requires grad is being used in an in-place "
            "operation while the graph is being recorded; change it under no_grad(), or "
            "clone() the leaf first"
        )
    vc = t._vc
    if vc is None:
        vc = t._vc = [0, None]
    old = _wrap(t.data, t._requires_grad, t._grad_fn, t._output_nr)
    old._vc = vc
    first = next(_sequence)
    result = op(old, *args, **kwargs)
    if result.shape != t.shape:
        raise ShapeError(
            f"{name}: the result has shape {result.shape} but the tensor has shape {t.shape}; "
            "an in-place op cannot change a tensor's shape (the other operand must broadcast "
            "to it)"
        )
    if result.dtype != t.dtype:
        result = to_dtype(result, t.dtype)
    _clone_saved_memory(result._grad_fn, t.data, first)
    if base is None:
        with no_grad():
            CopyInplace.apply(t, result)
        node = result._grad_fn
        t._grad_fn, t._output_nr, t._requires_grad = node, result._output_nr, \
            result._requires_grad
        if node is not None:
            _repoint_saved_output(node, result, t)
    else:
        CopySlices.apply(base, result, chain=t._view[0])
        t._refresh_view()
    vc[1] = name


def _clone_saved_memory(node, arr: np.ndarray, first: int) -> None:
    """The nodes created by the op (sequence numbers after ``first``) that saved the memory
    about to be overwritten get their own copy of it, with a fresh version counter."""
    stack = [node] if node is not None else []
    seen = set()
    while stack:
        n = stack.pop()
        if n in seen or n._fn is None or n._seq <= first:
            continue
        seen.add(n)
        if n._saved:
            n._saved = tuple(
                (e[0], e[1], e[2].copy(), [0, None], 0, *e[5:])
                if e[0] == _INPUT and e[2] is arr else e
                for e in n._saved
            )
        stack.extend(e[0] for e in n._next if e is not None and e[0] is not None)


def _repoint_saved_output(node, result: Tensor, t: Tensor) -> None:
    """A node that saved its output (exp_, tanh_, ...) now finds it in ``t``, at its new
    version, so later in-place changes to ``t`` are detected."""
    if node._saved:
        node._saved = tuple(
            (_OUTPUT, e[1], weakref.ref(t), t.data, t._vc, t._vc[0])
            if e[0] == _OUTPUT and e[2]() is result else e
            for e in node._saved
        )


_NO_KWARGS: dict = {}


def _untracked(t: Tensor, other, ufunc, name: str, alpha=1) -> Tensor | None:
    """``t = ufunc(t, alpha · other)`` in place, inline, when nothing records it and ``t`` is
    not a view (optimizer loops run these ops for every parameter of every step); None when
    ``_apply`` must do it (recording, views, or an error for it to word: nothing was
    written then)."""
    if t._base is not None or _debug.recorders or (_state.grad_enabled and (
            t._requires_grad or (isinstance(other, Tensor) and other._requires_grad))):
        return None
    if isinstance(other, Tensor):
        o = other.data
    else:  # (a Python number, as an optimizer's momentum, needs no conversion)
        o = other if type(other) is float or type(other) is int else _operand(other)
    x = t.data
    try:
        ufunc(x, o if alpha == 1 else np.multiply(o, alpha), out=x)
    except (TypeError, ValueError):
        return None
    vc = t._vc
    if vc is None:
        vc = t._vc = [0, None]
    vc[0] += 1
    vc[1] = name
    return t


def add_(t: Tensor, other, alpha=1) -> Tensor:
    """In place: t += alpha · other."""
    done = _untracked(t, other, np.add, "add_", alpha)
    if done is not None:
        return done
    return _apply(t, "add_", _add, AddInplace, (other,),
                  _NO_KWARGS if alpha == 1 else {"alpha": alpha})


def sub_(t: Tensor, other, alpha=1) -> Tensor:
    """In place: t -= alpha · other."""
    done = _untracked(t, other, np.subtract, "sub_", alpha)
    if done is not None:
        return done
    return _apply(t, "sub_", _sub, SubInplace, (other,),
                  _NO_KWARGS if alpha == 1 else {"alpha": alpha})


def mul_(t: Tensor, other) -> Tensor:
    """In place: t *= other."""
    done = _untracked(t, other, np.multiply, "mul_")
    if done is not None:
        return done
    return _apply(t, "mul_", mul, MulInplace, (other,), _NO_KWARGS)


def div_(t: Tensor, other) -> Tensor:
    """In place: t /= other."""
    return _apply(t, "div_", div, DivInplace, (other,), _NO_KWARGS)


def clamp_(t: Tensor, min=None, max=None) -> Tensor:
    """In place: t = clamp(t, min, max)."""
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):  # tensor bounds: the composite
        return _apply(t, "clamp_", _clamp_tensors, ClampTensorsInplace, (min, max), {})
    return _apply(t, "clamp_", _clamp, ClampInplace, (), {"min": min, "max": max})


def copy_(t: Tensor, src) -> Tensor:
    """In place: t[...] = src (broadcast, cast to t's dtype)."""
    return _apply(t, "copy_", _overwrite, CopyInplace, (src,), {})


def fill_(t: Tensor, value) -> Tensor:
    """In place: every element of t = value."""
    if isinstance(value, Tensor):
        if value.ndim:
            raise ValueError(f"fill_: the value must be a number or a 0-d tensor, got shape "
                             f"{value.shape}")
        return _apply(t, "fill_", _overwrite, CopyInplace, (value,), {})
    return _apply(t, "fill_", _fill, FillInplace, (), {"value": value})


def relu_(t: Tensor) -> Tensor:
    """In place: t = max(t, 0) (PyTorch's ``relu_``, what ``nn.ReLU(inplace=True)`` calls).

    When grad is recorded on a tensor made by an op (not a view, not a leaf), one pass in its own
    memory that saves the result for backward (``ReluInplace``), as PyTorch's relu_ does: a node
    that saved the old values then refuses to backward (the version counter), as in PyTorch.
    Otherwise the general in-place path (views, refusals, the untracked kernel)."""
    if t._base is None and t._grad_fn is not None and _state.grad_enabled:
        return ReluInplace.apply(t)
    return _apply(t, "relu_", relu, ReluInplace, (), _NO_KWARGS)


def leaky_relu_(t: Tensor, negative_slope: float = 0.01) -> Tensor:
    """In place: t = t if t > 0 else negative_slope·t (PyTorch's ``leaky_relu_``)."""
    return _apply(t, "leaky_relu_", _activation, ActivationInplace, (),
                  {"function": LeakyRelu, "negative_slope": negative_slope})


def elu_(t: Tensor, alpha: float = 1.0) -> Tensor:
    """In place: t = t if t > 0 else alpha·(eᵗ - 1) (PyTorch's ``elu_``)."""
    return _apply(t, "elu_", _activation, ActivationInplace, (),
                  {"function": Elu, "alpha": alpha})


def silu_(t: Tensor) -> Tensor:
    """In place: t = t·σ(t) (what ``F.silu(x, inplace=True)`` does)."""
    return _apply(t, "silu_", _activation, ActivationInplace, (),
                  {"function": Sigmoid, "times_input": True})


def setitem_(t: Tensor, index, value) -> None:
    """In place: t[index] = value (basic or advanced indexing)."""
    index = _raw_index(index)
    _apply(t, "setitem", _index_put, SetItemInplace, (value,), {"index": index})


class ReluInplace(Function):
    """x ← max(x, 0) in x's own memory;  ∂L/∂x = G where y > 0, else 0 (y, the result, saved:
    PyTorch's relu_). Also the untracked kernel of ``relu_``."""

    label = "ReLU"

    @staticmethod
    def forward(ctx, x):
        relu_array(x, out=x)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        if first_order():
            return const(relu_grad_array(grad_out.data, y.data))
        return grad_out * const(y.data > 0)  # Relu's rule


class ActivationInplace(_InplaceKernel):
    """x ← f(x), f an elementwise activation given by its Function (times x when
    ``times_input``: SiLU is x·σ(x)), written into x: the untracked kernel of ``leaky_relu_``,
    ``elu_`` and ``silu_`` (recorded, they take the out-of-place op: ``_activation``)."""

    @staticmethod
    def forward(ctx, x, function=None, times_input=False, **kwargs):
        y = function.forward(_SCRATCH, x, **kwargs)
        if times_input:
            np.multiply(x, y, out=x)
        else:
            np.copyto(x, y)
        ctx.mark_dirty(x)
        return x


# out-of-place forms for the recorded path: op(old, *args, **kwargs)
def _activation(old, function=None, times_input=False, **kwargs):
    y = function.apply(old, **kwargs)
    return old * y if times_input else y

def _add(old, other, alpha=1):
    return add(old, other, alpha=alpha)


def _sub(old, other, alpha=1):
    return sub(old, other, alpha=alpha)


def _clamp(old, min=None, max=None):
    return clamp(old, min, max)


def _clamp_tensors(old, lo, hi):
    return clamp(old, lo, hi)


class ClampTensorsInplace(_InplaceKernel):
    """x = min(max(x, lo), hi) with tensor bounds, in place."""

    label = "clamp_"

    @staticmethod
    def forward(ctx, x, lo, hi):
        if lo is not None:
            np.maximum(x, lo, out=x)
        if hi is not None:
            np.minimum(x, hi, out=x)
        ctx.mark_dirty(x)
        return x


def _overwrite(old, src):
    # zero gradient to the old values, the full gradient to src (summed to its shape)
    return where(const(np.zeros(old.shape, dtype=bool)), old, src)


def _fill(old, value=0):
    return _overwrite(old, value)


def _index_put(old, value, index=None):
    return index_put(old, index, value)


from backprop.ops.activation import (  # noqa: E402
    Elu,
    LeakyRelu,
    relu,
    relu_array,
    relu_grad_array,
)
from backprop.ops.elementwise import (  # noqa: E402
    Sigmoid,
    add,
    clamp,
    div,
    mul,
    sub,
    to_dtype,
    where,
)
from backprop.ops.shape import index_put  # noqa: E402
