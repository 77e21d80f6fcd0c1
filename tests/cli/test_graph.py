"""``backprop graph``: one training step's graph of a built-in model, drawn."""

import shutil

import pytest

from tests.cli.helpers import one_error, run


def test_graph_writes_dot_text_with_parameter_names(capsys, tmp_path):
    status, out, err = run(capsys, "graph", "--model", "mlp", "--hidden", "8",
                           "--out", tmp_path / "g.dot")
    assert status == 0, err
    text = (tmp_path / "g.dot").read_text()
    assert text.startswith("digraph")
    for name in ("1.weight", "1.bias", "4.weight", "CrossEntropyBackward", "(8, 64) float32"):
        assert name in text
    assert "wrote" in out and "loss" in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("model", ["cnn", "lstm"])
def test_graph_renders_svg_of_each_model(capsys, tmp_path, model):
    status, _, err = run(capsys, "graph", "--model", model, "--out", tmp_path / "g.svg")
    assert status == 0, err
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg
    assert ("ConvBackward" if model == "cnn" else "LSTMLayerBackward") in svg
    assert "fc.weight" in svg or "11.weight" in svg


def test_graph_refuses_unknown_suffix(capsys, tmp_path):
    status, _, err = run(capsys, "graph", "--out", tmp_path / "g.jpeg")
    one_error(status, err, 2, ".svg, .png")


def test_graph_without_graphviz_is_one_error_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    status, _, err = run(capsys, "graph", "--out", tmp_path / "g.svg")
    one_error(status, err, 1, "apt-get install graphviz")
