"""``backprop.autograd.graph``: the public hook points of the graph and the engine.

Everything that watches or changes a backward pass from outside the engine goes through here
(the chain-rule trace, gradient monitoring, data-parallel training, ONNX export,
``backprop.compile``); none of them reads private fields. PyTorch's names where PyTorch has the
concept:

- On a node (``tensor.grad_fn``, or an ``AccumulateGrad`` from ``next_functions``):
  ``name()``, ``next_functions``, ``attrs``, ``input_metadata``, ``output_metadata``,
  ``metadata``, ``register_hook(fn(grad_inputs, grad_outputs))`` and
  ``register_prehook(fn(grad_outputs))``.
- On a tensor: ``register_hook(fn(grad))``, ``register_post_accumulate_grad_hook(fn(tensor))``,
  ``retain_grad()``.
- Here: ``register_multi_grad_hook``, ``queue_callback``, ``current_graph_task``,
  ``saved_tensors_hooks``, ``observe_backward`` and ``record_ops``.

Example:
    >>> import backprop as bp
    >>> from backprop.autograd import graph
    >>> x = bp.tensor([1.0, 2.0], requires_grad=True)
    >>> with graph.record_ops() as ops:
    ...     y = (x * 3).sum()
    >>> [r.op for r in ops]
    ['Mul', 'Sum']
    >>> with graph.observe_backward() as events:
    ...     y.backward()
    >>> [e.name for e in events]
    ['SumBackward', 'MulBackward', 'AccumulateGrad']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from backprop.autograd import engine as _engine
from backprop.autograd.function import AccumulateGrad, Context, TensorMeta
from backprop.autograd.grad_mode import _debug
from backprop.tensor import Tensor

Node = Context
"""The type of ``tensor.grad_fn`` (PyTorch's ``torch.autograd.graph.Node``)."""

__all__ = [
    "AccumulateGrad", "BackwardEvent", "Node", "OpRecord", "TensorMeta", "current_graph_task",
    "observe_backward", "queue_callback", "record_ops", "register_multi_grad_hook",
    "saved_tensors_hooks",
]


# --- callbacks and multi-tensor hooks --------------------------------------------------------


def current_graph_task():
    """The backward pass running now (a ``GraphTask``), or None outside backward."""
    return _engine._tasks[-1] if _engine._tasks else None


def queue_callback(callback: Callable[[], None]) -> None:
    """Run ``callback()`` once when the current backward pass has executed its last node
    (PyTorch's ``Variable._execution_engine.queue_callback``). Call it from a hook.

    Data-parallel training waits there for the all-reduces its hooks started.
    """
    task = current_graph_task()
    if task is None:
        raise RuntimeError("queue_callback(): can only be called while a backward pass runs "
                           "(from a hook)")
    task.callbacks.append(callback)


class _MultiHandle:
    def __init__(self, handles) -> None:
        self._handles = handles

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def register_multi_grad_hook(tensors: Sequence[Tensor], fn: Callable, *, mode: str = "all"):
    """Call ``fn`` once per backward pass when the gradients of several tensors are known.

    ``mode="all"``: ``fn(grads)`` (one entry per tensor, None for a tensor whose gradient is not
    computed in this pass) after every tensor that this pass reaches has its gradient.
    ``mode="any"``: ``fn(grad)`` with the first of them to be computed. Returns a handle whose
    ``remove()`` unregisters the hook.
    """
    tensors = tuple(tensors)
    if mode not in ("all", "any"):
        raise ValueError(f"register_multi_grad_hook: mode must be 'all' or 'any', got {mode!r}")
    key = object()

    def make_hook(i: int):
        def hook(grad):
            task = current_graph_task()
            if task is None:
                return None
            state = task.state.get(key)
            if state is None:
                state = task.state[key] = {"grads": [None] * len(tensors), "fired": False}
                if mode == "all":
                    state["expected"] = {
                        k for k, t in enumerate(tensors) if task.will_run(_engine._node_of(t))
                    }
                    queue_callback(lambda: _fire_all(state))
            if state["fired"]:
                return None
            state["grads"][i] = grad
            if mode == "any":
                state["fired"] = True
                fn(grad)
            else:
                state["expected"].discard(i)
                if not state["expected"]:
                    _fire_all(state)
            return None

        return hook

    def _fire_all(state) -> None:
        if not state["fired"]:
            state["fired"] = True
            fn(tuple(state["grads"]))

    handles = [t.register_hook(make_hook(i)) for i, t in enumerate(tensors)]
    return _MultiHandle(handles)


# --- saved tensors hooks -------------------------------------------------------------------


class saved_tensors_hooks:
    """Context manager: every value an op saves for backward goes through ``pack_hook(tensor)``
    when saved, and comes back through ``unpack_hook(packed)`` when backward uses it (PyTorch's
    ``torch.autograd.graph.saved_tensors_hooks``: offload to disk, compress, or count memory).

    The version check is the hooks' responsibility: a packed value is handed to ``unpack_hook``
    as it was packed.
    """

    def __init__(self, pack_hook: Callable, unpack_hook: Callable) -> None:
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook

    def __enter__(self) -> saved_tensors_hooks:
        if _debug.saved_hooks is None:
            _debug.saved_hooks = []
        _debug.saved_hooks.append((self.pack_hook, self.unpack_hook))
        return self

    def __exit__(self, *exc) -> None:
        _debug.saved_hooks.pop()
        if not _debug.saved_hooks:
            _debug.saved_hooks = None


# --- observing a backward pass -----------------------------------------------------------


class BackwardEvent(NamedTuple):
    """One node executed by the engine: its gradients in (with respect to its outputs) and out
    (with respect to its inputs, None where no gradient is passed on)."""

    node: object
    name: str
    grad_outputs: tuple
    grad_inputs: tuple


class observe_backward:
    """Context manager yielding a list that receives a ``BackwardEvent`` for every node the
    engine executes, in execution order, in every backward pass run inside it.

    ``AccumulateGrad`` events have the gradient added to the leaf as their only grad_output.
    Pass ``callback`` to be called with each event instead of (as well as) collecting them.
    """

    def __init__(self, callback: Callable[[BackwardEvent], None] | None = None) -> None:
        self.events: list[BackwardEvent] = []
        self.callback = callback

    def _observe(self, node, grad_outputs, grad_inputs) -> None:
        event = BackwardEvent(node, node.name(), tuple(grad_outputs), tuple(grad_inputs))
        self.events.append(event)
        if self.callback is not None:
            self.callback(event)

    def __enter__(self) -> list[BackwardEvent]:
        if _debug.observers is None:
            _debug.observers = []
        _debug.observers.append(self._observe)
        return self.events

    def __exit__(self, *exc) -> None:
        _debug.observers.remove(self._observe)
        if not _debug.observers:
            _debug.observers = None


# --- the op recorder -----------------------------------------------------------------------


class OpRecord(NamedTuple):
    """One op applied while ``record_ops()`` was active.

    Fields:
        op: the op's name (``'Conv'``, ``'Relu'``, ``'add_'``, ...).
        attrs: its keyword attributes (dims, stride, padding, ...), as passed.
        inputs: its positional inputs as passed (Tensors and plain values).
        outputs: the output Tensors (an in-place op returns the Tensor it changed).
        shapes: (input shapes, output shapes); None for a non-Tensor input.
        dtypes: (input dtypes, output dtypes); None for a non-Tensor input.
        function: the ``Function`` class (to replay its ``forward``).
        phase: ``'forward'`` for ops run by user code (forward pass, optimizer updates) and
            ``'backward'`` for the kernels the engine runs during backward.
        inplace: True for ops that change their first input in place.
    """

    op: str
    attrs: dict
    inputs: tuple
    outputs: tuple
    shapes: tuple
    dtypes: tuple
    function: type
    phase: str
    inplace: bool


class _Recording(list):
    """The list ``record_ops()`` yields."""

    def _add(self, cls, args, kwargs, outputs, phase) -> None:
        in_shapes = tuple(a.data.shape if isinstance(a, Tensor) else None for a in args)
        in_dtypes = tuple(a.data.dtype if isinstance(a, Tensor) else None for a in args)
        self.append(OpRecord(
            cls.label, dict(kwargs), tuple(args), tuple(outputs),
            (in_shapes, tuple(o.data.shape for o in outputs)),
            (in_dtypes, tuple(o.data.dtype for o in outputs)),
            cls, phase, bool(getattr(cls, "inplace", False)),
        ))


class record_ops:
    """Context manager yielding the ordered list of every op applied inside it, as
    ``OpRecord``s, whether or not anything requires grad: forward ops (comparisons, argmax and
    ``one_hot`` included), the kernels a backward pass runs, and in-place updates (optimizer
    steps, gradient clipping, ``zero_grad``).

    Every op goes through ``Function.apply``, the same dispatch point autograd uses, so nothing
    an op does escapes the record. Writes straight into ``.data`` are not ops and are not
    recorded.
    """

    def __enter__(self) -> list[OpRecord]:
        self.ops = _Recording()
        if _debug.recorders is None:
            _debug.recorders = []
        _debug.recorders.append(self.ops)
        return self.ops

    def __exit__(self, *exc) -> None:
        _debug.recorders.remove(self.ops)
        if not _debug.recorders:
            _debug.recorders = None
