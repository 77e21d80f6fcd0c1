"""``backprop.viz``: draw the computational graph that produced a tensor.

``to_dot(tensor)`` walks the graph backwards from ``tensor.grad_fn`` through the public node
introspection (``next_functions``, ``name()``, ``output_metadata``, ``metadata``; leaves through
``AccumulateGrad.variable``) and returns Graphviz DOT text: one node per op, labelled with its
name and output shape, one node per leaf (a module parameter is labelled with its qualified
name, ``0.weight``), edges in data-flow direction (inputs to the op that consumes them).

Values and gradients: a leaf's value and ``.grad`` are known from the tensor. An intermediate
op's output value and gradient are known only if the forward and backward passes ran inside
``capture()``, which stores them (for tensors of at most ``max_values`` elements) in each node's
``metadata`` and, given the model, also which module each op ran in, so that ``to_dot`` can
group the nodes by module.

``draw(tensor, path)`` renders with Graphviz's ``dot`` program (Debian: ``apt-get install
graphviz``), which is found on PATH at call time; nothing is imported for it.

Example:
    >>> import backprop as bp
    >>> from backprop import viz
    >>> net = bp.nn.Sequential(bp.nn.Linear(2, 2), bp.nn.Sigmoid())
    >>> with viz.capture(net):
    ...     loss = net(bp.ones(1, 2)).sum()
    ...     loss.backward()
    >>> dot = viz.to_dot(loss)
    >>> "0.weight" in dot and "SigmoidBackward" in dot
    True
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from backprop.autograd.graph import observe_backward, record_ops
from backprop.tensor import Tensor

__all__ = ["GraphvizMissing", "capture", "draw", "to_dot"]

# keys this module stores in node.metadata (prefixed: the dict is the user's too)
_VALUE, _GRAD, _MODULE = "viz.value", "viz.grad", "viz.module"

INSTALL_HINT = ("Graphviz's `dot` program is not installed (or not on PATH): install it with "
                "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
                "from https://graphviz.org/download/, or write the DOT text with to_dot() and "
                "render it elsewhere")


class GraphvizMissing(RuntimeError):
    """Raised by ``draw`` when Graphviz's ``dot`` program cannot be found."""


class capture:
    """Context manager: remember each op's output value and gradient (and its module) in its
    graph node, for ``to_dot`` to show.

    Run the forward pass (and, for gradients, ``backward()``) inside it. Values are kept for
    outputs of at most ``max_values`` elements (a copy, so later in-place changes do not alter
    the picture). Given ``model``, every op is tagged with the qualified name of the innermost
    module whose ``forward`` ran it.

    Args:
        model: a ``backprop.nn.Module`` whose sub-modules should group the drawing, or None.
        max_values: the largest tensor whose values are stored.
    """

    def __init__(self, model=None, max_values: int = 16) -> None:
        self.model, self.max_values = model, max_values

    def __enter__(self) -> capture:
        self._records = record_ops()
        self.ops = self._records.__enter__()
        self._observer = observe_backward(self._on_backward)
        self._observer.__enter__()
        self._handles = []
        if self.model is not None:
            for name, module in self.model.named_modules():
                self._handles.append(module.register_forward_pre_hook(self._pre(name)))
                self._handles.append(module.register_forward_hook(self._post()))
        self._stack: list[tuple[str, int]] = []
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._observer.__exit__(*exc)
        self._records.__exit__(*exc)
        for record in self.ops:
            if record.phase != "forward":
                continue
            for out in record.outputs:
                node = out.grad_fn
                if node is not None and out.data.size <= self.max_values:
                    node.metadata.setdefault(_VALUE, np.array(out.data, copy=True))

    def _pre(self, name: str):
        def hook(module, inputs):
            self._stack.append((name, len(self.ops)))
        return hook

    def _post(self):
        def hook(module, inputs, output):
            name, start = self._stack.pop()
            for record in self.ops[start:]:  # inner modules' ops were tagged first
                for out in record.outputs:
                    if out.grad_fn is not None and name:
                        out.grad_fn.metadata.setdefault(_MODULE, (name, type(module).__name__))
        return hook

    def _on_backward(self, event) -> None:
        node = event.node
        if event.name == "AccumulateGrad" or not event.grad_outputs:
            return
        grad = event.grad_outputs[0]
        if grad is not None and np.size(_array(grad)) <= self.max_values:
            stored = node.metadata.get(_GRAD)
            value = np.array(_array(grad), copy=True)
            node.metadata[_GRAD] = value if stored is None else stored + value


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _fmt(values: np.ndarray) -> str:
    text = np.array2string(np.asarray(values, dtype=np.float64), precision=4,
                           suppress_small=True, separator=", ", max_line_width=64)
    # one label line per printed line: wide arrays wrap instead of stretching the node
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape) -> str:
    return str(tuple(int(n) for n in shape))


def _walk(root_node) -> list:
    """Every node reachable from ``root_node``, each once, in the order first reached
    (iterative: deep graphs must not hit the recursion limit)."""
    seen, order, stack = {id(root_node)}, [root_node], [root_node]
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is not None and id(nxt) not in seen:
                seen.add(id(nxt))
                order.append(nxt)
                stack.append(nxt)
    return order


def to_dot(tensor: Tensor, params: Mapping[str, Tensor] | None = None, *,
           show_values: bool = True, max_values: int = 16, group_modules: bool = True,
           rankdir: str = "TB") -> str:
    """Graphviz DOT text of the graph that produced ``tensor``.

    Args:
        tensor: the result (a loss, usually); it must have a ``grad_fn`` or require grad.
        params: ``{name: tensor}`` labels for leaves (``dict(model.named_parameters())``, as
            torchviz takes); overrides the qualified names module registration records.
        show_values: print values and gradients of tensors of at most ``max_values`` elements
            (leaves always; ops when the passes ran inside ``capture()``).
        max_values: see ``show_values``.
        group_modules: draw the ops of each module in a box named after it (ops tagged by
            ``capture(model)``; a parameter's leaf goes with the module that owns it).
        rankdir: Graphviz's layout direction (``"TB"`` top to bottom, ``"LR"``).

    Returns:
        the DOT text: ``digraph backprop { ... }``. Node ids are ``n0, n1, ...`` with ``n0`` the
        node of ``tensor`` itself; each node's ``label`` starts with the op's backward name
        (``MulBackward``) or, for a leaf, its name (or ``leaf``); edges go from input to
        consumer.

    Raises:
        ValueError: ``tensor`` is not a Tensor or has no graph (``requires_grad=False``).
    """
    if not isinstance(tensor, Tensor):
        raise ValueError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    names = {id(t): n for n, t in (params or {}).items()}
    root = tensor.grad_fn
    if root is None:
        if not tensor.requires_grad:
            raise ValueError("to_dot: the tensor has no graph (it does not require grad); "
                             "compute it from tensors with requires_grad=True")
        nodes = []
    else:
        nodes = _walk(root)
    ids = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    lines = ["digraph backprop {", f"  rankdir={rankdir};", '  fontname="Helvetica";',
             '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", '
             'fillcolor="#eef3fb"];', '  edge [color="#555555"];']
    clusters: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    body: list[str] = []

    def small(a) -> bool:
        return show_values and a is not None and np.size(a) <= max_values

    def leaf_line(node_id: str, leaf: Tensor | None) -> str:
        if leaf is None:
            return f'  {node_id} [label="leaf (freed)", fillcolor="#dddddd"];'
        name = names.get(id(leaf)) or getattr(leaf, "qualified_name", None) or "leaf"
        parts = [name, _shape(leaf.data.shape) + " " + str(leaf.data.dtype)]
        if small(leaf.data):
            parts.append("value " + _fmt(leaf.data))
        if leaf.grad is not None and small(leaf.grad.data):
            parts.append("grad " + _fmt(leaf.grad.data))
        line = f'  {node_id} [label={_quote(chr(10).join(parts))}, fillcolor="#fdf1d6"];'
        owner = name.rpartition(".")[0]
        if group_modules and owner:
            clusters.setdefault(owner, []).append(line)
            return ""
        return line

    if root is None:
        body.append(leaf_line("n0", tensor))
    for node in nodes:
        nid = ids[id(node)]
        if node.name() == "AccumulateGrad":
            line = leaf_line(nid, node.variable)
            if line:
                body.append(line)
            continue
        meta = node.metadata
        out = node.output_metadata
        parts = [node.name(), ", ".join(_shape(m.shape) for m in out)]
        if node is root and small(tensor.data):
            parts.append("value " + _fmt(tensor.data))
        elif small(meta.get(_VALUE)):
            parts.append("value " + _fmt(meta[_VALUE]))
        if small(meta.get(_GRAD)):
            parts.append("grad " + _fmt(meta[_GRAD]))
        extra = ', fillcolor="#d9f2d9", penwidth=2' if node is root else ""
        line = f"  {nid} [label={_quote(chr(10).join(parts))}{extra}];"
        module = meta.get(_MODULE)
        if group_modules and module:
            clusters.setdefault(module[0], []).append(line)
            titles[module[0]] = f"{module[0]} ({module[1]})"
        else:
            body.append(line)
    for k, (module, members) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{k} {{")
        lines.append(f"    label={_quote(titles.get(module, module))}; "
                     'style="rounded,dashed"; color="#7a8fb5";')
        lines.extend("  " + m for m in members)
        lines.append("  }")
    lines.extend(body)
    for node in nodes:
        for nxt, _ in node.next_functions:
            if nxt is not None:
                lines.append(f"  {ids[id(nxt)]} -> {ids[id(node)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(tensor: Tensor, path: str | os.PathLike, params: Mapping[str, Tensor] | None = None,
         **kwargs) -> Path:
    """Render ``to_dot(tensor, params, **kwargs)`` to ``path`` with Graphviz's ``dot``.

    The format comes from the suffix: ``.svg``, ``.png``, ``.pdf``, or ``.dot`` (the text, no
    Graphviz needed).

    Returns:
        the path written.

    Raises:
        GraphvizMissing: ``dot`` is not installed (the message says how to install it).
        ValueError: an unsupported suffix.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png", "pdf", "dot", "gv"):
        raise ValueError(f"draw: cannot tell the format from {str(path)!r}: use a .svg, .png, "
                         ".pdf or .dot file name")
    text = to_dot(tensor, params, **kwargs)
    if fmt in ("dot", "gv"):
        path.write_text(text)
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(INSTALL_HINT)
    result = subprocess.run([dot, f"-T{fmt}", "-Gdpi=110" if fmt == "png" else "-Gdpi=72",
                             "-o", str(path)], input=text.encode(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"draw: dot failed on {path}: {result.stderr.decode().strip()}")
    return path
