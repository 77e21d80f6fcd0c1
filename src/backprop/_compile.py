"""``backprop.compile``: capture a whole training step once, then replay its kernels.

A training step ``step(x, y)`` (``zero_grad``, forward, loss, ``backward``, ``optimizer.step``)
spends most of its time on small tensors in bookkeeping: Tensors, graph nodes, edges, the
engine's ready queue, per-op checks. ``compile(step)`` runs the step eagerly once per input
signature (shapes, dtypes, grad mode, train/eval modes) to warm up lazily created state, then
runs it a second time under the engine's public hook points,

- ``graph.record_ops()``: every forward op, in-place op and optimizer update, in order, with its
  ``Function`` class, attributes and the identity of its input and output Tensors;
- ``graph.observe_backward()``: every node the engine executes, in order, with its gradients,

and turns that into a flat tape: forward kernels (each op's own ``forward`` on plain arrays;
an Addmm whose output only a ReLU reads runs fused with it, ``_blas.linear``'s blocks adding
the bias and applying ReLU on the thread that computed each), each executed node's own
``backward`` rule (first order, no graph), the engine's accumulation, broadcast reduction and
``.grad`` binding, and the optimizer's update (its ``_rule``, with the hyperparameters read
from ``param_groups`` and the optimizer state on every call, so learning rate schedules, Adam's
step count and new betas take effect). Later calls with the same
signature replay the tape: no graph object is created and nothing is re-derived, and the
results are the very same arrays eager would compute (same kernels, same order: bit-identical).

What the tape cannot express falls back to eager, with one ``CompileWarning`` naming the reason:
a value read back into Python during the step (``.item()``, ``.numpy()``, ``.tolist()``,
``bool(t)``, ``float(t)``), hooks on the graph's nodes or tensors, an active
``observe_backward()`` / ``record_ops()`` / ``detect_anomaly()`` / ``saved_tensors_hooks``, a
backward through a graph built before the step, ``create_graph=True``. Not detected (as with
``torch.compile``): other Python side effects, ``.data`` reads and writes, and tensors the step
builds from Python or NumPy data (``bp.tensor(list)``): they are constants of the tape. Pass
data that changes between calls as arguments.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

import numpy as np

import backprop.tensor  # noqa: F401  (the module: ``backprop.tensor`` the attribute is the constructor)
from backprop._compile_steps import (
    _GRAD,
    _LIVE,
    _SLOT,
    _VALUE,
    ForwardMeta,
    _backward_step,
    _forward_step,
    _groups_sig,
    _Tape,
    _Unsupported,
    _update_step,
    fuse,
    fuse_linear_relu,
)
from backprop._malloc import retain_freed_memory
from backprop.autograd import graph as _graph
from backprop.autograd.function import AccumulateGrad
from backprop.autograd.grad_mode import _debug, _state
from backprop.tensor import Tensor

_tensor_mod = sys.modules["backprop.tensor"]

__all__ = ["CompileWarning", "CompiledFunction", "compile"]

_MAX_SIGNATURES = 16  # distinct input signatures kept per compiled function


class CompileWarning(UserWarning):
    """A compiled step runs eagerly instead (the message names the reason)."""


def compile(model: Callable | None = None, *, fullgraph: bool = False, dynamic=None,
            backend=None, mode=None, options=None, disable: bool = False):
    """Compile a training step (PyTorch's ``torch.compile`` signature; our own mechanism).

    Args:
        model: a function (typically ``step(x, y)`` doing ``zero_grad``, forward, loss,
            ``backward`` and ``optimizer.step``, returning the loss), or a ``Module``. A
            module is returned as is: its forward alone runs eagerly (the saving is in a
            whole step, where backward and the update are captured too).
        fullgraph: raise ``RuntimeError`` instead of warning and running eagerly when the
            step cannot be captured.
        dynamic, backend, mode, options: accepted for PyTorch compatibility and ignored (every
            new input signature is captured anew; there is one backend).
        disable: return ``model`` unchanged.

    Returns:
        A ``CompiledFunction`` (or the module, or a decorator when ``model`` is None).

    Each call of a compiled step returns a new 0-d loss Tensor (without ``grad_fn``) and leaves
    the parameters, their ``.grad`` and the optimizer state exactly as the eager step would.

    Example:
        >>> import backprop as bp
        >>> _ = bp.manual_seed(0)
        >>> model = bp.nn.Linear(3, 1)
        >>> opt = bp.optim.SGD(model.parameters(), lr=0.1)
        >>> @bp.compile
        ... def step(x, y):
        ...     opt.zero_grad()
        ...     loss = ((model(x) - y) ** 2).mean()
        ...     loss.backward()
        ...     opt.step()
        ...     return loss
        >>> x, y = bp.randn(8, 3), bp.randn(8, 1)
        >>> losses = [step(x, y) for _ in range(4)]  # eager, captured, then replayed
        >>> bool(losses[3] < losses[0])
        True
    """
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend,
                                  mode=mode, options=options, disable=disable)
    if disable:
        return model
    from backprop.nn.module import Module

    if isinstance(model, Module):
        return model
    if not callable(model):
        raise TypeError(f"compile(): expected a function or a Module, got "
                        f"{type(model).__name__}")
    return CompiledFunction(model, fullgraph=fullgraph)


class CompiledFunction:
    """A step function with its captured tapes, one per input signature (see ``compile``)."""

    def __init__(self, fn: Callable, fullgraph: bool = False, quiet: bool = False) -> None:
        self.fn = fn
        self.fullgraph = fullgraph
        self.quiet = quiet  # fall back to eager without a CompileWarning (Trainer's "auto")
        self._entries: dict = {}
        self._modules: tuple | None = None
        self._warned = False
        self.__wrapped__ = fn
        self.__doc__ = getattr(fn, "__doc__", None)

    # --- the signature: what forces a recapture ---
    def _modes(self) -> tuple:
        if self._modules is None:
            self._modules = _find_modules(self.fn)
        return tuple(m.training for m in self._modules)

    def _key(self, args, kwargs) -> tuple:
        parts = [_state.grad_enabled, self._modes()]
        for a in (*args, *kwargs.items()):
            if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], str):  # a keyword
                parts.append(a[0])
                a = a[1]
            if isinstance(a, Tensor):
                parts.append((a.data.shape, a.data.dtype.str, a._requires_grad))
            elif isinstance(a, np.ndarray):
                parts.append(("ndarray", a.shape, a.dtype.str))
            else:
                try:
                    hash(a)
                    parts.append((type(a).__name__, a))
                except TypeError:
                    parts.append(("id", id(a)))
        return tuple(parts)

    def reset(self) -> None:
        """Forget every captured tape (the next calls capture again)."""
        self._entries.clear()
        self._modules = None

    def __call__(self, *args, **kwargs):
        if (_debug.observers or _debug.recorders or _debug.anomaly or _debug.saved_hooks
                or _tensor_mod._readback_watchers):
            return self.fn(*args, **kwargs)  # someone watches every op: they must all run
        key = self._key(args, kwargs)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= _MAX_SIGNATURES:
                self._entries.pop(next(iter(self._entries)))
            entry = self._entries[key] = _Entry()
        tape = entry.tape
        if tape is not None:
            if tape.valid():
                return tape.run(args, kwargs)
            entry.tape = None
            entry.calls = 0
        if entry.reason is not None:
            return self.fn(*args, **kwargs)
        entry.calls += 1
        if entry.calls == 1:  # warm-up: lazily created state (optimizer buffers) appears now
            return self.fn(*args, **kwargs)
        return self._capture(entry, args, kwargs)

    def _capture(self, entry, args, kwargs):
        cap = _Capture()
        with cap:
            out = self.fn(*args, **kwargs)
        try:
            if cap.reason:
                raise _Unsupported(cap.reason)
            entry.tape = _build(cap, args, kwargs, out)
            # a step compiled for speed: keep freed memory for the replays' fresh arrays, as
            # Trainer.fit does (see backprop._malloc)
            retain_freed_memory()
        except _Unsupported as e:
            entry.reason = str(e)
            name = getattr(self.fn, "__qualname__", repr(self.fn))
            message = (f"backprop.compile: {name} runs eagerly: {e}. Results are correct but "
                       "not faster.")
            if self.fullgraph:
                raise RuntimeError(message + " (fullgraph=True)") from None
            if not self._warned and not self.quiet:  # once per function, not per batch shape
                self._warned = True
                warnings.warn(message, CompileWarning, stacklevel=3)
        return out


class _Entry:
    __slots__ = ("tape", "calls", "reason")

    def __init__(self) -> None:
        self.tape = None
        self.calls = 0
        self.reason = None


def _find_modules(fn) -> tuple:
    """Modules a step can reach directly (closure, bound ``self`` and its attributes, globals it
    names, defaults), with their submodules: their train/eval modes are part of the signature."""
    from backprop.nn.module import Module

    found: dict = {}
    seen: set = set()

    def visit(obj, depth: int) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Module):
            for m in obj.modules():
                found.setdefault(id(m), m)
        elif depth > 0 and hasattr(obj, "__dict__") and not isinstance(obj, type):
            for v in list(vars(obj).values()):
                if isinstance(v, Module) or hasattr(v, "__dict__"):
                    visit(v, depth - 1)
        elif depth > 0 and isinstance(obj, (list, tuple, dict)):
            for v in (obj.values() if isinstance(obj, dict) else obj):
                visit(v, depth - 1)

    target = getattr(fn, "__func__", fn)
    if hasattr(fn, "__self__"):
        visit(fn.__self__, 2)
    code = getattr(target, "__code__", None)
    for cell in getattr(target, "__closure__", None) or ():
        try:
            visit(cell.cell_contents, 2)
        except ValueError:  # an empty cell
            pass
    if code is not None:
        glob = getattr(target, "__globals__", {})
        for name in code.co_names:
            if name in glob:
                visit(glob[name], 1)
    for d in getattr(target, "__defaults__", None) or ():
        visit(d, 1)
    if code is None and hasattr(fn, "__dict__"):
        visit(fn, 2)  # a callable object
    return tuple(found.values())


# --- capture ---------------------------------------------------------------------------------


class _Recording(_graph._Recording):
    """The op recorder's list, plus each op's output nodes as they were when it ran (a later
    in-place op may rebase an output) and the number of backward events seen before it."""

    def __init__(self, capture) -> None:
        super().__init__()
        self.capture = capture
        self.nodes: list = []
        self.events_before: list = []

    def _add(self, cls, args, kwargs, outputs, phase) -> None:
        if phase == "backward":
            return  # backward rules are replayed whole, with the engine's logic around them
        super()._add(cls, args, kwargs, outputs, phase)
        self.nodes.append(tuple(o._grad_fn for o in outputs))
        self.events_before.append(len(self.capture.events))


class _Capture:
    """Record one eager run of the step: ops, backward events, leaf gradients, read-backs."""

    def __init__(self) -> None:
        self.events: list = []  # (task, node, grad_outputs, had_grad: {leaf id: bool})
        self.reason: str | None = None
        self.grad_alias: dict = {}  # id(Tensor bound to leaf.grad) -> leaf
        self.keep: list = []  # keeps aliased Tensors alive, so their ids stay unique
        self.had_grad: dict = {}  # (task id, id(leaf)) -> leaf.grad was set before accumulating
        self.leaves: dict = {}

    def __enter__(self) -> _Capture:
        self.ops = _Recording(self)
        if _debug.recorders is None:
            _debug.recorders = []
        _debug.recorders.append(self.ops)
        self.observer = _graph.observe_backward(self._event)
        self.observer.__enter__()
        _tensor_mod._readback_watchers = [self._readback]
        return self

    def __exit__(self, *exc) -> None:
        _tensor_mod._readback_watchers = None
        self.observer.__exit__(*exc)
        _debug.recorders.remove(self.ops)
        if not _debug.recorders:
            _debug.recorders = None

    def _readback(self, what: str) -> None:
        if self.reason is None:
            self.reason = f"a value is read back into Python during the step ({what})"

    def _event(self, event) -> None:
        task = _graph.current_graph_task()
        node = event.node
        if task.create_graph and self.reason is None:
            self.reason = "backward(create_graph=True) records a graph of the gradients"
        if node.hooked and self.reason is None:
            self.reason = f"a hook is registered on {event.name} (or its tensors)"
        if isinstance(node, AccumulateGrad):
            leaf = node.variable
            if leaf is not None and leaf.grad is not None:
                self.grad_alias[id(leaf.grad)] = leaf
                self.keep.append(leaf.grad)
                self.leaves[id(leaf)] = leaf
        else:
            for nxt, _ in node.next_functions:
                if isinstance(nxt, AccumulateGrad):
                    leaf = nxt.variable
                    if leaf is not None:
                        self.had_grad.setdefault((id(task), id(leaf)), leaf.grad is not None)
        self.events.append((task, node, event.grad_outputs))


# --- the tape --------------------------------------------------------------------------------

def _resolve(t, slot_of_tensor: dict, slot_of_array: dict, grad_alias: dict,
             leaf_grad_ready: set, guards: list):
    """How a replay finds an input: an earlier op's output, a leaf's ``.grad`` (bound by the
    replayed backward), or a Tensor that lives across steps (parameters, buffers, state)."""
    if not isinstance(t, Tensor):
        if isinstance(t, np.generic) or (type(t) is np.ndarray and t.ndim == 0):
            t = t.item()  # as Function.apply: NumPy scalars are weak scalars
        elif isinstance(t, np.ndarray):
            return _resolve_array(t, slot_of_array)
        return (_VALUE, t)
    k = slot_of_tensor.get(id(t))
    if k is not None:
        return (_SLOT, k)
    leaf = grad_alias.get(id(t))
    if leaf is not None and id(leaf) in leaf_grad_ready:
        return (_GRAD, leaf)
    k = slot_of_array.get(id(t.data))
    if k is not None:
        return (_SLOT, k)
    if t._base is not None:
        raise _Unsupported("the step reads a view of a tensor made outside it")
    if t._grad_fn is not None:
        raise _Unsupported("the step uses a tensor computed (with a graph) outside it")
    if t._requires_grad:
        guards.append(t)
    return (_LIVE, t)


def _resolve_array(arr: np.ndarray, slot_of_array: dict):
    """An array passed to an op as an attribute or a constant (``target=`` of NLLLoss, an
    index): it must be the data of an argument or of an earlier op's output, found by
    identity; an array computed outside ops would be a stale constant of the tape."""
    k = slot_of_array.get(id(arr))
    if k is None:
        raise _Unsupported(f"an array of shape {arr.shape} computed outside the ops is passed "
                           "to an op")
    return (_SLOT, k)


def _resolve_attrs(attrs: dict, slot_of_array: dict) -> tuple:
    """The attributes whose value holds arrays: (name, spec) pairs, rebuilt on each replay."""
    dynamic = []
    for name, v in attrs.items():
        spec = _attr_spec(v, slot_of_array)
        if spec is not None:
            dynamic.append((name, spec))
    return tuple(dynamic)


def _attr_spec(v, slot_of_array: dict):
    if isinstance(v, Tensor):
        raise _Unsupported("a Tensor passed to an op as a keyword")
    if isinstance(v, np.ndarray) and v.ndim > 0:
        return _resolve_array(v, slot_of_array)
    if isinstance(v, (tuple, list)):
        subs = [_attr_spec(x, slot_of_array) for x in v]
        if any(sub is not None for sub in subs):
            return (type(v), tuple((_VALUE, x) if sub is None else sub
                                   for x, sub in zip(v, subs)))
    return None


def _build(cap: _Capture, args, kwargs, out) -> _Tape:
    """Turn a capture into a tape (raises _Unsupported)."""
    from backprop.optim.optimizer import ParamUpdate

    flat_args = list(args) + list(kwargs.values())
    for a in flat_args:
        if isinstance(a, np.ndarray):
            # bp.tensor(arr) inside the step copies it: the copy would be a stale constant
            raise _Unsupported("an argument is a NumPy array: pass Tensors "
                               "(backprop.from_numpy(arr)) so each call's data is used")
    slot_of_tensor: dict = {}
    slot_of_array: dict = {}
    n_slots = 0
    for a in flat_args:
        if isinstance(a, Tensor):
            slot_of_tensor[id(a)] = n_slots
            slot_of_array.setdefault(id(a.data), n_slots)
        elif isinstance(a, np.ndarray):
            slot_of_array[id(a)] = n_slots
        n_slots += 1
    n_inputs = n_slots
    node_of: dict = {}  # node -> (ctx index, n_out)
    steps: list = []
    guards: list = []
    optimizers: dict = {}
    leaf_grad_ready: set = set()
    events = cap.events
    recs = cap.ops
    n_ctx = 0
    ev_done = 0
    meta: list = []  # per step: what fuse_linear_relu needs of a forward step, else None
    reads: dict = {}  # slot -> how many input, attribute and result specs read it

    def add_backward(upto: int) -> None:
        nonlocal ev_done
        while ev_done < upto:
            task = events[ev_done][0]
            end = ev_done
            while end < upto and events[end][0] is task:
                end += 1
            steps.append(_backward_step(events[ev_done:end], node_of, cap, task,
                                        leaf_grad_ready))
            meta.append(None)
            ev_done = end

    for r, rec in enumerate(recs):
        add_backward(recs.events_before[r])
        specs = tuple(_resolve(a, slot_of_tensor, slot_of_array, cap.grad_alias,
                               leaf_grad_ready, guards) for a in rec.inputs)
        if _bool_index(rec):
            raise _Unsupported(f"{rec.op} selects by a boolean mask (a data-dependent shape)")
        out_slots = []
        for o in rec.outputs:
            slot_of_tensor[id(o)] = n_slots
            slot_of_array[id(o.data)] = n_slots
            out_slots.append(n_slots)
            n_slots += 1
        ctx_index = None
        for node in recs.nodes[r]:
            if node is not None:
                if ctx_index is None:
                    ctx_index = n_ctx
                    n_ctx += 1
                node_of[node] = (ctx_index, rec.function, len(rec.outputs))
        needs = tuple(isinstance(a, Tensor) and a._requires_grad for a in rec.inputs) \
            if ctx_index is not None else (False,) * len(rec.inputs)
        if rec.function is ParamUpdate:
            opt = rec.attrs.get("optimizer")
            if opt is None:
                raise _Unsupported("an optimizer update without its optimizer")
            optimizers[id(opt)] = opt
            steps.append(_update_step(rec, specs, opt))
            meta.append(None)
        else:
            dtypes = rec.dtypes[1]
            dynamic = _resolve_attrs(rec.attrs, slot_of_array)
            steps.append(_forward_step(rec.function, specs, dict(rec.attrs), dynamic,
                                       tuple(out_slots), dtypes, ctx_index, needs))
            meta.append(ForwardMeta(rec.function, specs, tuple(out_slots), dtypes, ctx_index,
                                    needs, rec.attrs, dynamic))
            _count_reads([spec for _, spec in dynamic], reads)
        _count_reads(specs, reads)
    add_backward(len(events))
    leaf_end = []
    for leaf in cap.leaves.values():
        if leaf.grad is None:
            leaf_end.append(leaf)  # the step set it to None after its update
    result = _pack_result(out, slot_of_tensor, slot_of_array)
    _count_reads((result,), reads)
    opt_guard = tuple((opt, _groups_sig(opt)) for opt in optimizers.values())
    leaf_guard = tuple((t, t._requires_grad) for t in dict.fromkeys(guards))
    steps = fuse_linear_relu(steps, meta, reads)
    return _Tape(fuse(steps), n_slots, n_inputs, n_ctx, result, tuple(leaf_end), opt_guard,
                 leaf_guard)


def _count_reads(specs, reads: dict) -> None:
    """Add one to ``reads[slot]`` for every slot the specs read (nested ones included)."""
    for spec in specs:
        if not isinstance(spec, tuple) or len(spec) != 2:
            continue
        kind, v = spec
        if kind == _SLOT:
            reads[v] = reads.get(v, 0) + 1
        elif isinstance(kind, type):  # a tuple or list of specs
            _count_reads(v, reads)


def _bool_index(rec) -> bool:
    for a in (*rec.inputs, *rec.attrs.values()):
        items = a if isinstance(a, tuple) else (a,)
        for i in items:
            d = i.data if isinstance(i, Tensor) else i
            if isinstance(d, np.ndarray) and d.dtype == bool and rec.function.__name__ in (
                    "GetItem", "IndexPut", "MaskedSelect", "MaskedFill"):
                return True
    return False


def _pack_result(out, slot_of_tensor, slot_of_array):
    if isinstance(out, Tensor):
        k = slot_of_tensor.get(id(out), slot_of_array.get(id(out.data)))
        if k is None:
            raise _Unsupported("the step returns a tensor it did not compute")
        return (_SLOT, k)
    if isinstance(out, (tuple, list)):
        return (type(out), tuple(_pack_result(o, slot_of_tensor, slot_of_array) for o in out))
    if out is None or isinstance(out, (bool, int, float, str)):
        return (_VALUE, out)
    raise _Unsupported(f"the step returns a {type(out).__name__} (return Tensors)")
