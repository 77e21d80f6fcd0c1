"""The interactive page of ``backprop explain --html PAGE.html``.

One self-contained HTML file (inline SVG, CSS and JavaScript; nothing fetched) that embeds the
JSON trace as ``<script type="application/json" id="trace">`` and lets a learner step through
the forward pass and then the backward pass node by node (Back/Next, ArrowLeft/ArrowRight),
click a node for its full chain-rule expansion, read the finite-difference check per weight,
and step through recorded gradient-descent snapshots while the loss falls.

The URL fragment sets the state (``#step=12&sample=1&node=n3&descent=4``) and ``#selftest``
makes the page drive its own buttons and keys and write what it showed into
``<pre id="selftest-result">``: the browser test reads that with headless Chromium.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from backprop.diagnostics.explain import node_lines
from backprop.diagnostics.trace import Trace

__all__ = ["page_html", "write_page"]


def page_html(t: Trace) -> str:
    """The page's HTML text for trace ``t`` (with its gradient-descent ``steps`` if any)."""
    doc = t.to_json()
    n_params = sum(n.value.size for n in t.nodes if n.op == "param")
    element = n_params <= 50
    for node, entry in zip(t.nodes, doc["nodes"]):
        if node.backward_index is not None:
            entry["explain"] = "\n".join(node_lines(node, node.backward_index + 1, element))
    data = json.dumps(doc, allow_nan=True).replace("</", "<\\/")
    template = resources.files("backprop.diagnostics").joinpath("page_template.html")
    html = template.read_text(encoding="utf-8")
    title = (f"Backpropagation step by step: a {t.meta.get('network')} "
             f"{t.meta.get('activation')} network on {t.meta.get('dataset', 'data')}")
    return html.replace("__TITLE__", title).replace("__TRACE__", data)


def write_page(t: Trace, path: str | os.PathLike) -> Path:
    """Write ``page_html(t)`` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(page_html(t), encoding="utf-8")
    return path
