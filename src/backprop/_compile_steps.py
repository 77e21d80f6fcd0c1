"""The steps of a tape replayed by ``backprop.compile`` (see ``backprop._compile``): forward
kernels, optimizer updates and backward passes on plain arrays, with no graph.

Slots hold each captured op's outputs by index; an input is found as an earlier op's output
(``_SLOT``), a Tensor that lives across steps read now (``_LIVE``: parameters, buffers,
optimizer state), a leaf's ``.grad`` as the replayed backward bound it (``_GRAD``) or a plain
value (``_VALUE``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from backprop.autograd.function import AccumulateGrad
from backprop.autograd.grad_mode import no_grad
from backprop.ops.activation import Relu
from backprop.ops.linalg import Addmm, linear_array
from backprop.ops.shape import sum_to_array
from backprop.tensor import Tensor, _wrap


class _Unsupported(Exception):
    """The captured step cannot become a tape (the message is the reason)."""

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


def _attr_value(spec, S):
    kind, v = spec
    if kind == _SLOT:
        return S[v]
    if kind == _VALUE:
        return v
    return kind(_attr_value(x, S) for x in v)


def _groups_sig(opt) -> tuple:
    return tuple((id(g["params"]), len(g["params"])) for g in opt.param_groups)


def _input_exprs(specs, env: dict) -> list:
    """The source expression of each input of a generated step, by spec: a slot read, or a
    name bound in ``env`` (a live Tensor's ``.data``, a leaf's ``.grad.data``, a constant)."""
    args = []
    for j, (kind, v) in enumerate(specs):
        if kind == _SLOT:
            args.append(f"S[{v}]")
        else:
            env[f"in{j}"] = v
            args.append(f"in{j}.data" if kind == _LIVE else f"in{j}.grad.data"
                        if kind == _GRAD else f"in{j}")
    return args


def _forward_step(cls, specs, attrs, dynamic, out_slots, dtypes, ctx_index, needs):
    """One captured op's forward kernel on this call's arrays, as source lines (``_fuse``
    joins a run of them into one function): its inputs read by spec, a fresh ctx for what it
    saves, its outputs checked for the dtype eager gave and stored in their slots."""
    env = {"fwd": cls.forward, "needs": needs, "attrs": attrs, "label": cls.label}
    args = _input_exprs(specs, env)
    lines = []
    kw = "attrs"
    if dynamic:
        lines.append("kw = dict(attrs)")
        for n, (name, spec) in enumerate(dynamic):
            env[f"dyn{n}"], env[f"name{n}"] = spec, name
            lines.append(f"kw[name{n}] = _attr_value(dyn{n}, S)")
        kw = "kw"
    lines.append(f"ctx = _ReplayCtx(needs, {kw})")
    star = f", **{kw}" if attrs or dynamic else ""
    lines.append(f"out = fwd(ctx{''.join(', ' + a for a in args)}{star})")
    if len(out_slots) == 1:
        env["dt0"] = dtypes[0]
        lines += ["if type(out) is tuple: out = out[0]",
                  "if type(out) is not ndarray or out.dtype != dt0: out = _fix(ctx, out, dt0)",
                  f"S[{out_slots[0]}] = out"]
    else:
        for j, slot in enumerate(out_slots):
            env[f"dt{j}"] = dtypes[j]
            lines += [f"o = out[{j}]",
                      f"if type(o) is not ndarray or o.dtype != dt{j}: o = _fix(ctx, o, dt{j})",
                      f"S[{slot}] = o"]
    if ctx_index is not None:
        lines += ["ctx._label = label", f"C[{ctx_index}] = ctx"]
    return _generate([(lines, env)], "forward")


def _addmm_relu(ctx, ctx2, x, w, b):
    """Addmm's forward then ReLU's on its output, as one kernel (``linear_array`` with ReLU:
    the bias and ReLU written by the thread that computed each block): what each saves in its
    own ctx, the same bits."""
    ctx.save_for_backward(x, w)
    y = linear_array(x, w, b, relu=True)
    ctx2.save_for_backward(y)
    return y


def _linear_relu_step(specs, ctx_index, needs, relu_ctx, relu_needs, out_slot, dtype):
    """The forward step of an Addmm whose output only a ReLU reads, fused with that ReLU
    (``fuse_linear_relu``): both contexts filled as their own steps would fill them, the
    Addmm's output never stored."""
    env = {"fwd": _addmm_relu, "na": needs, "nr": relu_needs, "dt0": dtype, "attrs": {},
           "la": Addmm.label, "lr": Relu.label}
    args = _input_exprs(specs, env)
    lines = ["ctx = _ReplayCtx(na, attrs)", "ctx2 = _ReplayCtx(nr, attrs)",
             f"out = fwd(ctx, ctx2, {', '.join(args)})",
             "if out.dtype != dt0: out = _fix(ctx2, out, dt0)",
             f"S[{out_slot}] = out"]
    if ctx_index is not None:
        lines += ["ctx._label = la", f"C[{ctx_index}] = ctx"]
    if relu_ctx is not None:
        lines += ["ctx2._label = lr", f"C[{relu_ctx}] = ctx2"]
    return _generate([(lines, env)], "forward")


class ForwardMeta(NamedTuple):
    """What ``fuse_linear_relu`` needs to know of a forward step."""

    cls: type
    specs: tuple
    out_slots: tuple
    dtypes: tuple
    ctx_index: int | None
    needs: tuple
    attrs: dict
    dynamic: tuple


def fuse_linear_relu(steps: list, meta: list, reads: dict) -> list:
    """Each Addmm forward step followed by a ReLU step on its output, where nothing else reads
    that output (``reads``: slot -> how many specs of the tape read it), replaced by one fused
    step (``_linear_relu_step``). ``meta[i]``: forward step i's ``ForwardMeta``, or None for
    other steps."""
    out: list = []
    i = 0
    while i < len(steps):
        a = meta[i]
        r = meta[i + 1] if i + 1 < len(steps) else None
        if (a is not None and r is not None and a.cls is Addmm and r.cls is Relu
                and not (a.attrs or a.dynamic or r.attrs or r.dynamic) and len(a.specs) == 3
                and r.specs == ((_SLOT, a.out_slots[0]),) and reads.get(a.out_slots[0]) == 1
                and a.dtypes[0] == r.dtypes[0] and a.dtypes[0].kind == "f"):
            out.append(_linear_relu_step(a.specs, a.ctx_index, a.needs, r.ctx_index, r.needs,
                                         r.out_slots[0], r.dtypes[0]))
            i += 2
            continue
        out.append(steps[i])
        i += 1
    return out


_COMMON = {"ndarray": np.ndarray, "_ReplayCtx": _ReplayCtx, "_attr_value": _attr_value}


def _generate(parts: list, what: str):
    """One function ``run(S, C)`` running the parts' lines in order; each part's names are
    given a prefix of its own, so parts may use the same ones. The parts are kept on the
    function (``_parts``) for ``fuse`` to join."""
    env = dict(_COMMON, _fix=_fix)
    out = ["def run(S, C):"]
    for n, (lines, names) in enumerate(parts):
        rename = {k: f"p{n}_{k}" for k in names}
        for k, v in names.items():
            env[rename[k]] = v
        for line in lines:
            out.append("    " + _rename(line, rename))
    if len(out) == 1:
        out.append("    pass")
    exec(compile("\n".join(out) + "\n", f"<backprop.compile {what}>", "exec"), env)
    run = env["run"]
    run._parts = parts
    return run


_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def _rename(line: str, rename: dict) -> str:
    return _NAME.sub(lambda m: rename.get(m.group(0), m.group(0)), line)


def fuse(steps: list) -> list:
    """Join each run of consecutive generated forward steps into one function (a call and
    the list of steps' loop per op saved)."""
    fused: list = []
    run: list = []
    for step in steps:
        parts = getattr(step, "_parts", None)
        if parts is not None:
            run.extend(parts)
            continue
        if run:
            fused.append(_generate(run, "forward"))
            run = []
        fused.append(step)
    if run:
        fused.append(_generate(run, "forward"))
    return fused


def _fix(ctx, out, dtype):
    """A kernel's output as eager's ``Function.apply`` leaves it: an ndarray of the dtype the
    capture saw."""
    raw = np.asarray(out)
    if raw.dtype != dtype:
        return _cast_saved(ctx, raw, raw.astype(dtype))
    return raw


def _cast_saved(ctx, raw, cast):
    """Function.apply casts a float64 result of float32 inputs to float32, and what forward
    saved of that output comes back cast: do the same."""
    if any(v is raw for v in ctx._to_save):
        ctx._to_save = tuple(cast if v is raw else v for v in ctx._to_save)
    return cast


def _update_step(rec, specs, opt):
    """The optimizer's update, with its state and hyperparameters read now, not at capture."""
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
    gi = next(i for i, g in enumerate(opt.param_groups) if g is group)
    prepare = opt._prepare

    params = [p for p, _, _ in plan]
    if not any(extra for _, _, extra in plan):
        def run(S, C):
            # the eager step's own update (flat buffers included); it reads p.grad whoever
            # bound it, and the group now: load_state_dict replaces the group dicts
            opt._update(opt.param_groups[gi], params)

        return run

    def run(S, C):
        # read now: load_state_dict replaces the state dict and the group dicts
        group = opt.param_groups[gi]
        state = opt.state
        maximize = bool(group.get("maximize", False))
        for p, _, extra in plan:
            buffers, hyper = prepare(p, state[p], group)
            # the update reads p.grad whoever bound it (this step's backward, or a step
            # compiled separately); the same call ParamUpdate.forward makes per parameter
            grad = p.grad.data
            rule(p.data, -grad if maximize else grad, *[b.data for b in buffers],
                 *[S[v2] if k2 == _SLOT else v2.data for k2, v2 in extra], **hyper)

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

    return _generate_backward(plan, len(buf_of))


def _generate_backward(plan: list, n_bufs: int):
    """The plan as one straight-line function (its source generated here): each gradient
    buffer a local variable, each node's kernel, shapes and dtypes bound as constants, and only
    the tests that can go either way at replay time left in. The engine's logic, node by node:
    the gradients arriving (the seed at a root; zeros for a multi-output node's missing ones;
    nothing to do when a single-output node got none), the kernel or the rule, then each
    gradient reduced to its input's shape, cast to its dtype and added into its buffer; a
    leaf's buffer accumulated into ``.grad``. (About half the Python of a loop over the plan:
    the tiny MLP's compiled step is dominated by it.)"""
    env = {"no_grad": no_grad, "_accumulate": _accumulate, "sum_to_array": sum_to_array,
           "_rule": _run_rule, "np": np}
    out = ["def run(S, C):", "    handed = set()"]
    if n_bufs:
        out.append("    " + " = ".join(f"b{k}" for k in range(n_bufs)) + " = None")
    out.append("    with no_grad():")
    body = []
    for i, (cls, a, kernel, seed, ins, zeros, edges) in enumerate(plan):
        if cls is None:  # AccumulateGrad: a = buffer, kernel = leaf, seed = had_grad
            env[f"leaf{i}"] = kernel
            body += [f"if b{a} is not None:",
                     f"    _accumulate(leaf{i}, b{a}, {bool(seed)}, handed)"]
            continue
        env[f"cls{i}"] = cls
        lines = []
        if seed is not None:
            env[f"seed{i}"] = seed
            names = [f"g{j}" for j in range(len(seed))]
            body.append(f"{', '.join(names)}, = seed{i}")
            body += [f"handed.add(id({g}))" for g, v in zip(names, seed) if v is not None]
        else:
            names = [f"b{k}" for k in ins]
        if zeros is not None:
            env[f"zeros{i}"] = zeros
            fixed = [f"g{j}" for j in range(len(names))]
            lines.append(f"{', '.join(fixed)}, = {', '.join(names)},")
            for j, g in enumerate(fixed):
                lines.append(f"if {g} is None: {g} = np.zeros(*zeros{i}[{j}])")
            names = fixed
        grads = ", ".join(names)
        lines += [f"ctx = C[{a}]", f"C[{a}] = None"]
        if kernel is not None:
            env[f"kernel{i}"] = kernel
            lines += [f"r = kernel{i}(ctx, ctx.needs_input_grad, {grads})",
                      "if r is None:",
                      f"    r = _rule(cls{i}, ctx, ({grads},), {len(edges)})"]
        else:
            lines.append(f"r = _rule(cls{i}, ctx, ({grads},), {len(edges)})")
        for j, e in enumerate(edges):
            if e is None:
                continue
            k, shape, dtype = e
            env[f"shape{i}_{j}"], env[f"dtype{i}_{j}"] = shape, dtype
            lines += [f"e = r[{j}]",
                      "if e is not None:",
                      f"    if e.shape != shape{i}_{j}: e = sum_to_array(e, shape{i}_{j})"]
            if dtype.kind in "fc":
                lines.append(f"    if e.dtype is not dtype{i}_{j}: e = e.astype(dtype{i}_{j})")
            lines.append(f"    b{k} = e if b{k} is None else b{k} + e")
        if zeros is None:  # single output: nothing arrives, nothing to do
            body.append(f"if {names[0]} is not None:")
            body += ["    " + line for line in lines]
        else:
            body += lines
    out += ["        " + line for line in body] or ["        pass"]
    exec(compile("\n".join(out) + "\n", "<backprop.compile backward>", "exec"), env)
    return env["run"]


def _run_rule(cls, ctx, grads: tuple, n: int) -> tuple:
    """A node's own backward rule on arrays (first order, so its Tensors record nothing): a
    gradient for each of its ``n`` inputs (None past the end of a short result, as the
    engine's zip gives). A kernel (``_replay_kernels``) returns one per input itself."""
    result = cls.backward(ctx, *[None if g is None else _wrap(g, False, None, 0)
                                 for g in grads])
    if type(result) is not tuple:
        result = (result,)
    result = tuple(None if g is None else g.data if isinstance(g, Tensor) else np.asarray(g)
                   for g in result[:n])
    return result + (None,) * (n - len(result))


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


@dataclass
class _Tape:
    """The replayable step: its steps, how many slots and contexts they use, what it returns,
    the leaves whose ``.grad`` ends as None, and what must not have changed since capture."""

    steps: list
    n_slots: int
    n_inputs: int
    n_ctx: int
    result: tuple
    leaf_end: tuple
    opt_guard: tuple
    leaf_guard: tuple

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
