"""Direct feedback alignment: hidden updates come from the output error through fixed matrices
only, checked by hand on a tiny network; learning starts from zero weights."""

import numpy as np
import pytest

import backprop as bp
from backprop import rules


def _tiny(seed=0):
    bp.manual_seed(seed)
    net = bp.nn.Sequential(bp.nn.Linear(2, 3), bp.nn.Tanh(), bp.nn.Linear(3, 3), bp.nn.Tanh(),
                           bp.nn.Linear(3, 2)).double()
    return net, rules.DFA(net)


def test_dfa_updates_match_the_hand_computed_rule_on_a_tiny_net():
    net, dfa = _tiny()
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    e = np.array([[0.3, -0.7], [-0.2, 0.4]])  # the error at the output, ∂L/∂y
    dfa(bp.tensor(x)).backward(bp.tensor(e))
    w1, b1 = net[0].weight.data, net[0].bias.data
    w2, b2 = net[2].weight.data, net[2].bias.data
    a1 = x @ w1.T + b1
    h1 = np.tanh(a1)
    a2 = h1 @ w2.T + b2
    h2 = np.tanh(a2)
    b_1, b_2 = dfa.feedback_1.data, dfa.feedback_2.data  # (2, 3) each
    delta1 = (e @ b_1) * (1 - h1 ** 2)  # δ₁ = (B₁ᵀe) ⊙ f'(a₁): no W₂ or W₃ anywhere
    delta2 = (e @ b_2) * (1 - h2 ** 2)
    np.testing.assert_allclose(net[0].weight.grad.data, delta1.T @ x, rtol=1e-12)
    np.testing.assert_allclose(net[0].bias.grad.data, delta1.sum(0), rtol=1e-12)
    np.testing.assert_allclose(net[2].weight.grad.data, delta2.T @ h1, rtol=1e-12)
    np.testing.assert_allclose(net[2].bias.grad.data, delta2.sum(0), rtol=1e-12)
    np.testing.assert_allclose(net[4].weight.grad.data, e.T @ h2, rtol=1e-12)  # exact
    np.testing.assert_allclose(net[4].bias.grad.data, e.sum(0), rtol=1e-12)


def test_dfa_hidden_updates_do_not_depend_on_the_weights_above(rng):
    net, dfa = _tiny()
    x = bp.tensor(rng.standard_normal((4, 2)))
    e = bp.tensor(rng.standard_normal((4, 2)))
    dfa(x).backward(e)
    first = net[0].weight.grad.data.copy()
    with bp.no_grad():  # change every weight above the first layer
        net[2].weight.data[...] = rng.standard_normal((3, 3)) * 5
        net[4].weight.data[...] = rng.standard_normal((2, 3)) * 5
    net.zero_grad()
    dfa(x).backward(e)
    np.testing.assert_array_equal(net[0].weight.grad.data, first)
    net.zero_grad()
    dfa(x).backward(e * 2)  # ... but they do scale with the output error
    np.testing.assert_allclose(net[0].weight.grad.data, 2 * first, rtol=1e-12)


def test_dfa_forward_is_the_models_and_exact_gradients_gives_backprop(rng):
    net, dfa = _tiny()
    x = bp.tensor(rng.standard_normal((5, 2)))
    y = bp.tensor(rng.integers(0, 2, 5))
    np.testing.assert_array_equal(dfa(x).data, net(x).data)
    bp.nn.functional.cross_entropy(net(x), y).backward()
    true = [p.grad.data.copy() for p in net.parameters()]
    net.zero_grad()
    with rules.exact_gradients(dfa):
        bp.nn.functional.cross_entropy(dfa(x), y).backward()
    for p, g in zip(net.parameters(), true):
        np.testing.assert_allclose(p.grad.data, g, rtol=1e-12)
    angles = rules.gradient_angles(dfa, bp.nn.CrossEntropyLoss(), x, y)
    assert list(angles) == ["model.0.weight", "model.2.weight", "model.4.weight"]
    assert angles["model.4.weight"] == pytest.approx(0.0, abs=1e-6)


def test_dfa_learns_from_zero_weights_where_backprop_cannot():
    from backprop.data.datasets import load_digits

    digits = load_digits(train=True, seed=0)
    x = bp.tensor(digits.data.reshape(len(digits), -1)[:500] / 16)
    y = bp.tensor(digits.targets[:500])
    accuracy = {}
    for rule in ("backprop", "dfa"):
        bp.manual_seed(0)
        net = bp.nn.Sequential(bp.nn.Linear(64, 32), bp.nn.Tanh(), bp.nn.Linear(32, 32),
                               bp.nn.Tanh(), bp.nn.Linear(32, 10))
        for p in net.parameters():
            p.data[...] = 0.0
        model = rules.DFA(net) if rule == "dfa" else net
        opt = bp.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(60):
            opt.zero_grad()
            bp.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        accuracy[rule] = (model(x).data.argmax(1) == y.data).mean()
        if rule == "backprop":  # zero weights above: no hidden unit ever gets a gradient
            assert np.all(net[0].weight.data == 0) and np.all(net[2].weight.data == 0)
    assert accuracy["backprop"] < 0.2  # only the output biases learn: the majority class
    assert accuracy["dfa"] > 0.9


def test_dfa_feedback_buffers_are_fixed_saved_and_seeded():
    net, dfa = _tiny(seed=4)
    assert [n for n, _ in dfa.named_parameters()] == [n for n, _ in
                                                       net.named_parameters(prefix="model")]
    assert {"feedback_1", "feedback_2"} <= set(dfa.state_dict())
    _, again = _tiny(seed=4)
    np.testing.assert_array_equal(again.feedback_2.data, dfa.feedback_2.data)
    assert np.abs(dfa.feedback_1.data).max() <= 1 / np.sqrt(3)


def test_dfa_with_a_convolution_needs_the_input_shape_and_then_trains(rng):
    bp.manual_seed(0)
    net = bp.nn.Sequential(bp.nn.Conv2d(1, 4, 3, padding=1), bp.nn.ReLU(),
                           bp.nn.Conv2d(4, 4, 3, stride=2), bp.nn.ReLU(), bp.nn.Flatten(),
                           bp.nn.Linear(36, 3))
    with pytest.raises(ValueError, match="input_shape"):
        rules.DFA(net)
    dfa = rules.DFA(net, input_shape=(1, 8, 8))
    assert dfa.feedback_1.shape == (3, 4 * 8 * 8) and dfa.feedback_2.shape == (3, 36)
    x = bp.tensor(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    bp.nn.functional.cross_entropy(dfa(x), bp.tensor([0, 2])).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_dfa_refuses_models_it_cannot_train():
    with pytest.raises(TypeError, match="Sequential"):
        rules.DFA(bp.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="at least two weight layers"):
        rules.DFA(bp.nn.Sequential(bp.nn.Linear(2, 2), bp.nn.ReLU()))
    with pytest.raises(ValueError, match="last weight layer must be a Linear"):
        rules.DFA(bp.nn.Sequential(bp.nn.Linear(4, 4), bp.nn.Unflatten(1, (1, 2, 2)),
                                   bp.nn.Conv2d(1, 2, 1)), input_shape=(4,))
