"""backprop.nn.utils: gradient clipping, parameters <-> vector, L1/L2 penalties."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import nn
from backprop.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    l1_penalty,
    l2_penalty,
    parameters_to_vector,
    vector_to_parameters,
)


def _params_with_grads(rng, dtype=np.float64, scale=1.0):
    shapes = [(3, 4), (4,), (2, 3)]
    params = [bp.tensor(rng.normal(size=s).astype(dtype), requires_grad=True) for s in shapes]
    for p in params:
        p.grad = bp.tensor((scale * rng.normal(size=p.shape)).astype(dtype))
    return params


# --- clip_grad_norm_ ---


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(rng, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params = _params_with_grads(rng)
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    for p, tp in zip(params, tparams):
        tp.grad = torch.tensor(p.grad.data.copy())
    total = clip_grad_norm_(params, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type, foreach=False)
    assert isinstance(total, bp.Tensor) and total.shape == ()
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_returns_the_norm_before_clipping_and_scales_to_max_norm(rng):
    params = _params_with_grads(rng)
    grads = np.concatenate([p.grad.data.ravel() for p in params])
    total = clip_grad_norm_(params, max_norm=1.0)
    assert total.item() == pytest.approx(np.linalg.norm(grads), rel=1e-12)
    clipped = np.concatenate([p.grad.data.ravel() for p in params])
    # scaled by 1 / (norm + 1e-6): the new norm is just under 1
    np.testing.assert_allclose(clipped, grads / (np.linalg.norm(grads) + 1e-6), rtol=1e-12)


def test_clip_grad_norm_leaves_small_gradients_alone(rng):
    params = _params_with_grads(rng, scale=1e-3)
    before = [p.grad.data.copy() for p in params]
    clip_grad_norm_(params, max_norm=1.0)
    for p, g in zip(params, before):
        np.testing.assert_array_equal(p.grad.data, g)


def test_clip_grad_norm_skips_missing_grads_and_accepts_a_single_tensor():
    a = bp.tensor([3.0, 4.0], requires_grad=True)
    b = bp.tensor([1.0], requires_grad=True)
    a.grad = bp.tensor([3.0, 4.0])
    assert clip_grad_norm_([a, b], max_norm=10.0).item() == pytest.approx(5.0)
    assert b.grad is None
    assert clip_grad_norm_(a, max_norm=1.0).item() == pytest.approx(5.0)
    assert clip_grad_norm_([b], max_norm=1.0).item() == 0.0  # no gradients at all


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_clip_grad_norm_raises_on_a_nonfinite_norm_when_asked(bad):
    p = bp.tensor([1.0, 2.0], requires_grad=True)
    p.grad = bp.tensor([bad, 1.0])
    with pytest.raises(RuntimeError, match="non-finite|nan|inf"):
        clip_grad_norm_([p], max_norm=1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad.data, [bad, 1.0])  # raised before touching anything
    total = clip_grad_norm_([p], max_norm=1.0)  # the default, as PyTorch: no error
    assert not np.isfinite(total.item())


def test_clip_grad_norm_keeps_float32(rng):
    params = _params_with_grads(rng, dtype=np.float32, scale=10.0)
    total = clip_grad_norm_(params, max_norm=np.float64(1.0))
    assert total.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in params)


# --- clip_grad_value_ ---


def test_clip_grad_value_clamps_elementwise():
    p = bp.tensor([0.0, 0.0, 0.0, 0.0], requires_grad=True)
    p.grad = bp.tensor([-3.0, -0.5, 0.2, 7.0])
    assert clip_grad_value_([p], clip_value=1.0) is None
    np.testing.assert_array_equal(p.grad.data, np.array([-1.0, -0.5, 0.2, 1.0], np.float32))
    assert p.grad.dtype == np.float32


def test_clip_grad_value_matches_torch(rng):
    torch = pytest.importorskip("torch")
    params = _params_with_grads(rng, scale=2.0)
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    for p, tp in zip(params, tparams):
        tp.grad = torch.tensor(p.grad.data.copy())
    clip_grad_value_(params, 0.7)
    torch.nn.utils.clip_grad_value_(tparams, 0.7)
    for p, tp in zip(params, tparams):
        np.testing.assert_array_equal(p.grad.data, tp.grad.numpy())


# --- parameters_to_vector / vector_to_parameters ---


def test_parameters_to_vector_and_back_round_trip(rng):
    src = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    dst = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    vec = parameters_to_vector(src.parameters())
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    np.testing.assert_array_equal(
        vec.data, np.concatenate([p.data.ravel() for p in src.parameters()]))
    vector_to_parameters(vec, dst.parameters())
    for a, b in zip(src.parameters(), dst.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
        assert b.dtype == np.float32
    vec.data[...] = 0.0  # copied, not aliased
    assert all(np.any(p.data != 0) for p in dst.parameters())


def test_parameters_to_vector_is_differentiable():
    a = bp.tensor([[1.0, 2.0]], requires_grad=True)
    b = bp.tensor([3.0], requires_grad=True)
    (parameters_to_vector([a, b]) * bp.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [[1.0, 2.0]])
    np.testing.assert_array_equal(b.grad.data, [3.0])


def test_vector_to_parameters_checks_its_input():
    params = [bp.zeros(2, 2, requires_grad=True)]
    with pytest.raises(TypeError, match="expected a Tensor, got ndarray"):
        vector_to_parameters(np.zeros(4), params)
    with pytest.raises(ValueError, match=r"1-D vector of 4 elements .* got shape \(5,\)"):
        vector_to_parameters(bp.zeros(5), params)


# --- penalties ---


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.head = nn.Linear(2, 1, bias=False)


def _net():
    net = _Net()
    net.fc.weight.data[...] = [[1.0, -2.0], [0.5, 0.0]]
    net.fc.bias.data[...] = [-3.0, 4.0]
    net.head.weight.data[...] = [[-1.5, 2.5]]
    return net


def test_l1_penalty_sums_absolute_weights_and_leaves_biases_out_by_default():
    net = _net()
    penalty = l1_penalty(net)
    assert penalty.item() == pytest.approx(1 + 2 + 0.5 + 0 + 1.5 + 2.5)
    assert l1_penalty(net, include_bias=True).item() == pytest.approx(7.5 + 3 + 4)
    penalty.backward()
    np.testing.assert_array_equal(net.fc.weight.grad.data, [[1.0, -1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(net.head.weight.grad.data, [[-1.0, 1.0]])
    assert net.fc.bias.grad is None


def test_l2_penalty_sums_squared_weights_with_gradient_two_w():
    net = _net()
    penalty = l2_penalty(net)
    assert penalty.item() == pytest.approx(1 + 4 + 0.25 + 0 + 2.25 + 6.25)
    assert l2_penalty(net, include_bias=True).item() == pytest.approx(13.75 + 9 + 16)
    penalty.backward()
    np.testing.assert_array_equal(net.fc.weight.grad.data, 2 * net.fc.weight.data)
    np.testing.assert_array_equal(net.head.weight.grad.data, 2 * net.head.weight.data)
    assert net.fc.bias.grad is None
    assert penalty.dtype == np.float32


def test_l2_penalty_over_two_equals_sgd_weight_decay():
    # adding λ/2 · l2_penalty to the loss is SGD's weight_decay=λ on the same parameters
    lin_a, lin_b = nn.Linear(3, 1, bias=False), nn.Linear(3, 1, bias=False)
    lin_b.weight.data[...] = lin_a.weight.data
    x = bp.ones(1, 3)
    (lin_a(x).sum() + 0.1 / 2 * l2_penalty(lin_a)).backward()
    bp.optim.SGD(lin_a.parameters(), lr=0.5).step()
    lin_b(x).sum().backward()
    bp.optim.SGD(lin_b.parameters(), lr=0.5, weight_decay=0.1).step()
    np.testing.assert_allclose(lin_a.weight.data, lin_b.weight.data, rtol=1e-6)


def test_penalty_of_a_module_without_weights_is_zero():
    for penalty in (l1_penalty(nn.Tanh()), l2_penalty(nn.Tanh())):
        assert penalty.item() == 0.0 and penalty.shape == ()
