"""Feedback alignment: the backward pass uses B, the weights' own gradients are backprop's, and
the forward weights come to align with B during training."""

import numpy as np
import pytest

import backprop as bp
from backprop import rules
from backprop.autograd import GradcheckError, gradcheck


def _mlp(seed=0):
    bp.manual_seed(seed)
    return bp.nn.Sequential(bp.nn.Linear(5, 7), bp.nn.Tanh(), bp.nn.Linear(7, 6), bp.nn.ReLU(),
                            bp.nn.Linear(6, 3)).double()


def _grads(model, x, y):
    model.zero_grad()
    bp.nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.data.copy() for p in model.parameters()]


def test_fa_with_b_set_to_the_transposed_weights_reproduces_backprop_exactly(rng):
    net = _mlp()
    fa = rules.feedback_alignment(net)
    for layer in fa:
        if isinstance(layer, rules.FALinear):
            layer.feedback_weight = bp.tensor(layer.weight.data.T.copy())
    x = bp.tensor(rng.standard_normal((8, 5)))
    y = bp.tensor(rng.integers(0, 3, 8))
    for g_bp, g_fa in zip(_grads(net, x, y), _grads(fa, x, y)):
        np.testing.assert_array_equal(g_fa, g_bp)


def test_fa_conv_with_b_set_to_the_weights_reproduces_backprop_exactly(rng):
    bp.manual_seed(0)
    net = bp.nn.Sequential(bp.nn.Conv2d(2, 3, 3, stride=2, padding=1), bp.nn.ReLU(),
                           bp.nn.Conv2d(3, 4, 2, padding="same"), bp.nn.Flatten(),
                           bp.nn.Linear(64, 3)).double()
    fa = rules.feedback_alignment(net)
    assert [type(m).__name__ for m in fa] == ["FAConv2d", "ReLU", "FAConv2d", "Flatten",
                                              "FALinear"]
    for layer in fa:
        if isinstance(layer, rules.FAConv2d):
            layer.feedback_weight = bp.tensor(layer.weight.data.copy())
        elif isinstance(layer, rules.FALinear):
            layer.feedback_weight = bp.tensor(layer.weight.data.T.copy())
    x = bp.tensor(rng.standard_normal((2, 2, 7, 7)))
    y = bp.tensor([0, 2])
    for g_bp, g_fa in zip(_grads(net, x, y), _grads(fa, x, y)):
        np.testing.assert_allclose(g_fa, g_bp, rtol=1e-12, atol=1e-14)


def test_the_input_gradient_goes_through_b_and_the_weight_gradient_is_exact(rng):
    layer = rules.FALinear(4, 3).double()
    x = bp.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    g = rng.standard_normal((5, 3))
    layer(x).backward(bp.tensor(g))
    b, w = layer.feedback_weight.data, layer.weight.data
    np.testing.assert_allclose(x.grad.data, g @ b.T, rtol=1e-12)
    assert not np.allclose(x.grad.data, g @ w)  # a random B is not backprop
    np.testing.assert_allclose(layer.weight.grad.data, g.T @ x.data, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.data, g.sum(0), rtol=1e-12)


def test_gradcheck_passes_for_the_weights_and_fails_for_the_input_unless_b_is_w_transposed(rng):
    w = bp.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = bp.tensor(rng.standard_normal(3), requires_grad=True)
    x = bp.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    feedback = bp.tensor(rng.standard_normal((4, 3)))
    assert gradcheck(lambda w, b: rules.fa_linear(x.detach(), w, b, feedback), (w, b))
    with pytest.raises(GradcheckError):  # the checker can fail: FA is not the derivative
        gradcheck(lambda x: rules.fa_linear(x, w.detach(), None, feedback), (x,))
    exact = bp.tensor(w.data.T.copy())
    assert gradcheck(lambda x: rules.fa_linear(x, w.detach(), None, exact), (x,))


def test_fa_conv_weight_and_bias_gradients_pass_gradcheck(rng):
    x = bp.tensor(rng.standard_normal((2, 2, 5, 5)))
    w = bp.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    b = bp.tensor(rng.standard_normal(3), requires_grad=True)
    feedback = bp.tensor(rng.standard_normal((3, 2, 3, 3)))
    assert gradcheck(lambda w, b: rules.fa_conv2d(x, w, b, feedback, stride=2, padding=1),
                     (w, b))


def test_fa_second_order_gradients_flow_through_the_weight_path(rng):
    layer = rules.FALinear(3, 2).double()
    x = bp.tensor(rng.standard_normal((4, 3)))
    (gw,) = bp.autograd.grad((layer(x) ** 2).sum(), layer.weight, create_graph=True)
    (hw,) = bp.autograd.grad(gw.sum(), layer.weight)
    # L = Σ y², ∂L/∂W = 2yᵀx; ∂(Σ ∂L/∂W)/∂W[o, j] = 2 Σₙ (Σᵢ x[n, i]) x[n, j] for every o
    expected = 2 * np.tile(x.data.sum(1) @ x.data, (2, 1))
    np.testing.assert_allclose(hw.data, expected, rtol=1e-12)


def test_feedback_is_a_fixed_buffer_the_optimizer_never_changes():
    bp.manual_seed(3)
    layer = rules.FALinear(4, 3)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.state_dict()) == ["weight", "bias", "feedback_weight"]
    before = layer.feedback_weight.data.copy()
    opt = bp.optim.SGD(layer.parameters(), lr=0.1)
    layer(bp.ones(2, 4)).sum().backward()
    opt.step()
    np.testing.assert_array_equal(layer.feedback_weight.data, before)
    bound = 1 / np.sqrt(4)
    assert np.abs(before).max() <= bound and before.dtype == np.float32


def test_feedback_alignment_copies_and_converts_nested_layers_leaving_the_model_alone():
    bp.manual_seed(0)
    inner = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.ReLU())
    net = bp.nn.Sequential(inner, bp.nn.Linear(4, 2))
    fa = rules.feedback_alignment(net)
    assert type(net[0][0]) is bp.nn.Linear and type(net[1]) is bp.nn.Linear
    assert isinstance(fa[0][0], rules.FALinear) and isinstance(fa[1], rules.FALinear)
    assert list(fa.state_dict()) == ["0.0.weight", "0.0.bias", "0.0.feedback_weight",
                                     "1.weight", "1.bias", "1.feedback_weight"]
    assert fa[1].weight is not net[1].weight
    np.testing.assert_array_equal(fa[1].weight.data, net[1].weight.data)
    x = bp.randn(5, 3)
    np.testing.assert_array_equal(fa(x).data, net(x).data)
    bp.manual_seed(0)
    again = rules.feedback_alignment(bp.nn.Sequential(bp.nn.Sequential(
        bp.nn.Linear(3, 4), bp.nn.ReLU()), bp.nn.Linear(4, 2)))
    np.testing.assert_array_equal(again[1].feedback_weight.data, fa[1].feedback_weight.data)
    single = rules.feedback_alignment(bp.nn.Linear(2, 2))
    assert isinstance(single, rules.FALinear)
    with pytest.raises(TypeError, match="nn.Module"):
        rules.feedback_alignment(lambda x: x)


def test_fa_refuses_mismatched_shapes_naming_them():
    w = bp.ones(3, 4)
    with pytest.raises(bp.ShapeError, match=r"transposed weight's shape \(4, 3\)"):
        rules.fa_linear(bp.ones(2, 4), w, None, bp.ones(3, 4))
    with pytest.raises(bp.ShapeError, match="in_features=4"):
        rules.fa_linear(bp.ones(2, 5), w, None, bp.ones(4, 3))
    with pytest.raises(bp.ShapeError, match="weight's shape"):
        rules.fa_conv2d(bp.ones(1, 2, 5, 5), bp.ones(3, 2, 3, 3), None, bp.ones(3, 2, 2, 2))


def test_exact_gradients_switches_fa_layers_to_backprop_inside_the_block_only(rng):
    net = _mlp()
    fa = rules.feedback_alignment(net)
    x = bp.tensor(rng.standard_normal((8, 5)))
    y = bp.tensor(rng.integers(0, 3, 8))
    with rules.exact_gradients(fa):
        inside = _grads(fa, x, y)
    outside = _grads(fa, x, y)
    for a, b in zip(inside, _grads(net, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(outside[0], inside[0])
    angles = rules.gradient_angles(fa, bp.nn.CrossEntropyLoss(), x, y)
    assert list(angles) == ["0.weight", "2.weight", "4.weight"]
    assert angles["4.weight"] == pytest.approx(0.0, abs=1e-6)  # the output layer is exact
    assert 20 < angles["0.weight"] < 120


def test_fa_alignment_angle_decreases_during_training():
    """Lillicrap et al.'s effect: with a random B the first updates are nearly orthogonal to
    the gradient, and training brings the forward weights into alignment with B."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 10))
    teacher = rng.standard_normal((10, 5))
    y = np.tanh(x @ teacher) @ rng.standard_normal((5, 3))
    bp.manual_seed(1)
    net = bp.nn.Sequential(bp.nn.Linear(10, 30), bp.nn.Tanh(), bp.nn.Linear(30, 3)).double()
    fa = rules.feedback_alignment(net)
    xt, yt = bp.tensor(x), bp.tensor(y)
    loss_fn = bp.nn.MSELoss()
    opt = bp.optim.SGD(fa.parameters(), lr=0.2)
    start = rules.alignment_angle(fa, loss_fn, xt, yt)
    for _ in range(400):
        opt.zero_grad()
        loss_fn(fa(xt), yt).backward()
        opt.step()
    end = rules.alignment_angle(fa, loss_fn, xt, yt)
    assert start > 70  # measured: 81 degrees
    assert end < start - 20, (start, end)  # measured: 49 degrees
