"""The backward pass: reverse-mode accumulation over the recorded graph.

Nodes are visited in Kahn order (a node runs once every consumer of its outputs has sent its
gradient), with an explicit stack, so depth is limited by memory, never by Python's recursion
limit. The dependency counts also tell when a node's output gradient is complete: that is when its
hooks run, when ``retain_grad`` tensors receive it, and when it is popped from the buffer (freed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backprop.autograd.function import _check_finite
from backprop.autograd.grad_mode import _debug, _state
from backprop.tensor import Tensor, _wrap


class _Meta:
    """The shape and dtype of a freed input: all a second backward needs of its data."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype) -> None:
        self.shape, self.dtype = shape, dtype


class _Edge:
    """A freed non-leaf input: where its gradient goes, not its data."""

    __slots__ = ("grad_fn", "_output_nr", "_requires_grad", "data")

    def __init__(self, grad_fn, output_nr, shape, dtype) -> None:
        self.grad_fn = grad_fn
        self._output_nr = output_nr
        self._requires_grad = True
        self.data = _Meta(shape, dtype)


def _inputs_of(node) -> tuple:
    """The node's inputs: the Tensors, or after release, edges standing in for the non-leaves."""
    inputs = node._inputs
    if inputs is None:  # released by an earlier backward: rebuild light stand-ins (rare)
        # only an input that needed grad can be an edge tuple (a user's tuple argument cannot)
        inputs = tuple(
            _Edge(*e) if need and type(e) is tuple else e
            for e, need in zip(node._edges, node.needs_input_grad)
        )
    return inputs


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
        return _wrap(np.ones_like(root.data), False, None, 0)
    if not isinstance(grad, Tensor):
        grad = _wrap(np.asarray(grad, dtype=root.data.dtype), False, None, 0)
    if grad.shape != root.shape:
        raise RuntimeError(
            f"backward(): gradient has shape {grad.shape} but the output has shape {root.shape}; "
            "they must match"
        )
    return grad if create_graph else grad.detach()


def _run(roots, grad_roots, retain_graph, create_graph, capture=None):
    """Propagate gradients from ``roots`` to the leaves.

    Without ``capture`` leaf gradients are accumulated into ``.grad``. With ``capture`` (a list of
    tensors, for ``autograd.grad``) their gradients are returned instead and ``.grad`` is untouched.
    """
    roots = _as_tuple(roots)
    grads = _as_tuple(grad_roots) if grad_roots is not None else (None,) * len(roots)
    if len(grads) != len(roots):
        raise RuntimeError(f"got {len(roots)} outputs but {len(grads)} gradients for them")
    buffers: dict = {}
    leaf_grads: dict = {}
    handed: set = set()  # ids of arrays that a leaf's .grad may not own (see _finish_leaf)
    for root, g in zip(roots, grads):
        if not isinstance(root, Tensor):
            raise TypeError(f"backward(): expected Tensors as outputs, got {type(root).__name__}")
        if not root._requires_grad:
            raise RuntimeError(
                "backward(): the output does not require grad and has no grad_fn, so there is "
                "nothing to differentiate. Set requires_grad=True on an input before computing "
                "it, and do not compute it inside no_grad()."
            )
        g = _seed(root, g, create_graph)
        handed.add(id(g.data))
        if root.grad_fn is None:
            _add_leaf(leaf_grads, root, g)
        else:
            _add_to_buffer(buffers, root.grad_fn, root._output_nr, g)

    capture_nodes = {}
    capture_leaves = {}
    if capture is not None:
        for k, t in enumerate(capture):
            if t.grad_fn is None:
                capture_leaves[id(t)] = k
            else:
                capture_nodes.setdefault(t.grad_fn, []).append((t._output_nr, k))
        captured = [None] * len(capture)

    # count, for every node reachable from the roots, how many edges lead into it
    deps: dict = {}
    stack = list(buffers)
    seen = set(stack)
    while stack:
        node = stack.pop()
        for inp, need in zip(_inputs_of(node), node.needs_input_grad):
            if need:
                fn = inp.grad_fn
                if fn is not None:
                    if fn in deps:
                        deps[fn] += 1
                    else:
                        deps[fn] = 1
                    if fn not in seen:
                        seen.add(fn)
                        stack.append(fn)

    ready = [n for n in buffers if n not in deps]
    prev_mode = _state.grad_enabled
    _state.grad_enabled = create_graph
    try:
        while ready:
            node = ready.pop()
            out_grads = buffers.pop(node, None)
            inputs = _inputs_of(node)
            if out_grads is None:  # no gradient arrived (e.g. a custom rule returned None)
                in_grads = (None,) * len(inputs)
            else:
                if node._hooks or node._retain:
                    _run_node_hooks(node, out_grads, create_graph)
                if capture_nodes and node in capture_nodes:
                    for output_nr, k in capture_nodes[node]:
                        captured[k] = out_grads[output_nr]
                in_grads = _call_backward(node, out_grads, len(inputs))
            if not retain_graph:
                _release(node, inputs)
            needs = node.needs_input_grad
            for index in range(len(inputs)):
                if not needs[index]:
                    continue
                inp = inputs[index]
                g = in_grads[index]
                if g is not None:
                    meta = inp.data
                    if g.data.shape != meta.shape:
                        g = _fix_shape(node, index, meta, g)
                    if g.data.dtype is not meta.dtype and meta.dtype.kind in "fc":
                        g = g.to(meta.dtype)
                fn = inp.grad_fn
                if fn is not None:
                    if g is not None:  # _add_to_buffer, inlined: this runs once per edge
                        buf = buffers.get(fn)
                        if buf is None:
                            buf = buffers[fn] = [None] * fn._n_out
                        old = buf[inp._output_nr]
                        # out of place: g may be shared with another input's gradient
                        buf[inp._output_nr] = g if old is None else old + g
                    left = deps[fn] - 1
                    deps[fn] = left
                    if left == 0:
                        ready.append(fn)
                elif g is not None:
                    _add_leaf(leaf_grads, inp, g)
    finally:
        _state.grad_enabled = prev_mode

    for leaf, g in leaf_grads.values():
        if leaf._hooks:
            for hook in leaf._hooks:
                new = hook(g)
                if new is not None:
                    g = new
        if capture is not None:
            k = capture_leaves.get(id(leaf))
            if k is not None:
                captured[k] = g
        else:
            _finish_leaf(leaf, g, create_graph, handed)
    return captured if capture is not None else None


def _add_to_buffer(buffers: dict, node, output_nr: int, g: Tensor) -> None:
    buf = buffers.get(node)
    if buf is None:
        buf = buffers[node] = [None] * node._n_out
    old = buf[output_nr]
    buf[output_nr] = g if old is None else old + g  # out of place: g may be shared


def _add_leaf(leaf_grads: dict, leaf: Tensor, g: Tensor) -> None:
    key = id(leaf)
    old = leaf_grads.get(key)
    leaf_grads[key] = (leaf, g if old is None else old[1] + g)


def _finish_leaf(leaf: Tensor, g: Tensor, create_graph: bool, handed: set) -> None:
    """Accumulate ``g`` into ``leaf.grad`` (PyTorch semantics: sum across backward calls)."""
    if not create_graph:
        arr = g.data
        # A gradient array can be shared: identity rules (add, reshape) pass grad_out on to
        # several inputs, and the seed belongs to the caller. .grad must own its memory, since
        # clipping and optimizers update it in place.
        if id(arr) in handed or arr.base is not None or not arr.flags.writeable:
            arr = arr.copy()
        handed.add(id(arr))
        g = _wrap(arr, False, None, 0)
    if leaf.grad is None:
        leaf.grad = g
    elif create_graph or leaf.grad.grad_fn is not None:
        leaf.grad = leaf.grad + g
    else:
        np.add(leaf.grad.data, g.data, out=leaf.grad.data)


def _run_node_hooks(node, out_grads: list, create_graph: bool) -> None:
    if node._hooks:
        for output_nr, hooks in node._hooks.items():
            g = out_grads[output_nr]
            if g is None:
                continue
            for hook in hooks:
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
            g = g if create_graph else _wrap(g.data.copy(), False, None, 0)
            t.grad = g if t.grad is None else t.grad + g


def _call_backward(node, out_grads: list, n_in: int) -> tuple:
    if node._n_out > 1:
        for j, g in enumerate(out_grads):
            if g is None:  # an unused output: its gradient is zero
                shape, dtype = node._out_meta[j]
                out_grads[j] = _wrap(np.zeros(shape, dtype), False, None, 0)
    if _debug.anomaly:
        _debug.backward_node = node
        try:
            result = node._fn.backward(node, *out_grads)
        finally:
            _debug.backward_node = None
    else:
        result = node._fn.backward(node, *out_grads)
    if not isinstance(result, tuple):
        result = (result,)
    if len(result) != n_in:
        raise RuntimeError(
            f"{node._fn.__name__}.backward returned {len(result)} gradients, but forward took "
            f"{n_in} positional inputs; return one per input (None where there is none)"
        )
    for g in result:
        if g is not None and not isinstance(g, Tensor):
            break
    else:
        g = None
    if g is not None:  # a custom rule returned arrays or numbers: wrap them
        result = tuple(
            _wrap(np.asarray(g), False, None, 0) if g is not None and not isinstance(g, Tensor)
            else g for g in result
        )
    if _debug.anomaly:
        _check_finite(node._fn, "backward", result, node._trace)
    return result


def _fix_shape(node, index: int, meta, g: Tensor) -> Tensor:
    if node._fn.broadcasts:
        if _state.grad_enabled:  # create_graph: the reduction must be recorded
            return _shape_ops.sum_to(g, meta.shape)
        return _wrap(_shape_ops.sum_to_array(g.data, meta.shape), False, None, 0)
    raise RuntimeError(
        f"{node._fn.__name__}.backward returned a gradient of shape {g.shape} for input {index}, "
        f"whose shape is {tuple(meta.shape)}. Ops that broadcast declare `broadcasts = True`; "
        "otherwise the gradient must have the input's shape."
    )


def _release(node, inputs) -> None:
    """Free what the node saved and its hold on intermediate inputs (retain_graph=False).

    Non-leaf inputs become (grad_fn, output_nr, shape, dtype) tuples, so their arrays can be
    freed while the user still holds the output; leaves (parameters) are kept as they are.
    """
    if node._saved is not None:
        node._saved = None
        node._released = True
    if node._inputs is not None:
        node._edges = tuple(
            (t.grad_fn, t._output_nr, t.data.shape, t.data.dtype)
            if isinstance(t, Tensor) and t.grad_fn is not None else t
            for t in inputs
        )
        node._inputs = None


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate into the leaves' ``.grad`` the gradient of ``tensors``.

    Args:
        tensors: a Tensor or a sequence of Tensors (the outputs to differentiate).
        grad_tensors: the gradient with respect to each output (None for single elements).
        retain_graph: keep the graph's saved values for another backward (default: create_graph).
        create_graph: record the backward pass, so gradients can be differentiated again.
        inputs: if given, only these leaves accumulate gradients.
    """
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = _as_tuple(inputs)
        found = _run(tensors, grad_tensors, retain_graph, create_graph, capture=list(inputs))
        handed: set = set()
        for t, g in zip(inputs, found):
            if g is not None:
                _finish_leaf(t, g, create_graph, handed)
        return
    _run(tensors, grad_tensors, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Return the gradients of ``outputs`` with respect to ``inputs``, leaving ``.grad`` untouched.

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
        if not isinstance(t, Tensor) or not t._requires_grad:
            raise RuntimeError(
                f"grad(): input {k} does not require grad, so no gradient can be taken with "
                "respect to it; create it with requires_grad=True"
            )
    found = _run(outputs, grad_outputs, retain_graph, create_graph, capture=list(inputs))
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

from backprop.ops import shape as _shape_ops  # noqa: E402  (ops import the engine's package)
