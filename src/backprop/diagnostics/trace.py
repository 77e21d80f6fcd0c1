"""The chain-rule trace: one forward and one backward pass, recorded op by op, with every
gradient checked against central finite differences.

``trace(loss_fn, params, inputs)`` runs ``loss_fn()`` under ``record_ops()`` and its
``backward()`` under ``observe_backward()`` (the engine's public hook points) and returns a
``Trace``: per op its forward value, its local derivative with respect to each input, the
incoming (upstream) gradient, their product (the gradient passed to each input) and, where a
value feeds several consumers, each consumer's contribution to the sum. ``Trace.to_json()`` is
the document ``backprop explain --format json`` prints; ``render_text`` prints it for people.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

import backprop as bp
from backprop.autograd import graph
from backprop.tensor import Tensor

__all__ = ["GradientCheck", "Trace", "TraceNode", "finite_differences", "trace"]

# the modules whose ops are all elementwise (their partial derivatives are arrays of the
# inputs' shapes)
_ELEMENTWISE_MODULES = ("backprop.ops.elementwise", "backprop.ops.unary")
_VIEWS = {"View", "Reshape", "Transpose", "Permute", "Squeeze", "Unsqueeze", "Flatten"}


@dataclass
class TraceNode:
    """One value of the graph: a leaf (``op`` is ``"param"`` or ``"input"``) or an op's output.

    Attributes:
        id: ``"n<k>"`` for op outputs, the name for leaves (``"0.weight"``, ``"x"``).
        op: the op's label (``"Addmm"``, ``"Sigmoid"``) or ``"param"``/``"input"``.
        inputs: per positional input, the id of the node it is, or the constant itself.
        value: the forward value (ndarray).
        formula: the op's rule from its docstring (``"y = tanh x;  ∂y/∂x = 1 - y²"``).
        local_grad: per input, ∂output/∂input as an array where it is elementwise (same shape
            as the output), the other factor for a matrix product, ones for a sum; None for a
            constant input or an op without a simple local form.
        local_text: per input, how the product upstream x local is formed (``"g ⊙ local"``).
        upstream_grad: ∂L/∂output, the gradient arriving from the consumers (summed).
        grad: per input, the gradient this node passes back (before any broadcast reduction).
        children: ``[(consumer id, contribution)]`` when the value feeds several consumers or a
            broadcast; their sum is ``upstream_grad`` (leaves: ``.grad``).
        forward_index, backward_index: the order of the forward pass and of backprop's visit
            (None: backprop did not visit it).
    """

    id: str
    op: str
    inputs: list
    value: np.ndarray
    formula: str = ""
    local_grad: list = field(default_factory=list)
    local_text: list = field(default_factory=list)
    upstream_grad: np.ndarray | None = None
    grad: list = field(default_factory=list)
    children: list = field(default_factory=list)
    forward_index: int = 0
    backward_index: int | None = None


@dataclass
class GradientCheck:
    """One parameter's gradient by backprop beside its central finite-difference estimate."""

    param: str
    backprop: np.ndarray
    finite_difference: np.ndarray

    @property
    def abs_diff(self) -> np.ndarray:
        """|backprop - finite difference|, elementwise."""
        return np.abs(self.backprop - self.finite_difference)


@dataclass
class Trace:
    """A recorded forward and backward pass (see ``trace``).

    Attributes:
        nodes: leaves first (parameters, then inputs), then ops in forward order.
        backward_order: the ids of the nodes in the order backprop visited them.
        loss: the loss value.
        gradients: the finite-difference check per parameter (``finite_differences``).
        steps: optional gradient-descent snapshots (``{"step", "loss", "params", "grads",
            "output"}``) for the interactive page.
        meta: free description (network, dataset, samples, seed).
    """

    nodes: list[TraceNode]
    backward_order: list[str]
    loss: float
    gradients: list[GradientCheck] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def node(self, node_id: str) -> TraceNode:
        """The node with this id."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def to_json(self) -> dict:
        """The JSON document: ``{"nodes": [{"id", "op", "inputs", "value", "local_grad",
        "upstream_grad", "grad", ...}], "gradients": [{"param", "backprop",
        "finite_difference", "abs_diff"}], ...}``, numbers as numbers or nested lists."""
        def arr(a):
            return None if a is None else np.asarray(a, dtype=np.float64).tolist()

        nodes = []
        for n in self.nodes:
            nodes.append({
                "id": n.id, "op": n.op, "inputs": [_plain(i) for i in n.inputs],
                "value": arr(n.value), "local_grad": [arr(g) for g in n.local_grad],
                "upstream_grad": arr(n.upstream_grad), "grad": [arr(g) for g in n.grad],
                "formula": n.formula, "local_text": list(n.local_text),
                "children": [{"node": c, "grad": arr(g)} for c, g in n.children],
                "shape": list(np.shape(n.value)), "forward_index": n.forward_index,
                "backward_index": n.backward_index,
            })
        return {
            "meta": self.meta, "loss": float(self.loss), "backward_order": self.backward_order,
            "nodes": nodes,
            "gradients": [{"param": g.param, "backprop": arr(g.backprop),
                           "finite_difference": arr(g.finite_difference),
                           "abs_diff": arr(g.abs_diff)} for g in self.gradients],
            "steps": self.steps,
        }


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def _arr(x) -> np.ndarray | None:
    if x is None:
        return None
    return np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64, copy=True)


def _formula(function: type) -> str:
    """The op's rule: the first sentence of its docstring's first paragraph."""
    paragraph = (function.__doc__ or "").strip().split("\n\n")[0]
    text = " ".join(paragraph.split())
    text = text.split(". ")[0].rstrip(".")
    return text.split(" (")[0] if len(text) > 90 else text


def _local(record, values: list) -> tuple[list, list]:
    """(local derivative per input, how the gradient is formed per input) for one op."""
    op, attrs = record.op, record.attrs
    tensors = [isinstance(a, Tensor) for a in record.inputs]
    out_shape = record.shapes[1][0]
    if op == "MseLoss":  # y = Σ (x - t)² · k/2: ∂y/∂x = k (x - t), ∂y/∂t = -k (x - t)
        x, t = values
        k = 2 / np.size(x) if attrs.get("reduction", "mean") == "mean" else 2.0
        local = k * (np.asarray(x, np.float64) - np.asarray(t, np.float64))
        return [local, -local], ["g ⊙ local", "g ⊙ local"]
    if op == "Addmm" and all(tensors):  # y = x Wᵀ + b: ∂L/∂x = g W, ∂L/∂W = gᵀ x, ∂L/∂b = Σₙ g
        x, w, _ = values
        return [w, x, np.ones(out_shape)], ["g @ local", "gᵀ @ local", "Σ over the batch of g"]
    if op == "MM" and all(tensors):
        a, b = values
        if attrs.get("transpose_b"):  # y = a bᵀ: ∂L/∂a = g b, ∂L/∂b = gᵀ a
            return [b, a], ["g @ local", "gᵀ @ local"]
        if not attrs:  # y = a b: ∂L/∂a = g bᵀ, ∂L/∂b = aᵀ g
            return [b.T, a.T], ["g @ local", "local @ g"]
    if op == "Mean":
        n = attrs.get("n", 1)
        return ([np.full(np.shape(values[0]), 1.0 / n)],
                [f"broadcast g/{n} back over the averaged axes (local = 1/{n})"])
    if op == "Sum":
        return ([np.ones_like(values[0])], ["broadcast g back over the summed axes (local = 1)"])
    if op in _VIEWS:
        return [None], ["g reshaped back (the same numbers)"]
    if record.function.__module__ in _ELEMENTWISE_MODULES and not record.inplace:
        try:
            shapes = [np.shape(v) for v, t in zip(values, tensors) if t]
            if tuple(np.broadcast_shapes(*shapes)) != tuple(out_shape):
                raise ValueError
        except ValueError:
            return [None] * len(values), ["(see the op)"] * len(values)
        # the partial derivatives of an elementwise op are elementwise: differentiate the op
        # on copies broadcast to the output shape, so each entry is that element's derivative
        args = [bp.tensor(np.broadcast_to(v, out_shape).copy(), requires_grad=True) if t else v
                for v, t in zip(values, tensors)]
        with bp.enable_grad():
            out = record.function.apply(*args, **attrs)
            wanted = [a for a in args if isinstance(a, Tensor)]
            grads = bp.autograd.grad(out.sum(), wanted, allow_unused=True)
        grads = iter(grads)
        local = [(_arr(next(grads)) if t else None) for t in tensors]
        local = [np.zeros(out_shape) if (t and g is None) else g for g, t in zip(local, tensors)]
        return local, ["g ⊙ local" if t else "" for t in tensors]
    return [None] * len(values), ["(see the op's backward)" if t else "" for t in tensors]


def trace(loss_fn: Callable[[], Tensor], params: Mapping[str, Tensor],
          inputs: Mapping[str, Tensor] | None = None) -> Trace:
    """Run ``loss_fn()`` and its ``backward()`` once and record every step of the chain rule.

    Args:
        loss_fn: computes a scalar loss from ``params`` (and ``inputs``); called once here.
        params: ``{name: leaf tensor}`` whose gradients are wanted (``.grad`` is reset to None
            first and holds the backprop gradient afterwards).
        inputs: ``{name: tensor}`` names for the data tensors (``x``, ``y``) in the trace.

    Returns:
        the ``Trace`` (its ``gradients`` empty: see ``finite_differences``).
    """
    names = {id(t): n for n, t in params.items()}
    kinds = {id(t): "param" for t in params.values()}
    for n, t in (inputs or {}).items():
        names[id(t)], kinds[id(t)] = n, "input"
    for p in params.values():
        p.grad = None
    with graph.record_ops() as records:
        loss = loss_fn()
    forward = [r for r in records if r.phase == "forward"]
    leaves = {n: TraceNode(n, "param", [], _arr(t)) for n, t in params.items()}
    for n, t in (inputs or {}).items():
        leaves[n] = TraceNode(n, "input", [], _arr(t))
    ids: dict[int, str] = {id(t): names[id(t)] for t in [*params.values(),
                                                         *(inputs or {}).values()]}
    keep: list[Tensor] = []  # the recorded tensors stay alive so their ids stay unique
    nodes: list[TraceNode] = []
    by_grad_fn: dict[int, TraceNode] = {}
    for k, r in enumerate(forward):
        node_inputs, values = [], []
        for a in r.inputs:
            if isinstance(a, Tensor):
                if id(a) not in ids:  # a constant made inside loss_fn (a target, a scalar)
                    ids[id(a)] = f"c{len(ids)}"
                    leaves[ids[id(a)]] = TraceNode(ids[id(a)], "const", [], _arr(a))
                node_inputs.append(ids[id(a)])
                values.append(_arr(a))
            else:
                node_inputs.append(a)
                values.append(a)
        out = r.outputs[0]
        keep.append(out)
        node = TraceNode(f"n{k + 1}", r.op, node_inputs, _arr(out), _formula(r.function),
                         forward_index=len(nodes))
        node.local_grad, node.local_text = _local(r, values)
        ids[id(out)] = node.id
        if out.grad_fn is not None:
            by_grad_fn[id(out.grad_fn)] = node
        nodes.append(node)
    children: dict[str, list] = {}
    order: list[str] = []
    with graph.observe_backward() as events:
        loss.backward()
    for event in events:
        if event.name == "AccumulateGrad":
            leaf = event.node.variable
            name = names.get(id(leaf))
            if name is not None and name not in order:
                order.append(name)
            continue
        node = by_grad_fn.get(id(event.node))
        if node is None:
            continue
        order.append(node.id)
        node.backward_index = len(order) - 1
        node.upstream_grad = _arr(event.grad_outputs[0])
        node.grad = [_arr(g) for g in event.grad_inputs]
        for k, (src, g) in enumerate(zip(node.inputs, node.grad)):
            if isinstance(src, str) and g is not None:
                label = node.id if node.inputs.count(src) == 1 else f"{node.id} input {k + 1}"
                children.setdefault(src, []).append((label, g))
    all_nodes = [*leaves.values(), *nodes]
    for i, n in enumerate(all_nodes):
        if n.op in ("param", "input", "const"):
            n.forward_index = i - len(leaves)
        contributions = children.get(n.id, [])
        if n.op == "param":
            n.upstream_grad = _arr(params[n.id].grad)
            n.backward_index = order.index(n.id) if n.id in order else None
        shape = np.shape(n.value)
        if len(contributions) > 1 or any(np.shape(g) != shape for _, g in contributions):
            n.children = contributions
    return Trace(all_nodes, order, float(loss.item()))


def finite_differences(loss_fn: Callable[[], Tensor], params: Mapping[str, Tensor],
                       eps: float = 1e-6) -> list[GradientCheck]:
    """Every parameter's gradient by backprop (``.grad``, which must be set) beside its
    central finite-difference estimate (L(θ + ε) - L(θ - ε)) / 2ε, one entry at a time.

    The parameters must be float64 (in float32 the estimate is mostly rounding error).
    """
    checks = []
    with bp.no_grad():
        for name, p in params.items():
            if p.data.dtype != np.float64:
                raise TypeError(f"finite_differences: {name} is {p.data.dtype}; use float64 "
                                "parameters (model.double())")
            if p.grad is None:
                raise ValueError(f"finite_differences: {name} has no .grad; run backward first")
            estimate = np.zeros_like(p.data)
            flat, out = p.data.reshape(-1), estimate.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                up = float(loss_fn().item())
                flat[i] = old - eps
                down = float(loss_fn().item())
                flat[i] = old
                out[i] = (up - down) / (2 * eps)
            checks.append(GradientCheck(name, _arr(p.grad), estimate))
    return checks
