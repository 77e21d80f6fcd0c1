"""The chain-rule trace: its numbers are the engine's (.grad after backward), each product is
upstream x local, fan-out sums are shown, and the finite differences agree."""

import json

import numpy as np
import pytest

import backprop as bp
from backprop.diagnostics.explain import build_network, explain, render
from backprop.diagnostics.trace import finite_differences, trace
from tests.cli.helpers import one_error, run

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float64)


def test_trace_gradients_equal_grad_after_backward_and_finite_differences():
    t = explain(XOR_X, XOR_Y)
    # an independent run of the same network: its .grad after a plain backward()
    model = build_network(2, (2,), 1, "sigmoid", seed=0)
    loss = bp.nn.functional.mse_loss(model(bp.tensor(XOR_X)), bp.tensor(XOR_Y))
    loss.backward()
    assert t.loss == pytest.approx(loss.item(), abs=1e-15)
    named = dict(model.named_parameters())
    assert [g.param for g in t.gradients] == list(named)
    for g in t.gradients:
        np.testing.assert_array_equal(g.backprop, named[g.param].grad.numpy())
        np.testing.assert_allclose(g.finite_difference, g.backprop, atol=1e-8)
        assert g.abs_diff.max() < 1e-8
        assert t.node(g.param).upstream_grad.tolist() == g.backprop.tolist()


def test_each_elementwise_product_is_upstream_times_local():
    t = explain(XOR_X, XOR_Y, hidden=(3,), activation="tanh")
    checked = 0
    for n in t.nodes:
        if n.op in ("Sigmoid", "Tanh", "Sub", "Mul", "Add", "MseLoss"):
            for local, grad in zip(n.local_grad, n.grad):
                if local is not None and grad is not None:
                    np.testing.assert_allclose(n.upstream_grad * local, grad, rtol=1e-12)
                    checked += 1
        if n.op == "Addmm":  # linear: x Wᵀ + b, so ∂L/∂x = g W, ∂L/∂W = gᵀ x, ∂L/∂b = Σₙ g
            if n.grad[0] is not None:  # the first layer's input x needs no gradient
                np.testing.assert_allclose(n.upstream_grad @ n.local_grad[0], n.grad[0])
                checked += 1
            np.testing.assert_allclose(n.upstream_grad.T @ n.local_grad[1], n.grad[1])
            np.testing.assert_allclose((n.upstream_grad * n.local_grad[2]).sum(0), n.grad[2])
            checked += 2
    assert checked >= 8


def test_fan_out_gradient_is_the_sum_of_the_children():
    a = bp.tensor([0.5, -2.0], dtype=bp.float64, requires_grad=True)

    def loss_fn():
        h = bp.tanh(a)
        return (h * 3.0 + h * h).sum()  # h feeds three inputs

    t = trace(loss_fn, {"a": a})
    h = t.node("n1")
    assert h.op == "Tanh"
    assert len(h.children) == 3
    np.testing.assert_allclose(sum(g for _, g in h.children), h.upstream_grad)
    tanh = np.tanh([0.5, -2.0])
    np.testing.assert_allclose(h.upstream_grad, 3 + 2 * tanh)
    assert t.backward_order.index("n1") > max(t.backward_order.index(c.split()[0])
                                              for c, _ in h.children)
    (check,) = finite_differences(loss_fn, {"a": a})
    np.testing.assert_allclose(check.finite_difference, (3 + 2 * tanh) * (1 - tanh ** 2),
                               atol=1e-8)


def test_finite_differences_catch_a_wrong_gradient():
    a = bp.tensor([1.0, 2.0], dtype=bp.float64, requires_grad=True)
    (a * a).sum().backward()
    a.grad = a.grad * 1.01  # a wrong gradient must show up as a difference
    (check,) = finite_differences(lambda: (a * a).sum(), {"a": a})
    assert check.abs_diff.max() > 1e-3


def test_text_element_level_and_finite_difference_heading():
    text = render(explain(XOR_X, XOR_Y, meta={"dataset": "xor"}))
    assert "Backward pass" in text and "finite differences" in text
    assert "∂L/∂0.weight[1,0] =" in text  # every scalar at 9 parameters
    assert text.index("[1] n5") < text.index("[2] n4")  # the order backprop visits them
    assert "n5 = MseLoss(n4, y)" in text and "∂L/∂n4[3,0] = 1 × " in text
    assert "∂L/∂0.bias[1] = " in text  # a bias: the sum over the batch, term by term
    tensor_level = render(explain(XOR_X, XOR_Y, hidden=(8, 8)))
    assert "∂L/∂0.weight[1,0] =" not in tensor_level and "norm" in tensor_level
    md = render(explain(XOR_X, XOR_Y), "markdown")
    assert md.startswith("# backprop explain") and "| 0.weight[0,0] |" in md


def test_cli_json_has_the_documented_shape(capsys):
    status, out, err = run(capsys, "explain", "--format", "json")
    assert status == 0, err
    doc = json.loads(out)
    node = doc["nodes"][-1]
    for key in ("id", "op", "inputs", "value", "local_grad", "upstream_grad", "grad"):
        assert key in node
    assert {g["param"] for g in doc["gradients"]} == {"0.weight", "0.bias", "2.weight",
                                                      "2.bias"}
    for g in doc["gradients"]:
        assert set(g) == {"param", "backprop", "finite_difference", "abs_diff"}
        np.testing.assert_allclose(g["backprop"], g["finite_difference"], atol=1e-8)
    assert isinstance(doc["loss"], float)


def test_cli_flags_config_and_demo_alias(capsys, tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text('hidden = "4,3"\nactivation = "tanh"\nformat = "markdown"\n')
    status, out, err = run(capsys, "explain", "--config", cfg, "--level", "tensor")
    assert status == 0, err
    assert "2-4-3-1 network (tanh" in out and out.startswith("# ")
    status, out, _ = run(capsys, "demo", "--dataset", "digits", "--hidden", "3",
                         "--samples", "2")
    assert status == 0 and "64-3-10 network" in out and "finite differences" in out


def test_cli_refuses_bad_hidden_sizes(capsys):
    status, _, err = run(capsys, "explain", "--hidden", "2,x")
    one_error(status, err, 2, "--hidden")
