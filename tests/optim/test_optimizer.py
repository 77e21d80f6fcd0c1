"""The Optimizer contract: param groups, lazy state, zero_grad, step(closure), dtypes,
validation and state_dict round trips."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import optim

from .problems import CONFIG_IDS, CONFIGS, make_data, make_mlp, rosenbrock, train

ALL = [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad, optim.Adadelta,
       optim.NAdam]


def _leaf(values, dtype=bp.float64):
    return bp.tensor(values, dtype=dtype, requires_grad=True)


def _set_grad(p, values):
    p.grad = bp.tensor(np.asarray(values, dtype=p.dtype))


# --- param groups ---


def test_param_groups_take_their_own_lr_and_the_defaults_for_the_rest():
    a, b = _leaf([1.0, 1.0]), _leaf([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.0)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b
    assert opt.param_groups[1]["momentum"] == 0.0  # filled in from the defaults
    _set_grad(a, [1.0, 2.0])
    _set_grad(b, [1.0])
    opt.step()
    np.testing.assert_allclose(a.data, [0.9, 0.8], rtol=1e-15)
    np.testing.assert_allclose(b.data, [0.5], rtol=1e-15)


def test_add_param_group_trains_the_new_parameters_with_their_options():
    a, b = _leaf([1.0]), _leaf([1.0])
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    _set_grad(a, [3.0])
    _set_grad(b, [3.0])
    opt.step()
    # first Adam step: lr · g / (|g| + ε) per group
    assert a.data[0] == pytest.approx(1 - 0.1 * 3 / (3 + 1e-8), rel=1e-12)
    assert b.data[0] == pytest.approx(1 - 0.01 * 3 / (3 + 1e-8), rel=1e-12)


def test_params_may_be_a_generator_such_as_model_parameters():
    model = make_mlp(seed=1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 4


# --- state, zero_grad, step ---


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_state_is_allocated_lazily_and_only_for_parameters_with_a_gradient(cls):
    a, b = _leaf([1.0, 2.0]), _leaf([3.0])
    opt = cls([a, b], lr=0.1)
    assert len(opt.state) == 0
    _set_grad(a, [0.5, -0.5])
    opt.step()
    assert a in opt.state and b not in opt.state
    np.testing.assert_array_equal(b.data, [3.0])  # grad None: skipped, untouched


def test_state_is_keyed_by_the_parameter_tensor():
    p = _leaf([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    _set_grad(p, [2.0])
    opt.step()
    assert list(opt.state) == [p] and list(opt.state)[0] is p
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"].data, [2.0])


def test_zero_grad_sets_to_none_by_default():
    p, q = _leaf([1.0]), _leaf([1.0])
    opt = optim.SGD([p, q], lr=0.1)
    _set_grad(p, [2.0])
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_zero_grad_without_set_to_none_zeroes_in_place():
    p, q = _leaf([1.0, 2.0]), _leaf([1.0])
    opt = optim.SGD([p, q], lr=0.1)
    _set_grad(p, [2.0, 3.0])
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad
    np.testing.assert_array_equal(p.grad.data, [0.0, 0.0])
    assert q.grad is None  # a missing gradient stays missing, as in PyTorch


def test_a_zero_gradient_still_steps_but_a_none_gradient_is_skipped():
    kept, decayed = _leaf([1.0]), _leaf([1.0])
    opt = optim.SGD([kept, decayed], lr=0.1, weight_decay=0.5)
    _set_grad(decayed, [0.0])
    opt.step()
    assert kept.data[0] == 1.0
    assert decayed.data[0] == pytest.approx(1 - 0.1 * 0.5, rel=1e-15)  # weight decay acted


def test_step_returns_the_closure_loss_and_records_even_under_no_grad():
    p = _leaf([2.0])
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with bp.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0
    assert p.data[0] == pytest.approx(2 - 0.1 * 4, rel=1e-15)
    assert opt.step() is None


def test_closure_training_through_autograd_minimises_rosenbrock():
    # end to end: loss and gradient from the engine, SGD with momentum; 800 steps reach 1e-2
    x = _leaf([-1.2, 1.0])
    opt = optim.SGD([x], lr=0.002, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        return loss

    for _ in range(800):
        loss = opt.step(closure)
    assert loss.item() < 1e-3
    assert np.linalg.norm(x.data - 1.0) < 1e-2


def test_step_bumps_the_parameter_version_so_stale_graphs_refuse_backward():
    p = _leaf([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1)
    loss = (p * p).sum()
    loss.backward(retain_graph=True)
    version = p._version
    opt.step()
    assert p._version > version
    with pytest.raises(RuntimeError):
        loss.backward()  # the graph saved p before the in-place update


def test_maximize_on_the_negated_objective_equals_minimizing():
    a, b = _leaf([1.0, -2.0]), _leaf([1.0, -2.0])
    down = optim.Adam([a], lr=0.1)
    up = optim.Adam([b], lr=0.1, maximize=True)
    for _ in range(5):
        _set_grad(a, 2 * a.data)
        _set_grad(b, -2 * b.data)
        down.step()
        up.step()
    np.testing.assert_array_equal(a.data, b.data)


# --- float32 ---


def _as_numpy_float64(value):
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, tuple):
        return tuple(np.float64(v) for v in value)
    return value


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_float32_parameters_and_state_stay_float32(config):
    name, kwargs = config
    # NumPy float64 hyperparameters: NEP 50 would make them promote float32 arrays
    kwargs = {k: _as_numpy_float64(v) for k, v in kwargs.items()}
    model, (x, y) = make_mlp(seed=3, dtype=np.float32), make_data(seed=3, dtype=np.float32)
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    train(model, opt, x, y, steps=3)
    for p in model.parameters():
        assert p.dtype == np.float32
        assert np.all(np.isfinite(p.data))
        for key, value in opt.state[p].items():
            if isinstance(value, bp.Tensor):
                assert value.dtype == np.float32, key
            else:
                assert isinstance(value, (int, float)) and not isinstance(value, np.generic), key


# --- validation ---


def _p():
    return _leaf([1.0])


INVALID = [
    (lambda: optim.SGD([_p()], lr=-0.1), ValueError, r"SGD: invalid lr=-0\.1"),
    (lambda: optim.SGD([_p()], lr=float("nan")), ValueError, r"invalid lr=nan"),
    (lambda: optim.SGD([_p()], lr="0.1"), TypeError, r"lr must be a real number, got '0\.1'"),
    (lambda: optim.SGD([_p()], momentum=-0.5), ValueError, r"invalid momentum=-0\.5"),
    (lambda: optim.SGD([_p()], weight_decay=-1e-4), ValueError, r"invalid weight_decay=-0\.0001"),
    (lambda: optim.SGD([_p()], nesterov=True), ValueError, r"nesterov=True needs momentum > 0"),
    (lambda: optim.SGD([_p()], momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     r"dampening=0\.1"),
    (lambda: optim.Adam([_p()], betas=(1.0, 0.999)), ValueError, r"invalid betas\[0\]=1\.0"),
    (lambda: optim.Adam([_p()], betas=(0.9, -0.1)), ValueError, r"invalid betas\[1\]=-0\.1"),
    (lambda: optim.Adam([_p()], betas=0.9), TypeError, r"betas must be a pair"),
    (lambda: optim.Adam([_p()], eps=-1e-8), ValueError, r"invalid eps=-1e-08"),
    (lambda: optim.AdamW([_p()], lr=-1.0), ValueError, r"AdamW: invalid lr=-1\.0"),
    (lambda: optim.AdamW([_p()], weight_decay=-0.01), ValueError, r"invalid weight_decay"),
    (lambda: optim.RMSprop([_p()], alpha=1.5), ValueError, r"invalid alpha=1\.5.*\[0, 1\]"),
    (lambda: optim.RMSprop([_p()], momentum=-0.9), ValueError, r"invalid momentum=-0\.9"),
    (lambda: optim.RMSprop([_p()], eps=-1.0), ValueError, r"invalid eps=-1\.0"),
    (lambda: optim.Adagrad([_p()], lr_decay=-0.1), ValueError, r"invalid lr_decay=-0\.1"),
    (lambda: optim.Adagrad([_p()], initial_accumulator_value=-1.0), ValueError,
     r"invalid initial_accumulator_value=-1\.0"),
    (lambda: optim.Adagrad([_p()], eps=-1e-10), ValueError, r"invalid eps"),
    (lambda: optim.Adadelta([_p()], rho=1.1), ValueError, r"invalid rho=1\.1"),
    (lambda: optim.Adadelta([_p()], lr=-1.0), ValueError, r"Adadelta: invalid lr=-1\.0"),
    (lambda: optim.NAdam([_p()], momentum_decay=-0.004), ValueError,
     r"invalid momentum_decay=-0\.004"),
    (lambda: optim.NAdam([_p()], betas=(0.9, 1.0)), ValueError, r"invalid betas\[1\]=1\.0"),
    (lambda: optim.SGD([], lr=0.1), ValueError, r"empty parameter list"),
    (lambda: optim.SGD(_p(), lr=0.1), TypeError, r"got Tensor"),
    (lambda: optim.SGD({_p()}, lr=0.1), TypeError, r"got set"),
    (lambda: optim.SGD([_p(), np.ones(2)], lr=0.1), TypeError,
     r"can only optimize Tensors, but param group 0, params\[1\] is a ndarray"),
    (lambda: optim.SGD([_p() * 2], lr=0.1), ValueError,
     r"non-leaf Tensor: param group 0, params\[0\] \(shape \(1,\)\) was computed by MulBackward"),
    (lambda: optim.SGD([{"params": [_p()], "lr": -1.0}], lr=0.1), ValueError, r"invalid lr=-1"),
    (lambda: optim.SGD([{"lr": 0.1}]), ValueError, r"needs a 'params' entry"),
]


@pytest.mark.parametrize(("make", "error", "match"), INVALID, ids=[m for _, _, m in INVALID])
def test_invalid_arguments_raise_naming_the_argument_and_value(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_optimizer_rejects_a_negative_learning_rate(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: invalid lr=-0\.5"):
        cls([_p()], lr=-0.5)


def test_a_parameter_in_two_groups_is_refused_naming_both_places():
    a, b = _p(), _p()
    with pytest.raises(ValueError, match=r"param group 1, params\[1\] .* already optimized as "
                                         r"param group 0, params\[0\]"):
        optim.SGD([{"params": [a]}, {"params": [b, a]}], lr=0.1)
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="already optimized"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match=r"params\[1\] .* already optimized as param group 0, "
                                         r"params\[0\]"):
        optim.SGD([b, b], lr=0.1)


def test_add_param_group_needs_a_dict():
    opt = optim.SGD([_p()], lr=0.1)
    with pytest.raises(TypeError, match="must be a dict, got list"):
        opt.add_param_group([_p()])
    assert len(opt.param_groups) == 1


def test_a_subclass_without_an_update_rule_says_so():
    class Broken(optim.Optimizer):
        pass

    p = _p()
    _set_grad(p, [1.0])
    with pytest.raises(NotImplementedError, match=r"Broken must define _prepare\(\) and _rule\(\)"):
        Broken([p], {}).step()


# --- state_dict ---


def _groups(model, lr):
    w1, b1, w2, b2 = model.parameters()
    return [{"params": [w1, w2]}, {"params": [b1, b2], "lr": lr / 2}]


def _snapshot(model, opt):
    params = [p.data.copy() for p in model.parameters()]
    state = [{k: (v.data.copy() if isinstance(v, bp.Tensor) else v)
              for k, v in opt.state[p].items()} for p in model.parameters()]
    return params, state


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_resuming_from_state_dicts_is_bit_identical_to_an_uninterrupted_run(config):
    name, kwargs = config
    lr = kwargs.get("lr", 1.0)
    x, y = make_data(seed=5)

    model = make_mlp(seed=5)
    opt = getattr(optim, name)(_groups(model, lr), **kwargs)
    train(model, opt, x, y, steps=12)
    expected = _snapshot(model, opt)

    model = make_mlp(seed=5)
    opt = getattr(optim, name)(_groups(model, lr), **kwargs)
    train(model, opt, x, y, steps=5)
    model_state = {k: v.data.copy() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    train(model, opt, x, y, steps=3)  # keeps going: the saved dicts must not follow

    fresh = make_mlp(seed=99)
    fresh_opt = getattr(optim, name)(_groups(fresh, lr), **kwargs)
    fresh.load_state_dict(model_state)
    fresh_opt.load_state_dict(opt_state)
    train(fresh, fresh_opt, x, y, steps=7)
    params, state = _snapshot(fresh, fresh_opt)

    for got, want in zip(params, expected[0]):
        np.testing.assert_array_equal(got, want)
    assert [sorted(s) for s in state] == [sorted(s) for s in expected[1]]
    for got, want in zip(state, expected[1]):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_state_dict_has_pytorchs_layout_with_integer_parameter_ids():
    model = make_mlp(seed=2)
    opt = optim.SGD(_groups(model, 0.1), lr=0.1, momentum=0.9)
    train(model, opt, *make_data(seed=2), steps=1)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1] == {"lr": 0.05, "momentum": 0.9, "dampening": 0.0,
                                     "weight_decay": 0.0, "nesterov": False,
                                     "maximize": False, "foreach": None,
                                     "differentiable": False, "fused": None, "params": [2, 3]}
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    w1, b1, w2, b2 = model.parameters()
    buf = sd["state"][1]["momentum_buffer"]  # groups [w1, w2], [b1, b2]: index 1 is w2
    np.testing.assert_array_equal(buf.data, opt.state[w2]["momentum_buffer"].data)
    assert buf.data is not opt.state[w2]["momentum_buffer"].data
    buf.data[...] = 0.0  # a copy: editing it leaves the optimizer alone
    assert np.any(opt.state[w2]["momentum_buffer"].data != 0.0)


def test_load_state_dict_restores_hyperparameters_and_casts_state_to_the_parameter_dtype():
    src = _leaf([1.0, 2.0], dtype=bp.float64)
    opt = optim.Adam([src], lr=0.5)
    _set_grad(src, [0.1, 0.2])
    opt.step()
    dst = _leaf([1.0, 2.0], dtype=bp.float32)
    new = optim.Adam([dst], lr=0.001)
    new.load_state_dict(opt.state_dict())
    assert new.param_groups[0]["lr"] == 0.5
    assert new.param_groups[0]["params"][0] is dst
    assert new.state[dst]["exp_avg"].dtype == np.float32
    assert new.state[dst]["step"] == 1


def test_load_state_dict_refuses_a_mismatched_layout():
    a, b = _leaf([1.0]), _leaf([1.0, 2.0])
    two_groups = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1, momentum=0.9)
    one_group = optim.SGD([a, b], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="2 param groups, this optimizer 1"):
        one_group.load_state_dict(two_groups.state_dict())
    with pytest.raises(ValueError, match="param group 0 has 2 parameters in the state dict but 1"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(
            optim.SGD([{"params": [a, b]}, {"params": [_p()]}], lr=0.1).state_dict())
    _set_grad(a, [1.0])
    _set_grad(b, [1.0, 1.0])
    two_groups.step()
    swapped = optim.SGD([{"params": [b]}, {"params": [a]}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"state 'momentum_buffer' of parameter 0 has shape "
                                         r"\(1,\), the parameter \(2,\)"):
        swapped.load_state_dict(two_groups.state_dict())


def test_repr_lists_each_group_and_its_options():
    opt = optim.SGD([{"params": [_p()]}, {"params": [_p()], "lr": 0.5}], lr=0.1)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n")
    assert "    lr: 0.1\n" in text and "Parameter Group 1" in text and "    lr: 0.5\n" in text
