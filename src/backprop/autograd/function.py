"""``Function``: the one mechanism every differentiable op uses, built-in or user-defined.

A Function subclass defines ``forward(ctx, *args)`` on **NumPy arrays** (unlike PyTorch, whose
``forward`` receives Tensors: plain arrays keep a first-order step close to raw NumPy speed) and
``backward(ctx, *grad_outputs)`` on **Tensors**, written with differentiable ops so that
higher-order gradients need no extra code. ``Function.apply(*args)`` unwraps Tensors, runs
``forward`` and, when grad mode is on and an input requires grad, records the ``Context`` as the
outputs' ``grad_fn``.

The ``Context`` object *is* the graph node: it holds the inputs (strongly), what ``forward`` saved,
``needs_input_grad`` and any attributes ``forward`` set on it. It never holds its outputs strongly,
so a graph cannot keep itself alive through a cycle.

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

import functools
import traceback
import weakref

import numpy as np

from backprop.autograd.grad_mode import _debug, _state, no_grad
from backprop.errors import ShapeError
from backprop.tensor import Tensor, _wrap

_registry: dict[str, type[Function]] = {}
"""Every built-in op (a Function defined in ``backprop.ops``) by class name; tests check it."""

_INPUT, _OUTPUT, _CONST = 0, 1, 2


class Context:
    """The graph node of one op application, and the ``ctx`` its forward and backward receive.

    Attributes:
        needs_input_grad: one bool per positional input of ``forward``; skip the work for False.
        saved_tensors: what ``save_for_backward`` stored, handed back as the graph's own Tensors.
    """

    # Class-level defaults keep node creation cheap: an instance only gets what it sets.
    _to_save = ()
    _saved = None
    _released = False
    _hooks = None  # {output_nr: [hook, ...]} from Tensor.register_hook on a non-leaf output
    _retain = None  # {output_nr: weakref to the output Tensor} from retain_grad()
    _trace = None  # creation stack, recorded only under detect_anomaly()
    _n_out = 1
    _out_meta = None  # ((shape, dtype), ...) of the outputs, kept only for multi-output ops
    _edges = None  # after release: the inputs as (grad_fn, output_nr, shape, dtype) or leaves
    needs_input_grad = ()

    def save_for_backward(self, *arrays) -> None:
        """Keep inputs or outputs of ``forward`` (ndarrays) for ``backward``.

        Inputs and outputs come back from ``saved_tensors`` as the graph's own Tensors, so
        ``backward`` stays differentiable and in-place changes to them are detected. Any other
        array comes back as a constant Tensor (it breaks higher-order gradients: mark the op
        ``@once_differentiable`` or recompute it in ``backward``).
        """
        self._to_save = arrays

    def mark_non_differentiable(self, *outputs) -> None:
        """Declare outputs (the ndarrays ``forward`` returns) that never carry gradients."""
        self._non_diff = tuple(id(o) for o in outputs)

    @property
    def saved_tensors(self) -> tuple:
        """The values saved by ``save_for_backward``, as Tensors (non-arrays are returned as is)."""
        saved = self._saved
        if saved is None:
            if self._released:
                raise RuntimeError(
                    f"{self.name()}: trying to backward through the graph a second time, but the "
                    "values it saved were freed by the first backward(). Pass retain_graph=True to "
                    "the first backward() (or autograd.grad()) to keep them."
                )
            return ()
        out = []
        for entry in saved:
            kind = entry[0]
            if kind == _INPUT:
                t = self._inputs[entry[1]]
                if t._version != entry[2]:
                    self._raise_modified(f"input {entry[1]}", t, entry[2])
            elif kind == _OUTPUT:
                t = entry[2]()
                if t is None:  # the output died: rebuild it, still attached to this node
                    t = _wrap(entry[3], True, self, entry[1])
                elif t._version != entry[4]:
                    self._raise_modified(f"output {entry[1]}", t, entry[4])
            else:
                t = entry[1]
                if type(t) is np.ndarray:
                    t = _wrap(t, False, None, 0)
            out.append(t)
        return tuple(out)

    def _raise_modified(self, what: str, t: Tensor, expected: int) -> None:
        where = _format_trace(self._trace)
        raise RuntimeError(
            f"{self.name()}: one of the tensors it saved for the gradient ({what}, shape "
            f"{tuple(t.shape)}) was modified by an in-place operation: it is at version "
            f"{t._version}, but {self.name()} saved it at version {expected}. Use an out-of-place "
            f"op, or .clone() the tensor before changing it in place.{where}"
        )

    def name(self) -> str:
        """The node's name, e.g. ``'MulBackward'``, as PyTorch's ``grad_fn.name()``."""
        return self._fn.label + "Backward"

    @property
    def next_functions(self) -> tuple:
        """((grad_fn or None, output_nr), ...) per input: the edges of the graph, for drawing it."""
        from backprop.autograd.engine import _inputs_of

        return tuple(
            (getattr(t, "grad_fn", None), getattr(t, "_output_nr", 0)) for t in _inputs_of(self)
        )

    def __repr__(self) -> str:
        return f"<{self.name()}>"


def _format_trace(trace) -> str:
    if not trace:
        return (
            " Run under backprop.autograd.detect_anomaly() to see where the op was created."
        )
    return "\nThe op was created at:\n" + "".join(traceback.format_list(trace))


class Function:
    """Base class of every differentiable op. Subclass it and define two static methods.

    ``forward(ctx, *args, **kwargs)`` receives NumPy arrays (and any non-tensor arguments as given)
    and returns an ndarray or a tuple of ndarrays. ``backward(ctx, *grad_outputs)`` receives one
    Tensor per output and returns one gradient Tensor per positional input of ``forward`` (or
    ``None`` for inputs that are not tensors or whose ``ctx.needs_input_grad`` is False).

    Class attributes:
        broadcasts: True if forward broadcasts its inputs; the engine then reduces each returned
            gradient to its input's shape. For other ops a wrong gradient shape is an error.
        label: the name shown in graphs and errors (the class name by default).
        sets_dtype: True if forward chooses its output dtype (a cast). Otherwise a float64
            result from inputs without float64 arrays (integers, Python numbers) is made
            float32, PyTorch's default.
    """

    broadcasts = False
    sets_dtype = False
    label: str = "Function"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "label" not in cls.__dict__:
            cls.label = cls.__name__
        if cls.__module__.startswith("backprop.ops."):
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
        # This runs for every op of every step, forward and backward: keep it lean.
        arrays = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.data)
                if a._requires_grad:
                    record = True
            elif isinstance(a, np.generic):
                # NumPy scalars count as Python numbers (PyTorch's weak scalars): under NEP 50
                # an np.float64 would silently turn a float32 result into float64
                arrays.append(a.item())
            else:
                arrays.append(a)
        ctx = Context()
        if record:
            record = _state.grad_enabled
            if record:
                ctx.needs_input_grad = tuple(
                    [isinstance(a, Tensor) and a._requires_grad for a in args]
                )
        try:
            out = cls.forward(ctx, *arrays, **kwargs)
        except ValueError as e:
            if cls.broadcasts and not isinstance(e, ShapeError):  # keep an op's own message
                _check_broadcast(cls, arrays)
            raise e
        if type(out) is tuple:
            return _wrap_outputs(cls, ctx, args, arrays, out, record)
        raw = out
        if type(out) is not np.ndarray:
            out = _as_array(cls, out)  # NumPy returns scalars for 0-d results
        dt = out.dtype
        if dt is _F64 and not cls.sets_dtype and not _has_float64(arrays):
            out = raw = out.astype(np.float32)  # int inputs give float32, as PyTorch's default
            dt = _F32
        if _debug.anomaly:
            _check_finite(cls, "forward", out)
        if not record or (dt is not _F32 and dt.kind not in "fc"):
            return _wrap(out, False, None, 0)
        ctx._fn = cls
        ctx._inputs = args
        if _debug.anomaly:
            ctx._trace = traceback.extract_stack()[:-2]
        y = _wrap(out, True, ctx, 0)
        if ctx._to_save:
            ctx._saved = _pack_saved(ctx, args, arrays, (out,), (raw,), (y,))
        return y


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def _wrap_outputs(cls, ctx, args, arrays, raw_outs, record):
    outs = tuple(o if type(o) is np.ndarray else _as_array(cls, o) for o in raw_outs)
    if any(o.dtype is _F64 for o in outs) and not cls.sets_dtype and not _has_float64(arrays):
        raw_outs = outs = tuple(o.astype(np.float32) if o.dtype is _F64 else o for o in outs)
    if _debug.anomaly:
        _check_finite(cls, "forward", outs)
    non_diff = getattr(ctx, "_non_diff", ())
    if record:
        ctx._fn = cls
        ctx._inputs = args
        ctx._n_out = len(outs)
        ctx._out_meta = tuple((o.shape, o.dtype) for o in outs)
        if _debug.anomaly:
            ctx._trace = traceback.extract_stack()[:-3]
    tensors = tuple(
        _wrap(o, True, ctx, j)
        if record and o.dtype.kind in "fc" and id(o) not in non_diff
        else _wrap(o, False, None, 0)
        for j, o in enumerate(outs)
    )
    if record and ctx._to_save:
        ctx._saved = _pack_saved(ctx, args, arrays, outs, raw_outs, tensors)
    return tensors


def _has_float64(arrays) -> bool:
    return any(type(a) is np.ndarray and a.dtype is _F64 for a in arrays)


def _as_array(cls, out) -> np.ndarray:
    if isinstance(out, Tensor):
        raise TypeError(
            f"{cls.__name__}.forward returned a Tensor; forward works on NumPy arrays and must "
            "return ndarrays (use .data on Tensors, or build the op from Tensor ops instead)"
        )
    return np.asarray(out)


def _pack_saved(ctx, args, arrays, outs, raw_outs, out_tensors) -> tuple:
    """Record how to hand each saved value back: as an input, an output or a constant."""
    packed = []
    to_save = ctx._to_save
    del ctx._to_save  # the raw arrays live on only in the packed entries, which backward frees
    for obj in to_save:
        entry = None
        if isinstance(obj, Tensor):
            obj = obj.data
        if isinstance(obj, (np.ndarray, np.generic)):
            for i, arr in enumerate(arrays):
                if arr is obj and isinstance(args[i], Tensor):
                    entry = (_INPUT, i, args[i]._version)
                    break
            else:
                for j, (o, raw) in enumerate(zip(outs, raw_outs)):
                    if o is obj or raw is obj:
                        t = out_tensors[j]
                        if t.grad_fn is ctx:
                            # a weak reference: the node must not keep its own output alive
                            entry = (_OUTPUT, j, weakref.ref(t), o, 0)
                        break
        packed.append(entry or (_CONST, obj))
    return tuple(packed)


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


class _OnceDifferentiableBackward(Function):
    """Carries a once-differentiable gradient; differentiating it again raises."""

    @staticmethod
    def forward(ctx, value, *sources, op_name=""):
        ctx.op_name = op_name
        return value

    @staticmethod
    def backward(ctx, grad_out):
        raise RuntimeError(
            f"{ctx.op_name} is marked @once_differentiable: its backward is not itself "
            "differentiable, so a second-order gradient through it is not available."
        )


def once_differentiable(backward):
    """Decorate a ``backward`` written in plain NumPy (not differentiable).

    First-order gradients work as usual; differentiating through it again (``create_graph=True``)
    raises instead of silently returning zero.
    """

    @functools.wraps(backward)
    def wrapper(ctx, *grad_outputs):
        recording = _state.grad_enabled  # True only under create_graph=True
        with no_grad():
            result = backward(ctx, *grad_outputs)
        if not recording:
            return result
        single = not isinstance(result, tuple)
        items = (result,) if single else result
        # the gradient depends on the upstream gradients and on the op's inputs: attach it to
        # both, so a second differentiation reaches the node that raises
        sources = grad_outputs + tuple(t for t in ctx._inputs if isinstance(t, Tensor))
        items = tuple(
            None
            if g is None
            else _OnceDifferentiableBackward.apply(g, *sources, op_name=ctx.name())
            for g in items
        )
        return items[0] if single else items

    return wrapper
