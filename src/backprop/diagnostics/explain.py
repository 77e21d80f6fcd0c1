"""``backprop explain``: one small network's forward and backward pass, printed step by step.

``explain(x, y)`` builds an MLP (by default 2-2-1 with sigmoids, the classic XOR network) in
float64, traces one forward and one backward pass of its mean squared error (``trace``), checks
every weight's gradient against central finite differences and, for the page, records a few
gradient-descent snapshots. ``render(trace, "text"|"markdown")`` prints it: element by element
(every scalar) for networks of at most 50 parameters, tensor by tensor above.

Example:
    >>> import numpy as np
    >>> from backprop.diagnostics.explain import explain, render
    >>> x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    >>> t = explain(x, np.array([[0.0], [1], [1], [0]]))
    >>> max(float(g.abs_diff.max()) for g in t.gradients) < 1e-8
    True
    >>> "finite differences" in render(t)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import backprop as bp
from backprop import nn
from backprop.diagnostics.trace import Trace, TraceNode, finite_differences, trace

__all__ = ["ACTIVATIONS", "ELEMENT_LEVEL_MAX", "build_network", "explain", "node_lines",
           "render"]

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
               "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU}
ELEMENT_LEVEL_MAX = 50  # parameters: above this, tensor-level output
FD_EPS = 1e-6


def build_network(n_in: int, hidden: Sequence[int], n_out: int, activation: str = "sigmoid",
                  seed: int = 0) -> nn.Sequential:
    """Linear layers with ``activation`` between them and a sigmoid on the output, float64.

    Shapes: (N, n_in) -> (N, n_out), outputs in (0, 1) to match 0/1 (one-hot) targets.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"explain: unknown activation {activation!r}; choose from "
                         f"{', '.join(ACTIVATIONS)}")
    bp.manual_seed(seed)
    sizes = [n_in, *hidden, n_out]
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        last = k == len(sizes) - 2
        layers.append(nn.Sigmoid() if last else ACTIVATIONS[activation]())
    return nn.Sequential(*layers).double()


def _descent(model: nn.Module, x, y, lr: float, snapshots: Sequence[int]) -> list[dict]:
    """Full-batch gradient descent on a copy's parameters: ``{"step", "loss", "params",
    "grads", "output"}`` at each step in ``snapshots`` (step 0 is before any update)."""
    params = dict(model.named_parameters())
    saved = {n: p.data.copy() for n, p in params.items()}
    out, last = [], max(snapshots, default=0)
    for step in range(last + 1):
        for p in params.values():
            p.grad = None
        pred = model(x)
        loss = nn.functional.mse_loss(pred, y)
        loss.backward()
        if step in snapshots:
            out.append({"step": step, "loss": float(loss.item()),
                        "params": {n: p.data.tolist() for n, p in params.items()},
                        "grads": {n: p.grad.data.tolist() for n, p in params.items()},
                        "output": pred.data.tolist()})
        with bp.no_grad():
            for p in params.values():
                p.sub_(p.grad, alpha=lr)
    with bp.no_grad():
        for n, p in params.items():
            p.data[...] = saved[n]
            p.grad = None
    return out


def explain(x: np.ndarray, y: np.ndarray, hidden: Sequence[int] = (2,),
            activation: str = "sigmoid", seed: int = 0, *, lr: float = 2.0,
            snapshots: Sequence[int] = (), meta: dict | None = None) -> Trace:
    """Trace one forward and backward pass of an MLP's mean squared error on (x, y).

    Args:
        x: inputs (N, F).
        y: targets (N, K) in [0, 1] (one-hot for classes).
        hidden: the hidden layer sizes.
        activation: the hidden layers' activation (a key of ``ACTIVATIONS``).
        seed: the seed of the initial weights.
        lr, snapshots: gradient-descent steps recorded in ``trace.steps`` (none by default).
        meta: extra description stored in ``trace.meta``.

    Returns:
        the ``Trace`` with ``gradients`` (backprop beside finite differences, float64).
    """
    x64 = bp.tensor(np.asarray(x, dtype=np.float64))
    y64 = bp.tensor(np.asarray(y, dtype=np.float64))
    if x64.ndim != 2 or y64.ndim != 2 or len(x64) != len(y64):
        raise ValueError(f"explain: x must be (N, F) and y (N, K) with the same N; got "
                         f"{x64.shape} and {y64.shape}")
    model = build_network(x64.shape[1], hidden, y64.shape[1], activation, seed)
    params = dict(model.named_parameters())

    def loss_fn():
        return nn.functional.mse_loss(model(x64), y64)

    result = trace(loss_fn, params, {"x": x64, "y": y64})
    result.gradients = finite_differences(loss_fn, params, eps=FD_EPS)
    n_params = sum(p.data.size for p in params.values())
    sizes = "-".join(map(str, [x64.shape[1], *hidden, y64.shape[1]]))
    result.meta = {"network": sizes, "activation": activation, "output": "sigmoid",
                   "loss": "mse", "samples": len(x64), "parameters": n_params, "seed": seed,
                   "fd_eps": FD_EPS, **(meta or {})}
    if snapshots:
        result.steps = _descent(model, x64, y64, lr, sorted(set(snapshots)))
        result.meta["lr"] = lr
    return result


# --- rendering ---------------------------------------------------------------------------
def _num(v) -> str:
    return f"{float(v):.6g}"


def _arr(a, limit: int | None = None) -> str:
    a = np.asarray(a, dtype=np.float64)
    if limit is not None and a.size > limit:
        head = ", ".join(_num(v) for v in a.reshape(-1)[:limit])
        return f"[{head}, ...] (norm {np.linalg.norm(a):.4g})"
    text = np.array2string(a, precision=4, suppress_small=False, separator=", ",
                           max_line_width=10_000, floatmode="maxprec")
    return " ".join(text.split())


def _idx(index: tuple) -> str:
    return "[" + ",".join(map(str, index)) + "]" if index else ""


def _call(node: TraceNode) -> str:
    args = ", ".join(str(i) if isinstance(i, str) else _num(i) for i in node.inputs)
    return f"{node.id} = {node.op}({args})"


def _element_lines(node: TraceNode, k: int, src, local, grad, text: str) -> list[str]:
    """Each entry of the gradient ``node`` passes to input ``k``: upstream x local = grad."""
    g = np.asarray(node.upstream_grad)
    lines = []
    if text.startswith("Σ over the batch"):  # Addmm's bias: ∂L/∂b[j] = Σ_n g[n,j]
        for (j,) in np.ndindex(np.shape(grad)):
            expansion = " + ".join(_num(v) for v in g[:, j])
            lines.append(f"      ∂L/∂{src}[{j}] = {expansion} = {_num(grad[j])}")
        return lines
    if node.op in ("MM", "Addmm") and local is not None:
        a_side = text.startswith("g @")
        for index in np.ndindex(np.shape(grad)):
            if a_side:  # ∂L/∂A[n,j] = Σ_i g[n,i] local[i,j]
                n, j = index
                terms = [(g[n, i], local[i, j]) for i in range(g.shape[1])]
            else:  # ∂L/∂B[i,j] = Σ_n g[n,i] local[n,j]
                i, j = index
                terms = [(g[n, i], local[n, j]) for n in range(g.shape[0])]
            expansion = " + ".join(f"{_num(a)}·{_num(b)}" for a, b in terms)
            lines.append(f"      ∂L/∂{src}{_idx(index)} = {expansion} = {_num(grad[index])}")
        return lines
    if local is None:
        return [f"      ∂L/∂{src} = {_arr(grad)}"]
    local = np.broadcast_to(local, np.shape(grad))
    gb = np.broadcast_to(g, np.shape(grad))
    for index in np.ndindex(np.shape(grad)):
        lines.append(f"      ∂L/∂{src}{_idx(index)} = {_num(gb[index])} × "
                     f"{_num(local[index])} = {_num(grad[index])}")
    return lines


def _children_lines(node: TraceNode, element: bool) -> list[str]:
    if not node.children:
        return []
    target = np.asarray(node.upstream_grad)
    if len(node.children) == 1:
        (consumer, g), = node.children
        axes = np.asarray(g).ndim - target.ndim
        return [f"      {node.id} was broadcast over {np.shape(g)[:axes] or 'rows'} in {consumer}:"
                f" its gradient is the sum over them: {_arr(np.asarray(g), None if element else 6)}"
                f" summed -> {_arr(target)}"]
    parts = " + ".join(f"{_arr(g, None if element else 6)} (from {c})" for c, g in node.children)
    return [f"      {node.id} feeds {len(node.children)} consumers, so ∂L/∂{node.id} is their sum"
            f" (computed once, then reused): {parts} = {_arr(target, None if element else 6)}"]


def node_lines(n: TraceNode, step: int, element: bool = True) -> list[str]:
    """The chain-rule expansion of one node of the backward pass (step ``step``)."""
    limit = None if element else 6
    out: list[str] = []
    if n.op == "param":
        out.append(f"[{step}] {n.id}: the gradient is complete; backprop stores it in "
                   f"{n.id}.grad = {_arr(n.upstream_grad, limit)}")
        out.extend(_children_lines(n, element))
        return out
    out.append(f"[{step}] {_call(n)}    rule: {n.formula}")
    out.extend(_children_lines(n, element))
    out.append(f"    upstream ∂L/∂{n.id} = {_arr(n.upstream_grad, limit)}")
    for k, src in enumerate(n.inputs):
        if not isinstance(src, str) or k >= len(n.grad) or n.grad[k] is None:
            continue
        local = n.local_grad[k] if k < len(n.local_grad) else None
        text = n.local_text[k] if k < len(n.local_text) else ""
        which = f" (as input {k + 1})" if n.inputs.count(src) > 1 else ""
        if local is not None:
            out.append(f"    to {src}{which}: local ∂{n.id}/∂{src} = "
                       f"{_arr(local, limit)}  ({text})")
        else:
            out.append(f"    to {src}{which}: {text}")
        if element:
            out.extend(_element_lines(n, k, src, local, np.asarray(n.grad[k]), text))
        else:
            g = np.asarray(n.grad[k])
            out.append(f"      ∂L/∂{src} {tuple(g.shape)}, norm {np.linalg.norm(g):.4g}: "
                       f"{_arr(g, limit)}")
    return out


def render(t: Trace, fmt: str = "text", level: str = "auto") -> str:
    """The trace for people: ``fmt`` ``"text"`` or ``"markdown"``; ``level`` ``"element"``
    (every scalar), ``"tensor"`` (shapes, norms, a few entries) or ``"auto"`` (element for at
    most ``ELEMENT_LEVEL_MAX`` parameters)."""
    if fmt not in ("text", "markdown"):
        raise ValueError(f"render: fmt must be 'text' or 'markdown', got {fmt!r}")
    if level not in ("auto", "element", "tensor"):
        raise ValueError(f"render: level must be auto, element or tensor, got {level!r}")
    md = fmt == "markdown"
    n_params = sum(n.value.size for n in t.nodes if n.op == "param")
    element = level == "element" or (level == "auto" and n_params <= ELEMENT_LEVEL_MAX)
    limit = None if element else 6
    m = t.meta
    head = (f"a {m.get('network', '?')} network ({m.get('activation', '?')} hidden units, "
            f"sigmoid output) on {m.get('dataset', 'the data')}: {m.get('samples', '?')} "
            f"samples, {n_params} parameters, mean squared error, seed {m.get('seed', 0)}")
    out: list[str] = []

    def heading(text: str) -> None:
        out.append("")
        out.append(f"## {text}" if md else text)
        out.append("" if md else "-" * len(text))

    out.append(f"# backprop explain: {head}" if md else f"backprop explain: {head}")
    if md:
        out.append("")
        out.append("```text")
    heading("Forward pass: each value computed from its inputs") if not md else \
        out.append("Forward pass: each value computed from its inputs")
    for n in t.nodes:
        shape = str(tuple(np.shape(n.value)))
        if n.op in ("param", "input", "const"):
            out.append(f"  {n.id:10s} {n.op:6s} {shape:8s} {_arr(n.value, limit)}")
        else:
            out.append(f"  {_call(n):32s} {shape:8s} {_arr(n.value, limit)}")
    out.append(f"  loss = {t.nodes[-1].id} = {_num(t.loss)}")
    out.append("")
    out.append("Backward pass: the chain rule node by node, in the order backprop visits them")
    out.append("  upstream = ∂L/∂(this node's output), arriving from the nodes that use it;")
    out.append("  each input receives upstream × local derivative (a sum over the matrix "
               "dimension for MM and Addmm)")
    for step, node_id in enumerate(t.backward_order, 1):
        out.append("")
        out.extend(node_lines(t.node(node_id), step, element))
    if md:
        out.append("```")
    eps = m.get("fd_eps", FD_EPS)
    heading(f"Check: backprop's gradients beside central finite differences "
            f"(float64, ε = {eps:g})")
    if md:
        out.append("| parameter | backprop | finite difference | abs diff |")
        out.append("| --- | --- | --- | --- |")
    worst = 0.0
    for g in t.gradients:
        worst = max(worst, float(g.abs_diff.max(initial=0.0)))
        rows = (np.ndindex(g.backprop.shape) if element else [None])
        for index in rows:
            if index is None:
                name = f"{g.param} {tuple(g.backprop.shape)}"
                cells = (f"norm {np.linalg.norm(g.backprop):.6g}",
                         f"norm {np.linalg.norm(g.finite_difference):.6g}",
                         f"max {g.abs_diff.max(initial=0.0):.2e}")
            else:
                name = f"{g.param}{_idx(index)}"
                cells = (f"{g.backprop[index]: .10f}", f"{g.finite_difference[index]: .10f}",
                         f"{g.abs_diff[index]:.2e}")
            if md:
                out.append(f"| {name} | " + " | ".join(cells) + " |")
            else:
                out.append(f"  {name:16s} backprop {cells[0]}   finite difference {cells[1]}"
                           f"   |diff| {cells[2]}")
    out.append("")
    n_evals = 2 * n_params
    out.append(f"largest |backprop - finite difference|: {worst:.2e}. Finite differences took "
               f"{n_evals} forward passes (two per parameter); backprop took one forward and "
               "one backward pass.")
    return "\n".join(out) + "\n"
