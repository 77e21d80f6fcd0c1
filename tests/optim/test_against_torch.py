"""Every optimizer and option combination against ``torch.optim`` (skipped without torch).

Same float64 network, same initial values, same data, the same gradient at every step: 60
steps of zero_grad -> backward -> step. Parameters and every state buffer must agree to rtol
1e-12 (the update rules are the same operations in the same order; what remains is rounding in
PyTorch's fused kernels: about 1e-15 in practice).
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

from .problems import CONFIG_IDS, CONFIGS, make_data, make_mlp, mse

torch = pytest.importorskip("torch")

STEPS = 60
RTOL = 1e-12
# Elements are O(1); ATOL (a few ulps of 1) only keeps an element that happens to pass near
# zero from being judged relative to its own tiny value, where one rounding is a large ratio.
ATOL = 1e-15


@pytest.fixture
def torch_float64():
    """torch's default dtype float64 for the test: PyTorch keeps scalar state (NAdam's
    mu_product, every ``step``) in the default dtype, backprop in Python numbers."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _torch_mlp(model):
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    net = net.double()
    with torch.no_grad():
        for tp, bp_p in zip(net.parameters(), model.parameters()):
            tp.copy_(torch.from_numpy(bp_p.data.copy()))
    return net


def _run_both(model, opt, net, torch_opt, x, y, steps, sign=1.0):
    """Train both sides with identical gradients: backprop computes them at its parameters and
    torch gets a copy, so only the optimizers' arithmetic can make the runs differ."""
    losses = []
    torch_params = list(net.parameters())
    for _ in range(steps):
        opt.zero_grad()
        torch_opt.zero_grad()
        loss = sign * mse(model, x, y)
        loss.backward()
        for p, tp in zip(model.parameters(), torch_params):
            tp.grad = torch.from_numpy(p.grad.data.copy())
        opt.step()
        torch_opt.step()
        losses.append(loss.item())
    return losses


def _assert_state_matches(bp_opt, torch_opt, bp_params, torch_params):
    for i, (p, tp) in enumerate(zip(bp_params, torch_params)):
        ours, theirs = bp_opt.state[p], torch_opt.state[tp]
        assert set(ours) == set(theirs), f"param {i}: state keys differ"
        for key, value in ours.items():
            other = theirs[key]
            if isinstance(value, bp.Tensor):
                np.testing.assert_allclose(value.data, other.numpy(), rtol=RTOL, atol=ATOL,
                                           err_msg=f"param {i}, state {key!r}")
                assert value.dtype == np.float64
            else:  # step (an int here, a tensor in torch) and NAdam's mu_product (a float)
                assert value == pytest.approx(float(other), rel=RTOL), (i, key)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_optim_over_60_steps(config, torch_float64):
    name, kwargs = config
    model, (x, y) = make_mlp(seed=7), make_data(seed=7)
    net = _torch_mlp(model)
    opt = getattr(bp.optim, name)(model.parameters(), **kwargs)
    torch_opt = getattr(torch.optim, name)(net.parameters(), foreach=False, **kwargs)

    # with maximize, ascend -mse: the same well-conditioned descent, so rounding differences
    # are not amplified the way a diverging ascent of +mse amplifies them
    sign = -1.0 if kwargs.get("maximize") else 1.0
    losses = _run_both(model, opt, net, torch_opt, x, y, STEPS, sign)

    for p, tp in zip(model.parameters(), net.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL)
    _assert_state_matches(opt, torch_opt, list(model.parameters()), list(net.parameters()))
    assert losses[0] != losses[-1]  # the run did move


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "NAdam"])
def test_param_groups_with_their_own_options_match_torch(name, torch_float64):
    model, (x, y) = make_mlp(seed=11), make_data(seed=11)
    net = _torch_mlp(model)

    def groups(params):
        w1, b1, w2, b2 = params
        return [{"params": [w1, w2]},
                {"params": [b1, b2], "lr": 0.002, "weight_decay": 0.1}]

    extra = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    opt = getattr(bp.optim, name)(groups(list(model.parameters())), lr=0.03, **extra)
    torch_opt = getattr(torch.optim, name)(groups(list(net.parameters())), lr=0.03,
                                           foreach=False, **extra)
    _run_both(model, opt, net, torch_opt, x, y, STEPS)
    for p, tp in zip(model.parameters(), net.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL)


def test_default_hyperparameters_match_torch():
    w = bp.zeros(2, requires_grad=True)
    tw = torch.zeros(2, requires_grad=True)
    for name in ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "NAdam"]:
        ours = getattr(bp.optim, name)([w]).defaults
        theirs = getattr(torch.optim, name)([tw]).defaults
        shared = {k: theirs[k] for k in ours if k in theirs}
        assert ours == shared, name
        missing = set(ours) - set(theirs)
        assert not missing, f"{name}: options torch does not have: {missing}"
