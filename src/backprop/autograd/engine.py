"""The backward pass: reverse-mode accumulation over the recorded graph.

The graph is made of nodes (``Context``, one per recorded op, and ``AccumulateGrad``, one per
leaf that requires grad) joined by edges ``(node, output_nr, shape, dtype)``. A backward pass is
one *graph task*:

1. **Discovery.** From the roots, an explicit-stack walk counts, for every reachable node, how
   many edges lead into it. For ``grad()`` and ``backward(inputs=...)`` a second walk keeps only
   the nodes on a path to a requested input (the *pruned* graph): nothing else runs, fires a
   hook or is freed.
2. **Execution.** A node is ready once every edge into it has delivered its gradient (Kahn's
   algorithm). Among ready nodes the most recently created runs first, and a leaf's
   ``AccumulateGrad`` as soon as it is ready, as in PyTorch, so hooks fire in PyTorch's order.
   Running a node: tensor hooks and ``retain_grad``, pre-hooks, the op's ``backward``, the
   check of each returned gradient against its edge (shape and dtype), post-hooks, then the
   node frees what it saved (unless ``retain_graph``). A leaf's gradient is added to ``.grad``
   when its ``AccumulateGrad`` runs, then its post-accumulate hooks run: the gradient is final
   while the rest of the backward may still be running.
3. **Callbacks** queued during the task (``graph.queue_callback``) run once, after the last node.

No recursion anywhere, so depth is limited by memory, never by Python's recursion limit.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence

import numpy as np

from backprop._malloc import retain_freed_memory
from backprop.autograd._backward_call import _as_gradients, _call_backward, _count_error
from backprop.autograd.function import AccumulateGrad, accumulator
from backprop.autograd.grad_mode import _debug, _state
from backprop.tensor import Tensor, _wrap


class GraphTask:
    """The state of one backward pass, visible to hooks through ``graph.current_graph_task()``.

    Attributes:
        create_graph: whether the pass is being recorded (for higher-order gradients).
        callbacks: functions to run once when the pass ends (``graph.queue_callback``).
    """

    __slots__ = ("create_graph", "callbacks", "deps", "useful", "state", "_roots")

    def __init__(self, create_graph: bool, roots: list) -> None:
        self.create_graph = create_graph
        self.callbacks: list = []
        self.deps: dict = {}
        self.useful: dict | None = None  # pruned runs: node -> on a path to a requested input
        self.state: dict = {}  # per-task scratch space for hooks (multi-grad hooks)
        self._roots = roots  # the roots' nodes (a few: a list is searched fastest)

    def will_run(self, node) -> bool:
        """True if ``node`` receives a gradient in this pass (it is reachable, and on a path
        to a requested input when the pass is pruned)."""
        if node not in self.deps and node not in self._roots:
            return False
        return self.useful is None or bool(self.useful.get(node))


_tasks: list[GraphTask] = []


def _as_tuple(x) -> tuple:
    if x is None:
        return ()
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _seed(root: Tensor, grad, create_graph: bool) -> Tensor:
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward(): the output has shape {root.shape}, not a single element, so its "
                f"gradient must be given: pass gradient= (a tensor of shape {root.shape}, e.g. "
                "backprop.ones_like(y)), or reduce first, e.g. y.sum().backward()"
            )
        # (np.ones_like costs a microsecond more: it goes through empty_like and copyto)
        return _wrap(np.ones(root.data.shape, root.data.dtype), False, None, 0)
    if not isinstance(grad, Tensor):
        grad = _wrap(np.asarray(grad, dtype=root.data.dtype), False, None, 0)
    if grad.shape != root.shape:
        raise RuntimeError(
            f"backward(): gradient has shape {grad.shape} but the output has shape {root.shape}; "
            "they must match"
        )
    return grad if create_graph else grad.detach()


def _node_of(t: Tensor):
    fn = t.grad_fn
    return fn if fn is not None else accumulator(t)


def _children(node):
    return [e[0] for e in node._next if e is not None and e[0] is not None]


def _mark_useful(starts, targets: set) -> dict:
    """node -> True if a requested input's node is reachable from it (itself included)."""
    useful: dict = {}
    for s in starts:
        if s in useful:
            continue
        useful[s] = s in targets
        stack = [(s, iter(_children(s)))]
        while stack:
            node, it = stack[-1]
            for c in it:
                if c in useful:
                    if useful[c]:
                        useful[node] = True
                    continue
                useful[c] = c in targets
                stack.append((c, iter(_children(c))))
                break
            else:
                stack.pop()
                if useful[node] and stack:
                    useful[stack[-1][0]] = True
    return useful


def _run(roots, grad_roots, retain_graph, create_graph, capture=None, accumulate=True):
    """Propagate gradients from ``roots``.

    Without ``capture`` every reachable leaf accumulates its gradient into ``.grad``. With
    ``capture`` (a list of tensors) only the part of the graph leading to them runs, and their
    gradients are returned; ``accumulate`` then says whether captured leaves also accumulate
    into ``.grad`` (``backward(inputs=...)``) or not (``grad()``).
    """
    roots = _as_tuple(roots)
    grads = _as_tuple(grad_roots) if grad_roots is not None else (None,) * len(roots)
    if len(grads) != len(roots):
        raise RuntimeError(f"got {len(roots)} outputs but {len(grads)} gradients for them")
    buffers: dict = {}
    handed: set = set()  # ids of arrays that a leaf's .grad may not own (see _finish_leaf)
    root_nodes = []
    for root, g in zip(roots, grads):
        if not isinstance(root, Tensor):
            raise TypeError(f"backward(): expected Tensors as outputs, got {type(root).__name__}")
        if not root.requires_grad:
            raise RuntimeError(
                "backward(): the output does not require grad and has no grad_fn, so there is "
                "nothing to differentiate. Set requires_grad=True on an input before computing "
                "it, and do not compute it inside no_grad()."
            )
        g = _seed(root, g, create_graph)
        handed.add(id(g.data))
        node = _node_of(root)
        _add_to_buffer(buffers, node, root._output_nr, g)
        root_nodes.append(node)
    task = GraphTask(create_graph, root_nodes)

    # targets of a pruned run: node -> [(output_nr, k)]; leaves are reached through their
    # AccumulateGrad nodes, which run only when accumulating
    targets: dict = {}
    if capture is not None:
        for k, t in enumerate(capture):
            targets.setdefault(_node_of(t), []).append((t._output_nr, k))
        captured = [None] * len(capture)
        useful = task.useful = _mark_useful(root_nodes, set(targets))
    else:
        useful = None

    # count, for every node that will receive a gradient, the edges that will deliver one
    deps = task.deps
    stack = list(dict.fromkeys(root_nodes))
    seen = set(stack)
    while stack:
        node = stack.pop()
        if useful is not None and not _executes(node, useful):
            continue
        for e in node._next:
            if e is None:
                continue
            fn = e[0]
            if fn is None or (useful is not None and not useful.get(fn)):
                continue
            deps[fn] = deps.get(fn, 0) + 1
            if fn not in seen:
                seen.add(fn)
                stack.append(fn)

    # ready nodes: AccumulateGrad ones first, in the order they became ready; then the others,
    # the most recently created first (sequence numbers are unique: no ties in the heap)
    accs = deque()
    ready = []
    for node in dict.fromkeys(root_nodes):
        if node not in deps:
            if node._fn is None:
                accs.append(node)
            else:
                heapq.heappush(ready, (-node._seq, node))
    observers = _debug.observers
    prev_mode = _state.grad_enabled
    prev_phase = _debug.in_backward
    _state.grad_enabled = create_graph
    _debug.in_backward = True
    _tasks.append(task)
    # A leaf's AccumulateGrad runs inline, as soon as its last gradient arrives, unless
    # something needs to see it as a node (capture, observers or its own hooks).
    inline_leaves = capture is None and not observers
    heappush, heappop = heapq.heappush, heapq.heappop
    # while exactly one node is ready (a chain: the common case) it waits here, not in the heap
    nxt = None
    try:
        adds = accumulate or capture is None
        while accs or ready or nxt is not None:
            if accs:
                node = accs.popleft()
            elif nxt is not None:
                node = nxt
                nxt = None
            else:
                node = heappop(ready)[1]
            out_grads = buffers.pop(node, None)
            if node._fn is None:  # AccumulateGrad
                if out_grads is None or out_grads[0] is None:
                    continue
                g = _run_accumulate(node, out_grads[0], targets,
                                    captured if capture is not None else None, adds,
                                    create_graph, handed)
                if observers and adds:  # grad() captures, never adds
                    _observe(observers, node, (g,), ())
                continue
            edges = node._next
            if useful is not None and not _executes(node, useful):
                # pruned: only capture what arrives, run nothing
                if out_grads is not None:
                    if node._hooked:
                        _run_tensor_hooks(node, out_grads, create_graph)
                    if node in targets:
                        for output_nr, k in targets[node]:
                            captured[k] = out_grads[output_nr]
                continue
            if out_grads is None:  # no gradient arrived (e.g. a custom rule returned None)
                in_grads = (None,) * len(edges)
            else:
                hooked = node._hooked
                if hooked:
                    _run_tensor_hooks(node, out_grads, create_graph)
                if capture is not None and node in targets:
                    for output_nr, k in targets[node]:
                        captured[k] = out_grads[output_nr]
                if hooked and node._pre_hooks:
                    out_grads = _run_pre_hooks(node._pre_hooks, out_grads)
                # _call_backward's common case, inlined: it runs once per node
                if node._released or node._n_out > 1 or _debug.anomaly:
                    in_grads = _call_backward(node, out_grads, len(edges))
                else:
                    in_grads = node._fn.backward(node, *out_grads)
                    if type(in_grads) is not tuple:
                        in_grads = (in_grads,)
                    if len(in_grads) != len(edges):
                        _count_error(node, len(in_grads), len(edges))
                    for g in in_grads:
                        if g is not None and type(g) is not Tensor:
                            in_grads = _as_gradients(in_grads)
                            break
                if hooked and node._post_hooks:
                    in_grads = _run_post_hooks(node, in_grads, out_grads)
                if observers:
                    _observe(observers, node, tuple(out_grads), in_grads)
                if not retain_graph:
                    # free what the node saved, and any arrays its forward set on ctx
                    if node._saved is not None:
                        node._saved = None
                        node._released = True
                    for v in node.__dict__.values():
                        if type(v) is np.ndarray:
                            _release_attrs(node)
                            break
            for index, e in enumerate(edges):
                if e is None:
                    continue
                fn = e[0]
                if fn is None or (useful is not None and not useful.get(fn)):
                    continue
                g = in_grads[index]
                if g is not None:
                    gd = g.data
                    if gd.shape != e[2]:
                        g = _fix_shape(node, index, e[2], g)
                    if gd.dtype is not e[3] and e[3].kind in "fc":
                        g = g.to(e[3])
                left = deps[fn] - 1
                deps[fn] = left
                if left == 0 and fn._fn is None and inline_leaves and not fn._hooked \
                        and not accs:  # (behind a queued leaf, it queues too: same order)
                    buf = buffers.pop(fn, None)
                    if buf is not None:  # earlier edges delivered part of it
                        old = buf[0]
                        g = old if g is None else (g if old is None else old + g)
                    if g is not None:
                        leaf = fn._leaf()
                        if leaf is not None:
                            _finish_leaf(leaf, g, create_graph, handed)
                    continue
                if g is not None:
                    # _add_to_buffer, inlined: this runs once per edge
                    buf = buffers.get(fn)
                    if buf is None:
                        buf = buffers[fn] = [None] * fn._n_out
                    old = buf[e[1]]
                    # out of place: g may be shared with another input's gradient
                    buf[e[1]] = g if old is None else old + g
                if left == 0:
                    if fn._fn is None:
                        accs.append(fn)
                    elif nxt is None and not ready:
                        nxt = fn
                    else:
                        if nxt is not None:
                            heappush(ready, (-nxt._seq, nxt))
                            nxt = None
                        heappush(ready, (-fn._seq, fn))
        callbacks = task.callbacks
        while callbacks:
            callbacks.pop(0)()
    finally:
        _tasks.pop()
        _state.grad_enabled = prev_mode
        _debug.in_backward = prev_phase
    return captured if capture is not None else None


def _executes(node, useful: dict) -> bool:
    """In a pruned run, a node runs its backward only if a requested input lies below it."""
    if node._fn is None:
        return bool(useful.get(node))
    return any(e is not None and e[0] is not None and useful.get(e[0]) for e in node._next)


def _run_accumulate(node: AccumulateGrad, g, targets, captured, accumulate, create_graph,
                    handed):
    if node._tensor_hooks:
        for hook in tuple(node._tensor_hooks):
            new = hook(g)
            if new is not None:
                g = new
    if node._pre_hooks:
        g = _run_pre_hooks(node._pre_hooks, [g])[0]
    if captured is not None and node in targets:
        for _, k in targets[node]:
            captured[k] = g
    if not accumulate:
        return g
    leaf = node._leaf()
    if leaf is None:
        return g
    _finish_leaf(leaf, g, create_graph, handed)
    if node._post_acc_hooks:
        for hook in tuple(node._post_acc_hooks):
            hook(leaf)
    if node._post_hooks:
        for hook in tuple(node._post_hooks):
            hook((), (g,))
    return g


def _add_to_buffer(buffers: dict, node, output_nr: int, g: Tensor) -> None:
    buf = buffers.get(node)
    if buf is None:
        buf = buffers[node] = [None] * node._n_out
    old = buf[output_nr]
    buf[output_nr] = g if old is None else old + g  # out of place: g may be shared


def _finish_leaf(leaf: Tensor, g: Tensor, create_graph: bool, handed: set) -> None:
    """Accumulate ``g`` into ``leaf.grad`` (PyTorch semantics: sum across backward calls)."""
    if not create_graph:
        arr = g.data
        # A gradient array can be shared: identity rules (add, reshape) pass grad_out on to
        # several inputs, and the seed belongs to the caller. .grad must own its memory, since
        # clipping and optimizers update it in place.
        if id(arr) in handed or arr.base is not None or not arr.flags.writeable:
            # a copy: an op when the step is being recorded, else just NumPy
            g = _clone(g) if _debug.recorders else _wrap(arr.copy(), False, None, 0)
        handed.add(id(g.data))
        if g._requires_grad or g._grad_fn is not None:
            g = g.detach()
    if leaf.grad is None:
        leaf.grad = g
    elif create_graph or leaf.grad._grad_fn is not None:
        leaf.grad = leaf.grad + g
    elif _debug.recorders:  # a recorded step: the accumulation is an op
        _inplace.AddInplace.apply(leaf.grad, g)
    else:
        np.add(leaf.grad.data, g.data, out=leaf.grad.data)
        leaf.grad._bump("AccumulateGrad")


def _run_tensor_hooks(node, out_grads: list, create_graph: bool) -> None:
    if node._hooks:
        for output_nr, hooks in node._hooks.items():
            g = out_grads[output_nr]
            if g is None:
                continue
            for hook in tuple(hooks):
                new = hook(g)
                if new is not None:
                    g = new
            out_grads[output_nr] = g
    if node._retain:
        for output_nr, ref in node._retain.items():
            t = ref()
            g = out_grads[output_nr]
            if t is None or g is None:
                continue
            g = g if create_graph else _clone(g).detach()
            t.grad = g if t.grad is None else t.grad + g


def _run_pre_hooks(hooks, out_grads: list) -> list:
    for hook in tuple(hooks):
        new = hook(tuple(out_grads))
        if new is not None:
            out_grads = list(new)
    return out_grads


def _run_post_hooks(node, in_grads: tuple, out_grads: list) -> tuple:
    for hook in tuple(node._post_hooks):
        new = hook(in_grads, tuple(out_grads))
        if new is not None:
            new = tuple(new)
            if len(new) != len(in_grads):
                raise RuntimeError(
                    f"a hook registered on {node.name()} returned {len(new)} gradients, but "
                    f"the node has {len(in_grads)} inputs"
                )
            in_grads = new
    return in_grads


def _observe(observers, node, grad_outputs, grad_inputs) -> None:
    for observer in observers:
        observer(node, grad_outputs, grad_inputs)


def _fix_shape(node, index: int, shape: tuple, g: Tensor) -> Tensor:
    """PyTorch's rule: a gradient of another shape is summed down only if the input's shape
    broadcasts to it (the input was expanded); any other mismatch is a bug in the rule."""
    gshape = g.shape
    lead = len(gshape) - len(shape)
    # (np.broadcast_shapes says the same but costs more than the sum itself on small arrays)
    if lead >= 0 and (gshape[lead:] == shape  # a bias: only leading dimensions were added
                      or all(s == 1 or s == gs for s, gs in zip(shape, gshape[lead:]))):
        if _state.grad_enabled or _debug.recorders:  # create_graph, or a recorded step: an op
            return _shape_ops.sum_to(g, shape)
        return _wrap(_shape_ops.sum_to_array(g.data, shape), False, None, 0)
    raise RuntimeError(
        f"{node._fn.__name__}.backward returned a gradient of shape {g.shape} for input {index}, "
        f"whose shape is {tuple(shape)}; a gradient must have its input's shape (or a shape the "
        "input broadcasts to, which is then summed down)"
    )


def _release_attrs(node) -> None:
    """Drop the arrays among the attributes the op's forward set (and rare engine flags)."""
    d = node.__dict__
    for k in [k for k, v in d.items() if type(v) is np.ndarray]:
        del d[k]
    node._released = True


def _clone(g: Tensor) -> Tensor:
    with _no_grad():
        return _elementwise.clone(g)


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate into the leaves' ``.grad`` the gradient of ``tensors``.

    Args:
        tensors: a Tensor or a sequence of Tensors (the outputs to differentiate).
        grad_tensors: the gradient with respect to each output (None for single elements).
        retain_graph: keep the graph's saved values for another backward (default: create_graph).
        create_graph: record the backward pass, so gradients can be differentiated again.
        inputs: if given, only these tensors accumulate gradients, and only the part of the
            graph leading to them runs.
    """
    # a backward pass means training: from the first, freed arrays are reused instead of being
    # faulted in afresh each step (backprop._malloc; cached after the first call)
    retain_freed_memory()
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = _as_tuple(inputs)
        if not inputs:
            raise RuntimeError("backward(): inputs= was given but is empty")
        found = _run(tensors, grad_tensors, retain_graph, create_graph, capture=list(inputs),
                     accumulate=True)
        handed: set = set()
        for t, g in zip(inputs, found):
            if g is not None and t.grad_fn is not None:  # leaves accumulated as they ran
                _finish_leaf(t, g, create_graph, handed)
        return
    _run(tensors, grad_tensors, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Return the gradients of ``outputs`` with respect to ``inputs``, leaving ``.grad`` untouched.

    Only the part of the graph between the outputs and the inputs runs: no other node's
    backward, hook or freeing happens.

    Args:
        outputs: a Tensor or a sequence of Tensors.
        inputs: a Tensor or a sequence of Tensors (leaves or intermediate results).
        grad_outputs: the gradient with respect to each output (None for single elements).
        retain_graph: keep the saved values for another backward (default: create_graph).
        create_graph: record this backward pass, for higher-order gradients (Hessian-vector
            products: ``grad(grad(f, x, create_graph=True)[0] @ v, x)``).
        allow_unused: return None for an input the outputs do not depend on, instead of raising.

    Returns:
        A tuple with one gradient Tensor (or None) per input.

    Example:
        >>> import backprop as bp
        >>> x = bp.tensor(3.0, requires_grad=True)
        >>> (dy,) = bp.autograd.grad(x ** 3, x, create_graph=True)
        >>> (d2y,) = bp.autograd.grad(dy, x)
        >>> dy.item(), d2y.item()
        (27.0, 18.0)
    """
    if retain_graph is None:
        retain_graph = create_graph
    inputs = _as_tuple(inputs)
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(
                f"grad(): input {k} does not require grad, so no gradient can be taken with "
                "respect to it; create it with requires_grad=True"
            )
    found = _run(outputs, grad_outputs, retain_graph, create_graph, capture=list(inputs),
                 accumulate=False)
    result = []
    for k, g in enumerate(found):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad(): input {k} (shape {inputs[k].shape}) was not used to compute the "
                "outputs; pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)


__all__: Sequence[str] = ["backward", "grad"]

# ops import the engine's package: bound at the end, once
from backprop.autograd.grad_mode import no_grad as _no_grad  # noqa: E402
from backprop.ops import elementwise as _elementwise  # noqa: E402
from backprop.ops import inplace as _inplace  # noqa: E402
from backprop.ops import shape as _shape_ops  # noqa: E402
