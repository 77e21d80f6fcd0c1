"""Forward-Forward: goodness and the layer-local gradients pass gradcheck, no gradient crosses a
layer, predictions pick the label with the most goodness, negatives are always wrong."""

import numpy as np
import pytest

import backprop as bp
from backprop import rules
from backprop.autograd import gradcheck, gradgradcheck


def _ff(seed=0, hidden=(6, 5, 4), **kwargs):
    bp.manual_seed(seed)
    return rules.ForwardForward(3, hidden, num_classes=4, **kwargs).double()


def test_goodness_is_the_sum_of_squares_and_passes_gradcheck(rng):
    h = bp.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    np.testing.assert_allclose(rules.goodness(h).data, (h.data ** 2).sum(1), rtol=1e-12)
    assert gradcheck(rules.goodness, (h,))
    assert gradgradcheck(rules.goodness, (h,))
    h3 = bp.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    assert rules.goodness(h3).shape == (2, 3) and gradcheck(rules.goodness, (h3,))
    with pytest.raises(bp.ShapeError, match="0-d"):
        rules.goodness(bp.tensor(1.0))


def test_ff_loss_passes_gradcheck_and_is_the_logistic_loss(rng):
    g_pos = bp.tensor(rng.uniform(0, 4, 5), requires_grad=True)
    g_neg = bp.tensor(rng.uniform(0, 4, 3), requires_grad=True)
    assert gradcheck(lambda a, b: rules.ff_loss(a, b, 2.0, 0.5), (g_pos, g_neg))
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected = (-np.log(sigmoid((g_pos.data - 2.0) / 0.5)).mean()
                - np.log(1 - sigmoid((g_neg.data - 2.0) / 0.5)).mean())
    assert rules.ff_loss(g_pos, g_neg, 2.0, 0.5).item() == pytest.approx(expected, rel=1e-10)


def _with_layer_params(ff, k, w, b):
    """Put gradcheck's float64 copies in place of layer k's parameters (a test-only swap)."""
    layer = ff.layers[k]
    layer._parameters["weight"], layer._parameters["bias"] = w, b


@pytest.mark.parametrize("k", [0, 1, 2])
def test_each_layers_local_gradient_passes_gradcheck(rng, k):
    ff = _ff()
    x = rng.standard_normal((5, 3))
    y, neg = np.array([0, 1, 2, 3, 1]), np.array([1, 2, 3, 0, 0])
    layer = ff.layers[k]
    w = bp.tensor(layer.weight.data.copy(), requires_grad=True)
    b = bp.tensor(layer.bias.data.copy(), requires_grad=True)

    def loss_k(w, b):
        _with_layer_params(ff, k, w, b)
        return ff.local_losses(x, y, neg)[k]

    assert gradcheck(loss_k, (w, b))


def test_no_gradient_reaches_a_lower_layer(rng):
    ff = _ff()
    x = rng.standard_normal((6, 3))
    y = rng.integers(0, 4, 6)
    neg = (y + 1) % 4
    for k in range(3):
        ff.zero_grad()
        ff.local_losses(x, y, neg)[k].backward()
        for j, layer in enumerate(ff.layers):
            if j == k:
                assert layer.weight.grad is not None and np.abs(layer.weight.grad.data).sum() > 0
            else:  # not even a zero: the graph of loss k never reaches layer j
                assert layer.weight.grad is None and layer.bias.grad is None
    # so the summed loss trains each layer exactly on its own loss
    own = []
    for k in range(3):
        ff.zero_grad()
        ff.local_losses(x, y, neg)[k].backward()
        own.append(ff.layers[k].weight.grad.data.copy())
    ff.zero_grad()
    sum(ff.local_losses(x, y, neg)[1:], ff.local_losses(x, y, neg)[0]).backward()
    for k in range(3):
        np.testing.assert_allclose(ff.layers[k].weight.grad.data, own[k], rtol=1e-12)


def test_scores_are_the_accumulated_goodness_of_each_label_skipping_the_first_layer(rng):
    ff = _ff()
    x = rng.standard_normal((5, 3))
    scores = ff.scores(x).data
    for label in range(4):
        acts = ff.activities(ff.embed(x, np.full(5, label)))
        expected = sum((h.data ** 2).sum(1) for h in acts[1:])
        np.testing.assert_allclose(scores[:, label], expected, rtol=1e-10)
    everything = _ff(skip_first=False)
    acts = everything.activities(everything.embed(x, np.zeros(5, np.int64)))
    np.testing.assert_allclose(everything.scores(x).data[:, 0],
                               sum((h.data ** 2).sum(1) for h in acts), rtol=1e-10)


def test_the_label_is_appended_to_the_input_and_rows_are_normalised():
    ff = _ff(label_scale=2.0)
    e = ff.embed(np.array([[1.0, 2.0, 3.0]]), np.array([2]))
    raw = np.array([1.0, 2.0, 3.0, 0.0, 0.0, 2.0, 0.0])
    np.testing.assert_allclose(e[0], raw / np.sqrt((raw ** 2).mean()), rtol=1e-6)


def test_negative_labels_are_always_wrong_and_hard_ones_follow_the_scores():
    ff = _ff()
    bp.manual_seed(0)
    n = 4000
    labels = np.zeros(n, np.int64)
    scores = np.tile(np.array([9.0, 0.0, np.log(3.0), 0.0]), (n, 1))
    neg = ff.negative_labels(labels, scores)
    assert not np.any(neg == labels)
    freq = np.bincount(neg, minlength=4) / n  # exp(scores) over the wrong labels: 1/5, 3/5, 1/5
    np.testing.assert_allclose(freq[1:], [0.2, 0.6, 0.2], atol=0.03)
    random = _ff(negatives="random")
    neg = random.negative_labels(labels)
    assert not np.any(neg == labels)
    np.testing.assert_allclose(np.bincount(neg, minlength=4)[1:] / n, [1 / 3] * 3, atol=0.03)
    ff.eval()  # evaluation picks the most confusable wrong label and draws nothing
    state = bp.random.default_generator().bit_generator.state
    np.testing.assert_array_equal(ff.negative_labels(labels[:3], scores[:3]), [2, 2, 2])
    assert bp.random.default_generator().bit_generator.state == state


def test_forward_returns_scores_and_loss_trains_through_an_optimizer(rng):
    ff = _ff()
    x, y = bp.tensor(rng.standard_normal((8, 3))), bp.tensor(rng.integers(0, 4, 8))
    scores = ff(x)
    assert scores.shape == (8, 4) and scores.grad_fn is None
    loss = ff.loss(scores, y)
    before = [p.data.copy() for p in ff.parameters()]
    opt = bp.optim.SGD(ff.parameters(), lr=0.01)
    loss.backward()
    opt.step()
    assert all(not np.array_equal(p.data, b) for p, b in zip(ff.parameters(), before))


def test_ff_refuses_bad_arguments_with_clear_messages():
    with pytest.raises(ValueError, match="negatives"):
        rules.ForwardForward(3, (4,), 2, negatives="easy")
    with pytest.raises(ValueError, match="skip_first"):
        rules.ForwardForward(3, (4,), 2, skip_first=True)
    with pytest.raises(ValueError, match="temperature"):
        rules.ForwardForward(3, (4,), 2, temperature=0)
    ff = rules.ForwardForward(3, (4,), 2)
    with pytest.raises(RuntimeError, match="run the model"):
        ff.loss(None, bp.tensor([0]))
    with pytest.raises(bp.ShapeError, match="in_features=3"):
        ff(bp.ones(2, 5))
    ff(bp.ones(2, 3))
    with pytest.raises(bp.ShapeError, match="3 targets for a batch of 2"):
        ff.loss(None, bp.tensor([0, 1, 1]))
