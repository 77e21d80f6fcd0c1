"""The graph's nodes: ``Context``, the node of an applied op (``grad_fn``), and
``AccumulateGrad``, the node through which gradients reach a leaf; with what describes them
(``TensorMeta``) and the kinds of saved values. ``Function.apply`` (``autograd.function``)
creates them; the engine (``autograd.engine``) runs them.
"""

from __future__ import annotations

import functools
import inspect
import traceback
import weakref
from collections import namedtuple

import numpy as np

from backprop.tensor import Tensor, _new, _RemovableHandle, _wrap

_INPUT, _LEAF, _OUTPUT, _CONST, _PACKED = range(5)
"""What a saved value is (``Context._saved``): an input, a leaf, an output, a constant array,
or a value packed by saved-tensor hooks."""

TensorMeta = namedtuple("TensorMeta", "shape dtype")
TensorMeta.__doc__ = "The shape and dtype of a node's input or output (no data)."


class Context:
    """The graph node of one op application, and the ``ctx`` its forward and backward receive.

    Attributes:
        needs_input_grad: one bool per positional input of ``forward``; skip the work for False.
        saved_tensors: what ``save_for_backward`` stored, handed back as Tensors.

    Introspection (public, read-only): ``name()``, ``next_functions``, ``attrs`` (the op's
    keyword arguments: dims, stride, padding, ...), ``input_metadata`` and ``output_metadata``
    (a ``TensorMeta(shape, dtype)`` per input and output), ``register_hook`` and
    ``register_prehook``.
    """

    # What every recorded node has lives in slots (set by apply); the rest are class-level
    # defaults that an instance only overrides when it needs to, in its __dict__, next to the
    # attributes the op's forward sets (which backward frees if they are arrays).
    # _next: per positional input, (node | None, output_nr, shape, dtype), or None (a list or
    # a tuple, never changed once recorded).
    # _out_meta: (shape, dtype) of the output; with several outputs, a tuple of those.
    __slots__ = ("needs_input_grad", "_next", "_fn", "_attrs", "_seq", "_out_meta", "_saved",
                 "__dict__", "__weakref__")
    _consts = None  # {input index: value} for positional inputs that are not Tensors
    _to_save = ()
    _released = False
    _hooked = False  # any of the four below is set: the engine checks this one flag
    _hooks = None  # {output_nr: [hook, ...]} from Tensor.register_hook on a non-leaf output
    _retain = None  # {output_nr: weakref to the output Tensor} from retain_grad()
    _pre_hooks = None  # grad_fn.register_prehook: hook(grad_outputs)
    _post_hooks = None  # grad_fn.register_hook: hook(grad_inputs, grad_outputs)
    _trace = None  # creation stack, recorded only under detect_anomaly()
    _n_out = 1
    _dirty = ()
    _non_diff = ()

    def save_for_backward(self, *arrays) -> None:
        """Keep inputs or outputs of ``forward`` (ndarrays) for ``backward``.

        Inputs and outputs come back from ``saved_tensors`` attached to the graph, so
        ``backward`` stays differentiable and in-place changes to them are detected. Any other
        array comes back as a constant Tensor (it breaks higher-order gradients: mark the op
        ``@once_differentiable`` or recompute it in ``backward``).
        """
        self._to_save = arrays

    def mark_non_differentiable(self, *outputs) -> None:
        """Declare outputs (the ndarrays ``forward`` returns) that never carry gradients."""
        self._non_diff = tuple(id(o) for o in outputs)

    def mark_dirty(self, *arrays) -> None:
        """Declare inputs (ndarrays) that ``forward`` changed in place, as PyTorch's
        ``ctx.mark_dirty``: their version counters are bumped, and ``forward`` must return
        them as outputs (the call then returns the input Tensors themselves)."""
        self._dirty = arrays

    @property
    def saved_tensors(self) -> tuple:
        """The values saved by ``save_for_backward``, as Tensors (non-arrays are returned as is)."""
        try:
            saved = self._saved
        except AttributeError:  # a ctx that was never recorded
            saved = None
        if saved is None:
            if self._released:
                raise RuntimeError(
                    f"{self.name()}: trying to backward through the graph a second time, but the "
                    "values it saved were freed by the first backward(). Pass retain_graph=True to "
                    "the first backward() (or autograd.grad()) to keep them."
                )
            return ()
        # each value checked against the version it was saved at
        values = []
        for entry in saved:
            kind = entry[0]
            if kind == _LEAF:
                _, i, t, vc, ver = entry
                if vc[0] != ver:
                    self._raise_modified(f"input {i}", t.data.shape, vc, ver)
            elif kind == _INPUT:
                _, i, arr, vc, ver, fn, nr, rg = entry
                if vc[0] != ver:
                    self._raise_modified(f"input {i}", arr.shape, vc, ver)
                # _wrap, inlined: this runs for most saved values of every backward
                t = _new(Tensor)
                t.data = arr
                t._requires_grad = rg
                t._grad_fn = fn
                t._output_nr = nr
                t.grad = None
                t._vc = vc
                t._base = None
            elif kind == _OUTPUT:
                _, j, ref, arr, vc, ver = entry
                if vc[0] != ver:
                    self._raise_modified(f"output {j}", arr.shape, vc, ver)
                t = ref()
                if t is None or t._grad_fn is not self:  # the output died: rebuild it here
                    t = _wrap(arr, True, self, j)
                    t._vc = vc
            elif kind == _PACKED:
                t = entry[2](entry[1])
            else:
                t = entry[1]
                if type(t) is np.ndarray:
                    t = _wrap(t, False, None, 0)
            values.append(t)
        return tuple(values)

    def _raise_modified(self, what: str, shape, vc: list, expected: int) -> None:
        where = _format_trace(self._trace)
        by = f" ({vc[1]})" if vc[1] else ""
        raise RuntimeError(
            f"{self.name()}: one of the tensors it saved for the gradient ({what}, shape "
            f"{tuple(shape)}) was modified by an in-place operation{by}: it is at version "
            f"{vc[0]}, but {self.name()} saved it at version {expected}. Use an out-of-place "
            f"op, or .clone() the tensor before changing it in place.{where}"
        )

    # --- introspection ---
    def name(self) -> str:
        """The node's name, e.g. ``'MulBackward'``, as PyTorch's ``grad_fn.name()``."""
        return self._fn.label + "Backward"

    @property
    def next_functions(self) -> tuple:
        """((node or None, output_nr), ...) per input: where each input's gradient goes. A leaf
        that requires grad is reached through its ``AccumulateGrad`` node, as in PyTorch."""
        return tuple((None, 0) if e is None else (e[0], e[1]) for e in self._next)

    @property
    def attrs(self) -> dict:
        """The op's attributes: the keyword arguments it was applied with (``dims``,
        ``stride``, ``padding``, ``negative_slope``, ...), and the values of positional inputs
        that are not Tensors (keyed by their ``forward`` parameter names)."""
        attrs = dict(self._attrs)
        if self._consts:
            names = _positional_names(self._fn)
            for i, v in self._consts.items():
                attrs[names[i] if i < len(names) else f"input{i}"] = v
        return attrs

    @property
    def input_metadata(self) -> tuple:
        """A ``TensorMeta(shape, dtype)`` per positional input (None for non-Tensors)."""
        return tuple(None if e is None else TensorMeta(e[2], e[3]) for e in self._next)

    @property
    def output_metadata(self) -> tuple:
        """A ``TensorMeta(shape, dtype)`` per output."""
        if self._n_out == 1:
            return (TensorMeta(*self._out_meta),)
        return tuple(TensorMeta(s, d) for s, d in self._out_meta)

    @property
    def metadata(self) -> dict:
        """A dict for your own annotations, kept with the node (PyTorch's ``grad_fn.metadata``)."""
        meta = self.__dict__.get("_metadata")
        if meta is None:
            meta = self._metadata = {}
        return meta

    @property
    def hooked(self) -> bool:
        """True if a hook, a prehook or ``retain_grad`` is registered on this node or its
        outputs (``backprop.compile`` must then run the step eagerly)."""
        return self._hooked

    def register_hook(self, hook) -> _RemovableHandle:
        """Call ``hook(grad_inputs, grad_outputs)`` after this node's backward; a non-None
        return (a tuple, one entry per input) replaces the gradients passed on."""
        return _add_hook(self, "_post_hooks", hook)

    def register_prehook(self, hook) -> _RemovableHandle:
        """Call ``hook(grad_outputs)`` before this node's backward runs; a non-None return (a
        tuple, one entry per output) replaces the gradients it receives."""
        return _add_hook(self, "_pre_hooks", hook)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class _UntrackedContext(Context):
    """The ``ctx`` of an op applied with grad mode off (a backward pass, an optimizer, no_grad
    inference): never a graph node. ``needs_input_grad`` (the inputs' ``requires_grad``, as in
    PyTorch) is worked out only when forward asks, which the ops of a backward pass never do."""

    __slots__ = ("_args",)

    @property
    def needs_input_grad(self) -> tuple:
        return tuple([isinstance(a, Tensor) and a._requires_grad for a in self._args])


class AccumulateGrad:
    """The node through which gradients reach a leaf tensor that requires grad.

    Hooks registered on the leaf with ``Tensor.register_hook`` run first and may replace the
    gradient; then it is added to ``leaf.grad``; then the hooks from
    ``register_post_accumulate_grad_hook`` run with the leaf. The leaf is held weakly: the leaf
    owns this node, not the other way round.
    """

    # _hooked: a hook of any kind was registered (the engine's fast path checks this one flag)
    __slots__ = ("_leaf", "_tensor_hooks", "_post_acc_hooks", "_pre_hooks", "_post_hooks",
                 "_hooked", "__weakref__")
    _seq = float("inf")  # run as soon as ready, as PyTorch does
    _n_out = 1
    needs_input_grad = ()
    _next = ()
    _fn = None

    def __init__(self, leaf: Tensor) -> None:
        self._leaf = weakref.ref(leaf)
        self._tensor_hooks = self._post_acc_hooks = None
        self._pre_hooks = self._post_hooks = None
        self._hooked = False

    @property
    def variable(self) -> Tensor | None:
        """The leaf tensor whose ``.grad`` this node fills (None if it was freed)."""
        return self._leaf()

    def name(self) -> str:
        """``'AccumulateGrad'``, as PyTorch's."""
        return "AccumulateGrad"

    @property
    def next_functions(self) -> tuple:
        """Always empty: a leaf is where the graph ends."""
        return ()

    @property
    def attrs(self) -> dict:
        """No attributes (for uniform introspection)."""
        return {}

    @property
    def input_metadata(self) -> tuple:
        """The leaf's shape and dtype."""
        leaf = self._leaf()
        return () if leaf is None else (TensorMeta(leaf.data.shape, leaf.data.dtype),)

    output_metadata = input_metadata

    @property
    def hooked(self) -> bool:
        """True if any hook is registered on the leaf or on this node."""
        return bool(self._tensor_hooks or self._post_acc_hooks or self._pre_hooks
                    or self._post_hooks)

    def register_hook(self, hook) -> _RemovableHandle:
        """Call ``hook(grad_inputs, grad_outputs)`` after the gradient was accumulated."""
        return _add_hook(self, "_post_hooks", hook)

    def register_prehook(self, hook) -> _RemovableHandle:
        """Call ``hook(grad_outputs)`` before accumulating; a non-None return replaces it."""
        return _add_hook(self, "_pre_hooks", hook)

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def accumulator(leaf: Tensor) -> AccumulateGrad:
    """The leaf's ``AccumulateGrad`` node, created on first use and kept for the leaf's life."""
    try:
        return leaf._accum
    except AttributeError:
        node = leaf._accum = AccumulateGrad(leaf)
        return node


@functools.cache
def _positional_names(fn) -> tuple:
    params = list(inspect.signature(fn.forward).parameters.values())[1:]  # skip ctx
    return tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)


def _format_trace(trace) -> str:
    if not trace:
        return (
            " Run under backprop.autograd.detect_anomaly() to see where the op was created."
        )
    return "\nThe op was created at:\n" + "".join(traceback.format_list(trace))


def _add_hook(node, name: str, hook) -> _RemovableHandle:
    """Append ``hook`` to the node's hook list ``name`` (created at the first hook) and flag
    the node as hooked (the one flag the engine checks): Context's and AccumulateGrad's
    ``register_hook``/``register_prehook``."""
    hooks = getattr(node, name)
    if hooks is None:
        hooks = []
        setattr(node, name, hooks)
    node._hooked = True
    hooks.append(hook)
    return _RemovableHandle(hooks, hook)
