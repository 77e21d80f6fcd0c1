"""Weight perturbation: an unbiased gradient estimate from loss differences alone, with the
weights restored exactly, usable with any optimizer."""

import numpy as np
import pytest

import backprop as bp
from backprop import rules


def _setup(rng, directions=1, epsilon=1e-3):
    bp.manual_seed(0)
    net = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.Tanh(), bp.nn.Linear(4, 2)).double()
    wp = rules.WeightPerturbation(net, bp.nn.CrossEntropyLoss(), epsilon=epsilon,
                                  directions=directions)
    x = bp.tensor(rng.standard_normal((10, 3)))
    y = bp.tensor(rng.integers(0, 2, 10))
    return net, wp, x, y


def _flat_grads(net):
    return np.concatenate([p.grad.data.ravel() for p in net.parameters()])


def test_the_estimate_averages_to_the_true_gradient(rng):
    net, wp, x, y = _setup(rng, directions=3000)
    bp.nn.functional.cross_entropy(net(x), y).backward()
    true = _flat_grads(net)
    net.zero_grad()
    wp.loss(wp(x), y).backward()
    est = _flat_grads(net)
    cosine = est @ true / (np.linalg.norm(est) * np.linalg.norm(true))
    assert cosine > 0.95, cosine
    assert np.linalg.norm(est) / np.linalg.norm(true) == pytest.approx(1.0, abs=0.15)


def test_one_direction_is_the_central_difference_along_it(rng):
    net, wp, x, y = _setup(rng, directions=1, epsilon=1e-4)
    params = list(net.parameters())
    state = bp.random.default_generator().bit_generator.state
    wp.loss(wp(x), y).backward()
    est = _flat_grads(net)
    bp.random.default_generator().bit_generator.state = state  # the same directions again
    deltas = [bp.random.default_generator().integers(0, 2, size=p.shape) * 2 - 1
              for p in params]
    saved = [p.data.copy() for p in params]
    losses = []
    for sign in (1, -1):
        for p, s, d in zip(params, saved, deltas):
            p.data[...] = s + sign * 1e-4 * d
        with bp.no_grad():
            losses.append(bp.nn.functional.cross_entropy(net(x), y).item())
    for p, s in zip(params, saved):
        p.data[...] = s
    slope = (losses[0] - losses[1]) / 2e-4
    np.testing.assert_allclose(est, slope * np.concatenate([d.ravel() for d in deltas]),
                               rtol=1e-9)


def test_weights_are_restored_bit_for_bit_and_the_loss_value_is_the_plain_loss(rng):
    net, wp, x, y = _setup(rng, directions=5, epsilon=0.1)
    before = [p.data.copy() for p in net.parameters()]
    loss = wp.loss(wp(x), y)
    for p, b in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    with bp.no_grad():
        plain = bp.nn.functional.cross_entropy(net(x), y).item()
    assert loss.item() == pytest.approx(plain, rel=1e-12)
    assert loss.grad_fn is not None and wp(x).grad_fn is None  # no graph through the network


def test_under_no_grad_the_loss_is_just_the_loss_and_nothing_is_perturbed(rng):
    net, wp, x, y = _setup(rng)
    state = bp.random.default_generator().bit_generator.state
    with bp.no_grad():
        loss = wp.loss(wp(x), y)
    assert loss.grad_fn is None
    assert bp.random.default_generator().bit_generator.state == state


def test_second_derivatives_of_the_estimate_are_refused(rng):
    net, wp, x, y = _setup(rng)
    loss = wp.loss(wp(x), y)
    (g,) = bp.autograd.grad(loss, net[0].weight, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        bp.autograd.grad(g.sum(), net[0].weight)


def test_weight_perturbation_refuses_bad_settings():
    net = bp.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="epsilon"):
        rules.WeightPerturbation(net, bp.nn.CrossEntropyLoss(), epsilon=0)
    with pytest.raises(ValueError, match="directions"):
        rules.WeightPerturbation(net, bp.nn.CrossEntropyLoss(), directions=0)
    wp = rules.WeightPerturbation(net, bp.nn.CrossEntropyLoss())
    with pytest.raises(RuntimeError, match="run the model"):
        wp.loss(bp.ones(1, 2), bp.tensor([0]))
