"""``Function``: the one mechanism every op uses, built-in or user-defined, and the one dispatch
point through which autograd and the op recorder both see every op.

A Function subclass defines ``forward(ctx, *args)`` on **NumPy arrays** (unlike PyTorch, whose
``forward`` receives Tensors: plain arrays keep a first-order step close to raw NumPy speed) and
``backward(ctx, *grad_outputs)`` on **Tensors**, written with differentiable ops so that
higher-order gradients need no extra code. ``Function.apply(*args)`` unwraps Tensors, runs
``forward`` and, when grad mode is on and an input requires grad, records the ``Context`` as the
outputs' ``grad_fn``.

The ``Context`` object *is* the graph node. It holds no input Tensor: each input becomes an
edge ``(node, output_nr, shape, dtype)`` when the op is applied, so rebinding a Tensor later
(an in-place op, ``detach_()``) changes no earlier edge, and a chain of ops that save nothing
keeps no intermediate array alive. It holds what ``save_for_backward`` saved (each value with
the version counter it had when saved) and releases it after backward. It never holds its
outputs strongly, so a graph cannot keep itself alive through a cycle.

Example:
    >>> import numpy as np, backprop as bp
    >>> class Cube(bp.autograd.Function):
    ...     '''y = x³;  dy/dx = 3x².'''
    ...     @staticmethod
    ...     def forward(ctx, x):            # x: ndarray
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, grad_out):    # grad_out and saved values: Tensors
    ...         (x,) = ctx.saved_tensors
    ...         return grad_out * 3 * x * x
    >>> x = bp.tensor([2.0], requires_grad=True)
    >>> Cube.apply(x).sum().backward()
    >>> x.grad
    tensor([12.])
"""

from __future__ import annotations

import itertools
import traceback
import weakref

import numpy as np

from backprop.autograd.grad_mode import _debug, _state
from backprop.autograd.node import (  # noqa: F401 -- Context, TensorMeta, ...: public here too
    _CONST,
    _INPUT,
    _LEAF,
    _OUTPUT,
    _PACKED,
    AccumulateGrad,
    Context,
    TensorMeta,
    _format_trace,
    _positional_names,
    _UntrackedContext,
    accumulator,
)
from backprop.errors import ShapeError
from backprop.tensor import Tensor, _new, _wrap

_registry: dict[str, type[Function]] = {}
"""Every built-in op (a Function defined in ``backprop.ops``) by class name; tests check it."""

_sequence = itertools.count()
"""Creation order of nodes: backward runs the most recently created ready node first, as
PyTorch's engine does, so hooks fire in the same order."""



class Function:
    """Base class of every op. Subclass it and define two static methods.

    ``forward(ctx, *args, **kwargs)`` receives NumPy arrays (and any non-tensor arguments as given)
    and returns an ndarray or a tuple of ndarrays. ``backward(ctx, *grad_outputs)`` receives one
    Tensor per output and returns one gradient Tensor per positional input of ``forward`` (or
    ``None`` for inputs that are not tensors or whose ``ctx.needs_input_grad`` is False).

    Tensors must be passed positionally (as PyTorch's ``apply``); keyword arguments are the op's
    attributes (``node.attrs``). A returned gradient whose shape differs from its input's is
    summed down when the input's shape broadcasts to it, and refused otherwise.

    Class attributes:
        broadcasts: True if forward broadcasts its inputs (for the error message on a mismatch).
        label: the name shown in graphs and errors (the class name by default).
        sets_dtype: True if forward chooses its output dtype (a cast). Otherwise a float64
            result from inputs without float64 arrays (integers, Python numbers) is made
            float32, PyTorch's default.
        is_view: True if the output may share input 0's memory as a view (reshape, permute,
            slicing, ...): it then shares input 0's version counter, and an in-place change
            through it reaches the base, in values and in gradients.
    """

    broadcasts = False
    sets_dtype = False
    is_view = False
    label: str = "Function"
    _builtin = False  # backprop's own ops: their wrappers never pass a Tensor as a keyword

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "label" not in cls.__dict__:
            cls.label = cls.__name__
        cls._builtin = cls.__module__.startswith("backprop.")
        if cls.__module__.startswith("backprop.ops.") and not cls.__name__.startswith("_"):
            _registry[cls.__name__] = cls

    @staticmethod
    def forward(ctx: Context, *args, **kwargs):
        raise NotImplementedError("Function subclasses must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx: Context, *grad_outputs):
        raise NotImplementedError("Function subclasses must define backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the op on Tensors (and plain values) and record it in the graph when needed."""
        # This runs for every op of every step, forward and backward: keep it lean (the
        # common cases are inlined; the rest lives in the helpers below).
        if kwargs and not cls._builtin:
            for v in kwargs.values():
                if isinstance(v, Tensor):
                    _refuse_keyword(cls, kwargs)
        arrays = []
        record = False
        consts = None  # {input index: value} of the positional inputs that are not Tensors
        if _state.grad_enabled:
            # one pass: the arrays, and the edges in case the op is recorded (where each input's
            # gradient goes, with its shape and dtype)
            edges = []
            needs = []
            for a in args:
                if isinstance(a, Tensor):
                    if a._base is not None:
                        a._refresh_view()
                    d = a.data
                    arrays.append(d)
                    if a._requires_grad:
                        record = True
                        fn = a._grad_fn
                        if fn is None:
                            try:
                                fn = a._accum
                            except AttributeError:
                                fn = accumulator(a)
                        edges.append((fn, a._output_nr, d.shape, d.dtype))
                        needs.append(True)
                    else:
                        edges.append((None, 0, d.shape, d.dtype))
                        needs.append(False)
                else:
                    if consts is None:
                        consts = {}
                    consts[len(arrays)] = a
                    arrays.append(a if type(a) is float or type(a) is int else _weak_scalar(a))
                    edges.append(None)
                    needs.append(False)
            ctx = Context()
            if record:
                ctx._next = edges  # (read-only from here on: no tuple copy needed)
                ctx.needs_input_grad = tuple(needs)
            else:
                n = len(args)
                ctx.needs_input_grad = _NO_GRAD[n] if n < 8 else (False,) * n
        else:  # grad mode is off: nothing is recorded
            for a in args:
                if isinstance(a, Tensor):
                    if a._base is not None:
                        a._refresh_view()
                    arrays.append(a.data)
                else:
                    arrays.append(a if type(a) is float or type(a) is int else _weak_scalar(a))
            ctx = _UntrackedContext()
            ctx._args = args
        try:
            out = cls.forward(ctx, *arrays, **kwargs)
        except ValueError as e:
            if cls.broadcasts and not isinstance(e, ShapeError):  # keep an op's own message
                _check_broadcast(cls, arrays)
            raise e
        if ctx._dirty:
            result = _changed_inputs(cls, ctx, args, arrays, out, record, kwargs)
        elif type(out) is tuple:
            result = _wrap_outputs(cls, ctx, args, arrays, out, record, kwargs)
        else:
            raw = out
            if type(out) is not np.ndarray:
                out = _as_array(cls, out)  # NumPy returns scalars for 0-d results
            dt = out.dtype
            shared = False
            if dt is _F64 and not cls.sets_dtype and not _has_float64(arrays):
                out = out.astype(np.float32)  # int inputs give float32, as PyTorch
                dt = _F32
            elif out.base is not None or (arrays and out is arrays[0]):
                # memory shared with an input (a NumPy view, or the input returned as is)
                # means a shared version counter; a first-order backward's own temporaries
                # need no such bookkeeping: nothing saves them and no user code holds them
                shared = record or not _debug.in_backward
            if _debug.anomaly:
                _check_finite(cls, "forward", out)
            # _wrap, inlined (a call per op saved)
            result = _new(Tensor)
            result.data = out
            result._output_nr = 0
            result.grad = None
            result._vc = None
            result._base = None
            if record and dt is not _F32 and dt.kind not in "fc":
                record = False  # integer and bool results carry no gradient
            if not record:
                result._requires_grad = False
                result._grad_fn = None
            else:
                result._requires_grad = True
                result._grad_fn = ctx
                ctx._fn = cls
                ctx._attrs = kwargs
                ctx._seq = next(_sequence)
                ctx._out_meta = (out.shape, dt)  # (one output: not a tuple of them)
                if _debug.anomaly:
                    ctx._trace = traceback.extract_stack()[:-1]
                if consts is not None:
                    ctx._consts = consts
            if shared:
                x = args[0] if args else None
                if cls.is_view and isinstance(x, Tensor) and _shares(out, arrays[0]):
                    _make_view(result, x, cls, kwargs, None)
                else:
                    _share_version(result, out, args, arrays)
            if record:
                ctx._saved = _pack_single(ctx, args, arrays, out, raw, result) \
                    if ctx._to_save else None
        if _debug.recorders:
            _record(cls, args, kwargs, result)
        return result


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


_NO_GRAD = [(False,) * n for n in range(8)]


def _weak_scalar(a):
    # NumPy scalars and 0-d arrays count as Python numbers (PyTorch's weak scalars): under
    # NEP 50 an np.float64 would make a float32 result float64
    if isinstance(a, np.generic) or (type(a) is np.ndarray and a.ndim == 0):
        return a.item()
    return a


def _refuse_keyword(cls, kwargs) -> None:
    for name, v in kwargs.items():
        if isinstance(v, Tensor):
            raise TypeError(
                f"{cls.__name__}.apply: the Tensor passed as keyword argument {name!r} would get "
                "no gradient: Function.apply takes Tensors positionally only (as PyTorch's). "
                f"Pass it as a positional argument; keywords are for the op's attributes."
            )


def _keep_consts(ctx, args) -> None:
    ctx._consts = {i: a for i, a in enumerate(args) if not isinstance(a, Tensor)}


def _shares(raw: np.ndarray, arr) -> bool:
    if type(arr) is not np.ndarray:
        return False
    base = raw.base
    if raw is arr or (base is not None and (base is arr or base is arr.base)):
        return True
    # a bounds check, not an exact one: a view made with as_strided has no ndarray as base
    return base is not None and np.may_share_memory(raw, arr)


def _share_version(result: Tensor, raw: np.ndarray, args, arrays) -> None:
    """An output that shares memory with an input Tensor shares its version counter, so an
    in-place change through either is seen by every node that saved the other."""
    for a, arr in zip(args, arrays):
        if isinstance(a, Tensor) and _shares(raw, arr):
            vc = a._vc
            if vc is None:
                vc = a._vc = [0, None]
            result._vc = vc
            return


def _wrap_outputs(cls, ctx, args, arrays, raw_outs, record, kwargs):
    """The general path: several outputs, views, or inputs changed in place (mark_dirty)."""
    single = type(raw_outs) is not tuple
    if single:
        raw_outs = (raw_outs,)
    outs = tuple(o if type(o) is np.ndarray else _as_array(cls, o) for o in raw_outs)
    if any(o.dtype is _F64 for o in outs) and not cls.sets_dtype and not _has_float64(arrays):
        raw_outs = outs = tuple(o.astype(np.float32) if o.dtype is _F64 else o for o in outs)
    if _debug.anomaly:
        _check_finite(cls, "forward", outs)
    dirty = ctx._dirty
    dirty_inputs = {}
    if dirty:
        for d in dirty:
            for a, arr in zip(args, arrays):
                if arr is d and isinstance(a, Tensor):
                    dirty_inputs[id(d)] = a
                    break
            else:
                raise RuntimeError(f"{cls.__name__}.forward: mark_dirty got an array that is not "
                                   "one of its Tensor inputs")
    non_diff = ctx._non_diff
    if record:
        ctx._fn = cls
        ctx._attrs = kwargs
        ctx._seq = next(_sequence)
        ctx._n_out = len(outs)
        ctx._out_meta = tuple((o.shape, o.dtype) for o in outs) if len(outs) > 1 else \
            (outs[0].shape, outs[0].dtype)
        if _debug.anomaly:
            ctx._trace = traceback.extract_stack()[:-2]
        if any(not isinstance(a, Tensor) for a in args):
            _keep_consts(ctx, args)
    tensors = []
    for j, o in enumerate(outs):
        diff = record and o.dtype.kind in "fc" and id(o) not in non_diff
        a = dirty_inputs.get(id(o))
        if a is not None:  # an input changed in place: the call returns that very Tensor
            t = a
            if diff:
                _rebase(cls, t, ctx, j)
        else:
            t = _wrap(o, diff, ctx if diff else None, j if diff else 0)
            if o.base is not None or any(o is arr for arr in arrays):
                if cls.is_view and isinstance(args[0], Tensor) and _shares(o, arrays[0]):
                    _make_view(t, args[0], cls, kwargs, None if single else j)
                else:
                    _share_version(t, o, args, arrays)
        tensors.append(t)
    for a in dirty_inputs.values():
        a._bump(cls.label)
    tensors = tuple(tensors)
    if record:
        ctx._saved = _pack_saved(ctx, args, arrays, outs, raw_outs, tensors) \
            if ctx._to_save else None
    return tensors[0] if single else tensors


def _changed_inputs(cls, ctx, args, arrays, out, record, kwargs):
    """An op that changed inputs in place (``mark_dirty``) returns those very Tensors, their
    version counters moved. The common case, an optimizer or ``add_`` under no_grad, is
    handled here without the general path."""
    if record or _debug.anomaly:
        return _wrap_outputs(cls, ctx, args, arrays, out, record, kwargs)
    by_id = {id(arr): a for a, arr in zip(args, arrays) if isinstance(a, Tensor)}
    single = type(out) is not tuple
    result = []
    for o in ((out,) if single else out):
        a = by_id.get(id(o))
        if a is None or a.data is not o:
            return _wrap_outputs(cls, ctx, args, arrays, out, record, kwargs)
        result.append(a)
    for d in ctx._dirty:
        a = by_id.get(id(d))
        if a is None:
            raise RuntimeError(f"{cls.__name__}.forward: mark_dirty got an array that is not "
                               "one of its Tensor inputs")
        a._bump(cls.label)
    return result[0] if single else tuple(result)


def _rebase(cls, t: Tensor, ctx, j: int) -> None:
    """A recorded op changed ``t`` in place: ``t`` now carries the op's history."""
    if t._grad_fn is None and t._requires_grad:
        raise RuntimeError(
            f"{cls.label}: a leaf tensor that requires grad cannot be changed in place while "
            "the graph is being recorded; do it inside `with backprop.no_grad():` (as optimizers "
            "do), or use the out-of-place op"
        )
    if t._base is not None:
        raise RuntimeError(
            f"{cls.label}: a custom Function that changes a view in place (mark_dirty) is not "
            "supported; .clone() the view first, or change the base tensor"
        )
    t._grad_fn, t._output_nr, t._requires_grad = ctx, j, True


def _make_view(t: Tensor, x: Tensor, cls, kwargs, j) -> None:
    """Make ``t`` a view of ``x``'s base: same memory, same version counter, and the recipe
    to recreate it from the base, so an in-place change anywhere reaches every view."""
    if x._base is not None:
        root, chain = x._base, x._view[0]
    else:
        root, chain = x, ()
    vc = root._vc
    if vc is None:
        vc = root._vc = [0, None]
        if x is not root:
            x._vc = vc
    t._vc = vc
    t._base = root
    t._view = (chain + ((cls, kwargs, j),), vc[0])


def _has_float64(arrays) -> bool:
    return any(type(a) is np.ndarray and a.dtype is _F64 for a in arrays)


def _as_array(cls, out) -> np.ndarray:
    if isinstance(out, Tensor):
        raise TypeError(
            f"{cls.__name__}.forward returned a Tensor; forward works on NumPy arrays and must "
            "return ndarrays (use .data on Tensors, or build the op from Tensor ops instead)"
        )
    return np.asarray(out)


# --- saved values ------------------------------------------------------------------------


def _pack_saved(ctx, args, arrays, outs, raw_outs, out_tensors) -> tuple:
    """Record how to hand each saved value back: an input, an output or a constant, each with
    the version counter and version it had when saved."""
    packed = []
    hooks = _debug.saved_hooks
    # the raw arrays live on only in the packed entries, which backward frees
    for obj in ctx.__dict__.pop("_to_save"):
        if isinstance(obj, Tensor):
            obj = obj.data
        entry = None
        # outputs first: an input changed in place (mark_dirty) is saved as the output
        j = 0
        for o in outs:
            if o is obj or raw_outs[j] is obj:
                t = out_tensors[j]
                if t._grad_fn is ctx:
                    entry = _save_output(ctx, j, t, o, hooks)
                break
            j += 1
        else:
            i = 0
            for arr in arrays:
                if arr is obj:  # identity: a Python number equal to an input is a constant
                    a = args[i]
                    if isinstance(a, Tensor):
                        entry = _save_input(i, a, hooks)
                    break
                i += 1
        packed.append(entry or (_CONST, obj))
    return tuple(packed)


def _pack_single(ctx, args, arrays, out, raw, result) -> list:
    """``_pack_saved`` for an op with one output (most ops), its common entries inlined."""
    if _debug.saved_hooks:
        return _pack_saved(ctx, args, arrays, (out,), (raw,), (result,))
    packed = []
    for obj in ctx.__dict__.pop("_to_save"):
        if isinstance(obj, Tensor):
            obj = obj.data
        if obj is out or obj is raw:
            vc = result._vc
            if vc is None:
                vc = result._vc = [0, None]
            # a weak reference: the node must not keep its own output alive
            packed.append((_OUTPUT, 0, weakref.ref(result), out, vc, vc[0]))
            continue
        i = 0
        for arr in arrays:
            if arr is obj:  # identity: a Python number equal to an input is a constant
                a = args[i]
                if isinstance(a, Tensor):
                    vc = a._vc
                    if vc is None:
                        vc = a._vc = [0, None]
                    if a._grad_fn is None and a._requires_grad:
                        packed.append((_LEAF, i, a, vc, vc[0]))
                    else:
                        packed.append((_INPUT, i, obj, vc, vc[0], a._grad_fn, a._output_nr,
                                       a._requires_grad))
                    break
                packed.append((_CONST, obj))
                break
            i += 1
        else:
            packed.append((_CONST, obj))
    return packed  # (a list: read-only from here on, no tuple copy needed)


def _save_input(i: int, t: Tensor, hooks):
    if hooks:
        pack, unpack = hooks[-1]
        return (_PACKED, pack(t), unpack)
    vc = t._vc
    if vc is None:
        vc = t._vc = [0, None]
    if t._grad_fn is None and t._requires_grad:
        return (_LEAF, i, t, vc, vc[0])  # a leaf: gradients must reach this very tensor
    return (_INPUT, i, t.data, vc, vc[0], t._grad_fn, t._output_nr, t._requires_grad)


def _save_output(ctx, j: int, t: Tensor, arr: np.ndarray, hooks):
    if hooks:
        pack, unpack = hooks[-1]
        return (_PACKED, pack(t), unpack)
    vc = t._vc
    if vc is None:
        vc = t._vc = [0, None]
    # a weak reference: the node must not keep its own output alive
    return (_OUTPUT, j, weakref.ref(t), arr, vc, vc[0])


# --- checks ------------------------------------------------------------------------------


def _check_broadcast(cls, arrays) -> None:
    shapes = [np.shape(a) for a in arrays if isinstance(a, np.ndarray)]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(s) for s in shapes)
        raise ShapeError(
            f"{cls.label.lower()}: shapes {listed} cannot be broadcast together: each dimension, "
            "aligned from the right, must be equal or 1. Reshape or unsqueeze one of the inputs."
        ) from None


def _check_finite(cls, phase: str, values, trace=None) -> None:
    node = _debug.backward_node
    if node is not None:  # an op run inside a backward rule: blame that rule
        cls, phase, trace = node._fn, "backward", node._trace
    items = values if isinstance(values, tuple) else (values,)
    for k, v in enumerate(items):
        if v is None:
            continue
        arr = v.data if isinstance(v, Tensor) else np.asarray(v)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            bad = "NaN" if np.isnan(arr).any() else "Inf"
            which = "output" if phase == "forward" else "gradient for input"
            created = "\nThe op was created at:\n" + "".join(traceback.format_list(trace)) if (
                trace
            ) else ""
            raise FloatingPointError(
                f"detect_anomaly: {cls.label} {phase} produced {bad} in its {which} {k} "
                f"(shape {arr.shape}).{created}"
            )


# --- the op recorder's hook (see backprop.autograd.graph.record_ops) ---------------------


def _record(cls, args, kwargs, result) -> None:
    outputs = result if type(result) is tuple else (result,)
    phase = "backward" if _debug.in_backward else "forward"
    for rec in _debug.recorders:
        rec._add(cls, args, kwargs, outputs, phase)


# PyTorch's path: torch.autograd.function.once_differentiable
from backprop.autograd.once_differentiable import once_differentiable  # noqa: E402,F401
