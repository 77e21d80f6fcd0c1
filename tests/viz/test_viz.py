"""backprop.viz: the DOT text parsed back (pydot) has the nodes, names and edges of a known
graph; parameters carry their qualified names; rendering needs Graphviz and says so."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import viz

pydot = pytest.importorskip("pydot", reason="the DOT tests parse with pydot: pip install pydot")
# pydot's parser calls pyparsing's old names
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed: apt-get install graphviz")


def parse(dot_text: str):
    """{node id: label lines} and the set of (source label, target label) edges."""
    (graph,) = pydot.graph_from_dot_data(dot_text)
    nodes = {}
    for g in [graph, *graph.get_subgraphs()]:
        for node in g.get_nodes():
            label = node.get("label")
            if label is not None:
                nodes[node.get_name()] = label.strip('"').split("\\n")
    edges = {(nodes[e.get_source()][0], nodes[e.get_destination()][0])
             for e in graph.get_edges()}
    return nodes, edges, graph


def test_known_graph_nodes_names_and_edges():
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    b = bp.tensor([3.0, 4.0], requires_grad=True)
    y = (a * b + a).sum()
    nodes, edges, _ = parse(viz.to_dot(y, params={"a": a, "b": b}))
    heads = sorted(label[0] for label in nodes.values())
    assert heads == ["AddBackward", "MulBackward", "SumBackward", "a", "b"]
    assert edges == {("a", "MulBackward"), ("b", "MulBackward"), ("MulBackward", "AddBackward"),
                     ("a", "AddBackward"), ("AddBackward", "SumBackward")}
    # the root is n0, the output shape is on the second line
    assert nodes["n0"][:2] == ["SumBackward", "()"]


def test_parameters_are_named_by_registration_alone():
    net = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.Tanh(), bp.nn.Linear(4, 2))
    loss = net(bp.randn(5, 3)).pow(2).mean()
    nodes, edges, _ = parse(viz.to_dot(loss))
    heads = {label[0] for label in nodes.values()}
    assert {"0.weight", "0.bias", "2.weight", "2.bias"} <= heads
    # a linear layer is one node, as in PyTorch's graphs
    assert {("2.weight", "AddmmBackward"), ("2.bias", "AddmmBackward"),
            ("TanhBackward", "AddmmBackward")} <= edges


def test_nested_model_names_and_params_override():
    class Net(bp.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = bp.nn.Linear(2, 3)
            self.head = bp.nn.Sequential(bp.nn.ReLU(), bp.nn.Linear(3, 1))

        def forward(self, x):
            return self.head(self.fc1(x))

    net = Net()
    assert [p.qualified_name for p in net.parameters()] == \
        ["fc1.weight", "fc1.bias", "head.1.weight", "head.1.bias"]
    out = net(bp.randn(4, 2)).sum()
    heads = {label[0] for label in parse(viz.to_dot(out))[0].values()}
    assert {"fc1.weight", "head.1.bias"} <= heads
    heads = {label[0] for label in parse(viz.to_dot(out, params={"W": net.fc1.weight}))[0]
             .values()}
    assert "W" in heads and "fc1.weight" not in heads


def test_values_and_gradients_after_backward_in_capture():
    x = bp.tensor([0.5, -1.0], requires_grad=True)
    with viz.capture():
        h = bp.tanh(x)
        y = (h * 3.0).sum()
        y.backward()
    nodes, _, _ = parse(viz.to_dot(y, params={"x": x}))
    by_head = {label[0]: label for label in nodes.values()}
    tanh = by_head["TanhBackward"]
    values = np.tanh([0.5, -1.0])
    assert tanh[2] == "value " + np.array2string(values, precision=4, separator=", ")
    assert tanh[3] == "grad [3., 3.]"  # d(3 sum h)/dh
    grad_line = by_head["x"][3]
    expected = 3 * (1 - values ** 2)
    shown = np.array(eval(grad_line.removeprefix("grad ")))
    np.testing.assert_allclose(shown, expected, atol=1e-4)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_modules_group_their_ops():
    net = bp.nn.Sequential(bp.nn.Linear(2, 2), bp.nn.Sigmoid())
    with viz.capture(net):
        loss = net(bp.ones(1, 2)).sum()
    _, _, graph = parse(viz.to_dot(loss))
    clusters = {s.get("label").strip('"'): s for s in graph.get_subgraphs()}
    assert set(clusters) == {"0 (Linear)", "1 (Sigmoid)"}
    inside = {n.get("label").strip('"').split("\\n")[0]
              for n in clusters["0 (Linear)"].get_nodes() if n.get("label")}
    assert inside == {"AddmmBackward", "0.weight", "0.bias"}
    flat = viz.to_dot(loss, group_modules=False)
    assert "subgraph" not in flat


def test_deep_chain_does_not_recurse():
    x = bp.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    dot = viz.to_dot(y, show_values=False)
    assert dot.count("MulBackward") == 5000


def test_refuses_a_tensor_without_graph():
    with pytest.raises(ValueError, match="does not require grad"):
        viz.to_dot(bp.ones(3))


@needs_dot
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_draw_renders_with_dot(tmp_path, suffix):
    w = bp.nn.Parameter(bp.randn(2, 2))
    path = viz.draw((w * w).sum(), tmp_path / f"g{suffix}", params={"w": w})
    data = path.read_bytes()
    if suffix == ".svg":
        assert b"<svg" in data and b">w</text>" in data and b"MulBackward" in data
    else:
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_draw_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x = bp.tensor([1.0], requires_grad=True)
    with pytest.raises(viz.GraphvizMissing, match="apt-get install graphviz"):
        viz.draw(x * 2, tmp_path / "g.svg")
    assert viz.draw(x * 2, tmp_path / "g.dot").read_text().startswith("digraph")


def test_viz_loads_lazily_as_an_attribute():
    code = ("import sys, backprop as bp\n"
            "print('backprop.viz' in sys.modules, 'backprop.diagnostics' in sys.modules)\n"
            "print(bp.viz.to_dot.__module__, bp.diagnostics.__name__, 'viz' in dir(bp))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "backprop.viz", "backprop.diagnostics", "True"]
