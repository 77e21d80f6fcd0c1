"""``backprop.compile``: capture a whole training step once, then replay its kernels.

A training step ``step(x, y)`` (``zero_grad``, forward, loss, ``backward``, ``optimizer.step``)
spends most of its time on small tensors in bookkeeping: Tensors, graph nodes, edges, the
engine's ready queue, per-op checks. ``compile(step)`` runs the step eagerly once per input
signature (shapes, dtypes, grad mode, train/eval modes) to warm up lazily created state, then
runs it a second time under the engine's public hook points,

- ``graph.record_ops()``: every forward op, in-place op and optimizer update, in order, with its
  ``Function`` class, attributes and the identity of its input and output Tensors;
- ``graph.observe_backward()``: every node the engine executes, in order, with its gradients,

and turns that into a flat tape: forward kernels (each op's own ``forward`` on plain arrays),
each executed node's own ``backward`` rule (first order, no graph), the engine's accumulation,
broadcast reduction and ``.grad`` binding, and the optimizer's update (its ``_rule``, with the
hyperparameters read from ``param_groups`` and the optimizer state on every call, so learning
rate schedules, Adam's step count and new betas take effect). Later calls with the same
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
from backprop.autograd import graph as _graph
from backprop.autograd.function import AccumulateGrad
from backprop.autograd.grad_mode import _debug, _state, no_grad
from backprop.ops.shape import sum_to_array
from backprop.tensor import Tensor, _wrap

_tensor_mod = sys.modules["backprop.tensor"]

__all__ = ["CompileWarning", "CompiledFunction", "compile"]

_MAX_SIGNATURES = 16  # distinct input signatures kept per compiled function


class CompileWarning(UserWarning):
    """A compiled step runs eagerly instead (the message names the reason)."""


class _Unsupported(Exception):
    """The captured step cannot become a tape (the message is the reason)."""


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
        >>> bp.manual_seed(0)
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

    def __init__(self, fn: Callable, fullgraph: bool = False) -> None:
        self.fn = fn
        self.fullgraph = fullgraph
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
        except _Unsupported as e:
            entry.reason = str(e)
            name = getattr(self.fn, "__qualname__", repr(self.fn))
            message = (f"backprop.compile: {name} runs eagerly: {e}. Results are correct but "
                       "not faster.")
            if self.fullgraph:
                raise RuntimeError(message + " (fullgraph=True)") from None
            if not self._warned:  # once per compiled function, not once per batch shape
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

_SLOT, _LIVE, _GRAD, _VALUE = range(4)


class _ReplayCtx:
    """The ``ctx`` a replayed op's forward and backward receive: what forward saves and sets,
    handed back to backward as constant Tensors (first order: nothing is recorded)."""

    _to_save = ()
    _dirty = ()

    def __init__(self, needs: tuple, attrs: dict) -> None:
        self.needs_input_grad = needs
        self._attrs = attrs

    def save_for_backward(self, *values) -> None:
        self._to_save = values

    def mark_dirty(self, *arrays) -> None:
        self._dirty = arrays

    def mark_non_differentiable(self, *outputs) -> None:
        pass

    @property
    def saved_tensors(self) -> tuple:
        return tuple([_wrap(v.data if isinstance(v, Tensor) else v, False, None, 0)
                      if isinstance(v, (np.ndarray, Tensor)) else v for v in self._to_save])

    def name(self) -> str:
        return self._label + "Backward"


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


def _attr_value(spec, S):
    kind, v = spec
    if kind == _SLOT:
        return S[v]
    if kind == _VALUE:
        return v
    return kind(_attr_value(x, S) for x in v)


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

    def add_backward(upto: int) -> None:
        nonlocal ev_done
        while ev_done < upto:
            task = events[ev_done][0]
            end = ev_done
            while end < upto and events[end][0] is task:
                end += 1
            steps.append(_backward_step(events[ev_done:end], node_of, cap, task,
                                        leaf_grad_ready))
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
        else:
            dtypes = rec.dtypes[1]
            dynamic = _resolve_attrs(rec.attrs, slot_of_array)
            steps.append(_forward_step(rec.function, specs, dict(rec.attrs), dynamic,
                                       tuple(out_slots), dtypes, ctx_index, needs))
    add_backward(len(events))
    leaf_end = []
    for leaf in cap.leaves.values():
        if leaf.grad is None:
            leaf_end.append(leaf)  # the step set it to None after its update
    result = _pack_result(out, slot_of_tensor, slot_of_array)
    opt_guard = tuple((opt, _groups_sig(opt)) for opt in optimizers.values())
    leaf_guard = tuple((t, t._requires_grad) for t in dict.fromkeys(guards))
    return _Tape(steps, n_slots, n_inputs, n_ctx, result, tuple(leaf_end), opt_guard,
                 leaf_guard)


def _bool_index(rec) -> bool:
    for a in (*rec.inputs, *rec.attrs.values()):
        items = a if isinstance(a, tuple) else (a,)
        for i in items:
            d = i.data if isinstance(i, Tensor) else i
            if isinstance(d, np.ndarray) and d.dtype == bool and rec.function.__name__ in (
                    "GetItem", "IndexPut", "MaskedSelect", "MaskedFill"):
                return True
    return False


def _groups_sig(opt) -> tuple:
    return tuple((id(g["params"]), len(g["params"])) for g in opt.param_groups)


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


def _forward_step(cls, specs, attrs, dynamic, out_slots, dtypes, ctx_index, needs):
    forward = cls.forward
    label = cls.label
    single = len(out_slots) == 1
    out0 = out_slots[0]
    dt0 = dtypes[0]

    def run(S, C):
        arrays = [S[v] if k == _SLOT else v.data if k == _LIVE else
                  v.grad.data if k == _GRAD else v for k, v in specs]
        kw = attrs
        if dynamic:
            kw = dict(attrs)
            for name, spec in dynamic:
                kw[name] = _attr_value(spec, S)
        ctx = _ReplayCtx(needs, kw)
        out = forward(ctx, *arrays, **kw)
        if single:
            if type(out) is tuple:
                out = out[0]
            if type(out) is not np.ndarray or out.dtype != dt0:
                out = np.asarray(out)
                if out.dtype != dt0:
                    out = _cast_saved(ctx, out, out.astype(dt0))
            S[out0] = out
        else:
            for j, o in enumerate(out):
                if type(o) is not np.ndarray or o.dtype != dtypes[j]:
                    o = np.asarray(o)
                    if o.dtype != dtypes[j]:
                        o = _cast_saved(ctx, o, o.astype(dtypes[j]))
                S[out_slots[j]] = o
        if ctx_index is not None:
            ctx._label = label
            C[ctx_index] = ctx

    return run


def _cast_saved(ctx, raw, cast):
    """Function.apply casts a float64 result of float32 inputs to float32, and what forward
    saved of that output comes back cast: do the same."""
    if any(v is raw for v in ctx._to_save):
        ctx._to_save = tuple(cast if v is raw else v for v in ctx._to_save)
    return cast


def _update_step(rec, specs, opt):
    """The optimizer's update, with its state and hyperparameters read now, not at capture."""
    from backprop.optim.optimizer import ParamUpdate

    attrs = rec.attrs
    layout = attrs["layout"]
    first = rec.inputs[0]
    group = next((g for g in opt.param_groups if any(p is first for p in g["params"])), None)
    if group is None:
        raise _Unsupported("an optimizer update of parameters outside its param groups")
    plan = []  # per parameter: (param, grad spec, extra specs)
    i = 0
    for n_state, n_extra in layout:
        p = rec.inputs[i]
        plan.append((p, specs[i + 1], specs[i + 2 + n_state: i + 2 + n_state + n_extra]))
        i += 2 + n_state + n_extra
    rule = attrs["rule"]
    forward = ParamUpdate.forward
    gi = next(i for i, g in enumerate(opt.param_groups) if g is group)
    prepare = opt._prepare

    def run(S, C):
        # read now: load_state_dict replaces the state dict and the group dicts
        group = opt.param_groups[gi]
        state = opt.state
        arrays, new_layout, hypers = [], [], []
        for p, _, extra in plan:
            buffers, hyper = prepare(p, state[p], group)
            # the update reads p.grad whoever bound it (this step's backward, or a step
            # compiled separately)
            arrays += (p.data, p.grad.data, *[b.data for b in buffers],
                       *[S[v2] if k2 == _SLOT else v2.data for k2, v2 in extra])
            new_layout.append((len(buffers), len(extra)))
            hypers.append(hyper)
        forward(_ReplayCtx((), attrs), *arrays, rule=rule, layout=tuple(new_layout),
                hypers=tuple(hypers), maximize=bool(group.get("maximize", False)))

    return run


def _backward_step(events, node_of, cap, task, leaf_grad_ready):
    """One backward pass: each executed node's rule (or its array kernel), then the engine's
    edge logic (broadcast reduction, dtype cast, accumulation) and the leaves' ``.grad``, in
    the captured order. Gradients live in a list of buffers indexed at capture time."""
    from backprop._replay_kernels import KERNELS

    buf_of: dict = {}  # (node or leaf id, output_nr) -> buffer index

    def buf(key) -> int:
        k = buf_of.get(key)
        if k is None:
            k = buf_of[key] = len(buf_of)
        return k

    plan = []
    delivered: set = set()
    for _, node, grad_outputs in events:
        if isinstance(node, AccumulateGrad):
            leaf = node.variable
            had = cap.had_grad.get((id(task), id(leaf)), leaf.grad is not None)
            plan.append((None, buf((id(leaf), 0)), leaf, had, None, None, None))
            leaf_grad_ready.add(id(leaf))
            continue
        if node not in node_of:
            raise _Unsupported(f"backward reaches {node.name()}, a node made outside the step")
        ctx_index, cls, n_out = node_of[node]
        seed = None
        if node not in delivered:  # a root: its gradient is the seed (or gradient= given)
            seed = tuple(None if g is None else np.array(g.data, copy=True)
                         for g in grad_outputs)
        metas = node.input_metadata
        edges = []
        for (nxt, nr), meta in zip(node.next_functions, metas):
            if nxt is None:
                edges.append(None)
                continue
            if isinstance(nxt, AccumulateGrad):
                leaf = nxt.variable
                if leaf is None:
                    edges.append(None)
                    continue
                key = (id(leaf), 0)
            elif nxt in node_of:
                key = (nxt, nr)
            else:
                raise _Unsupported(f"backward reaches {nxt.name()}, a node made outside the step")
            delivered.add(nxt)
            edges.append((buf(key), meta.shape, meta.dtype))
        outs = node.output_metadata
        dtypes = {m.dtype for m in (*metas, *outs) if m is not None}
        kernel = KERNELS.get(cls)
        if kernel is not None and not (len(dtypes) == 1 and dtypes.pop().kind == "f"):
            kernel = None  # mixed dtypes: the rule knows the promotion rules
        zeros = tuple((m.shape, m.dtype) for m in outs) if n_out > 1 else None
        ins = tuple(buf((node, j)) for j in range(n_out))
        plan.append((cls, ctx_index, kernel, seed, ins, zeros, tuple(edges)))

    n_bufs = len(buf_of)

    def run(S, C):
        B = [None] * n_bufs
        handed: set = set()
        with no_grad():
            for cls, a, kernel, seed, ins, zeros, edges in plan:
                if cls is None:  # AccumulateGrad: a = buffer, kernel = leaf, seed = had_grad
                    g = B[a]
                    if g is not None:
                        _accumulate(kernel, g, seed, handed)
                    continue
                if seed is not None:
                    grads = list(seed)
                    for g in grads:
                        if g is not None:
                            handed.add(id(g))
                else:
                    grads = [B[k] for k in ins]
                if zeros is not None:
                    for j, g in enumerate(grads):
                        if g is None:
                            grads[j] = np.zeros(*zeros[j])
                elif grads[0] is None:
                    continue
                ctx = C[a]
                C[a] = None
                result = None
                if kernel is not None:
                    result = kernel(ctx, ctx.needs_input_grad, *grads)
                if result is None:
                    result = cls.backward(ctx, *[None if g is None else _wrap(g, False, None, 0)
                                                 for g in grads])
                    if type(result) is not tuple:
                        result = (result,)
                    result = tuple(None if g is None else g.data if isinstance(g, Tensor)
                                   else np.asarray(g) for g in result)
                for e, g in zip(edges, result):
                    if e is None or g is None:
                        continue
                    k, shape, dtype = e
                    if g.shape != shape:
                        g = sum_to_array(g, shape)
                    if g.dtype is not dtype and dtype.kind in "fc":
                        g = g.astype(dtype)
                    old = B[k]
                    B[k] = g if old is None else old + g

    return run


def _accumulate(leaf: Tensor, arr: np.ndarray, had_grad: bool, handed: set) -> None:
    """The engine's ``.grad`` rule (first order): a fresh gradient is owned by ``.grad``; an
    existing one is added to in place. ``had_grad`` says which case the eager step was in."""
    if id(arr) in handed or arr.base is not None or not arr.flags.writeable:
        arr = arr.copy()
    handed.add(id(arr))
    if not had_grad or leaf.grad is None:
        leaf.grad = _wrap(arr, False, None, 0)
    else:
        np.add(leaf.grad.data, arr, out=leaf.grad.data)
        leaf.grad._bump("AccumulateGrad")


class _Tape:
    """The replayable step."""

    def __init__(self, steps, n_slots, n_inputs, n_ctx, result, leaf_end, opt_guard,
                 leaf_guard) -> None:
        self.steps = steps
        self.n_slots = n_slots
        self.n_inputs = n_inputs
        self.n_ctx = n_ctx
        self.result = result
        self.leaf_end = leaf_end
        self.opt_guard = opt_guard
        self.leaf_guard = leaf_guard

    def valid(self) -> bool:
        """Still the captured step: same parameter groups, same requires_grad flags."""
        for opt, sig in self.opt_guard:
            if _groups_sig(opt) != sig:
                return False
        for t, rg in self.leaf_guard:
            if t._requires_grad is not rg:
                return False
        return True

    def run(self, args, kwargs):
        S = [None] * self.n_slots
        for i, a in enumerate((*args, *kwargs.values())):
            S[i] = a.data if isinstance(a, Tensor) else a
        C = [None] * self.n_ctx
        for step in self.steps:
            step(S, C)
        for leaf in self.leaf_end:
            leaf.grad = None
        return _unpack_result(self.result, S)


def _unpack_result(spec, S):
    kind, v = spec
    if kind == _SLOT:
        return _wrap(S[v], False, None, 0)
    if kind == _VALUE:
        return v
    return kind(_unpack_result(s, S) for s in v)
