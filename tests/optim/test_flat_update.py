"""The update over flat buffers (``Optimizer._flat_update``, PyTorch's ``foreach`` idea): the same
bits as the per-parameter loop, taken only when it is safe, and PyTorch's switches."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import nn, optim
from tests.optim.problems import CONFIG_IDS, CONFIGS, make_data, make_mlp, train


def _flat(model) -> bool:
    bases = {id(p.data.base) for p in model.parameters()}
    return len(bases) == 1 and next(iter(model.parameters())).data.base is not None


def _state_arrays(opt):
    return [v.data for s in opt.state.values() for v in s.values() if isinstance(v, bp.Tensor)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_flat_update_is_bit_identical_to_the_per_parameter_loop(config, dtype):
    name, kwargs = config
    results = []
    for foreach in (None, False):
        model = make_mlp(seed=3, dtype=dtype)
        opt = getattr(optim, name)(model.parameters(), foreach=foreach, **kwargs)
        losses = train(model, opt, *make_data(seed=3, dtype=dtype), steps=8)
        assert _flat(model) == (foreach is None)
        results.append((losses, [p.data.copy() for p in model.parameters()],
                        _state_arrays(opt)))
    (l1, p1, s1), (l2, p2, s2) = results
    assert l1 == l2
    for a, b in zip(p1 + s1, p2 + s2, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)


def _reference_and_flat(opt_cls=optim.SGD, **kwargs):
    models = [make_mlp(seed=4), make_mlp(seed=4)]
    opts = [opt_cls(models[0].parameters(), foreach=False, **kwargs),
            opt_cls(models[1].parameters(), **kwargs)]
    return models, opts


def _same(models):
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_a_view_of_a_parameter_held_elsewhere_keeps_seeing_the_updates():
    model = make_mlp(seed=4)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    row = model.hidden.weight[0]  # a view sharing the weight's memory
    array_view = model.out.bias.data[:]
    train(model, opt, *make_data(seed=4), steps=3)
    assert not _flat(model)  # refused: moving the weight would orphan `row`
    np.testing.assert_array_equal(row.data, model.hidden.weight.data[0])
    np.testing.assert_array_equal(array_view, model.out.bias.data)


def test_parameters_rebound_after_flattening_are_flattened_again():
    models, opts = _reference_and_flat(lr=0.1, momentum=0.9)
    x, y = make_data(seed=4)
    for m, o in zip(models, opts):
        train(m, o, x, y, steps=2)
    assert _flat(models[1])
    for m in models:  # a user replaces a parameter's array (as Module.to does)
        m.hidden.weight.data = m.hidden.weight.data * 0.5
    for m, o in zip(models, opts):
        train(m, o, x, y, steps=3)
    assert _flat(models[1])
    _same(models)


def test_load_state_dict_mid_training_continues_exactly():
    models, opts = _reference_and_flat(optim.Adam, lr=0.01)
    x, y = make_data(seed=4)
    for m, o in zip(models, opts):
        train(m, o, x, y, steps=3)
        o.load_state_dict(o.state_dict())  # fresh state tensors, new group dicts
        train(m, o, x, y, steps=3)
    assert _flat(models[1])
    _same(models)
    for a, b in zip(_state_arrays(opts[0]), _state_arrays(opts[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_parameters_at_different_steps_fall_back_to_the_loop():
    # Adam's bias correction depends on each parameter's own step count: a parameter that
    # had no gradient at first is one step behind, so one rule call cannot serve the group
    models, opts = _reference_and_flat(optim.Adam, lr=0.01)
    x, y = make_data(seed=4)
    for m, o in zip(models, opts):
        o.zero_grad()
        m.hidden.weight.requires_grad_(False)
        ((m(x) - y) ** 2).mean().backward()
        o.step()
        m.hidden.weight.requires_grad_(True)
        train(m, o, x, y, steps=3)
    assert opts[1].state[models[1].out.bias]["step"] == 4
    assert opts[1].state[models[1].hidden.weight]["step"] == 3
    _same(models)


def test_large_parameters_take_the_loop_unless_foreach_is_asked_for():
    for foreach, flat in ((None, False), (True, True), (False, False)):
        layer = nn.Linear(200, 100)  # 20,000 weights on average 10,050 per parameter
        opt = optim.SGD(layer.parameters(), lr=0.1, foreach=foreach)
        layer(bp.ones(2, 200)).sum().backward()
        opt.step()
        assert (layer.weight.data.base is not None) == flat


def test_fused_true_takes_the_flat_path_too():
    layer = nn.Linear(200, 100)
    opt = optim.Adam(layer.parameters(), lr=0.1, fused=True)
    layer(bp.ones(2, 200)).sum().backward()
    opt.step()
    assert layer.weight.data.base is layer.bias.data.base is not None


def test_the_step_still_bumps_version_counters():
    model = make_mlp(seed=4)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = make_data(seed=4)
    train(model, opt, x, y, steps=1)
    assert _flat(model)
    loss = (model(x) - y).abs().sum()  # saves the weights
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"differentiable": True}, ValueError, "differentiable=True"),
    ({"foreach": True, "fused": True}, RuntimeError, "cannot be `True` together"),
    ({"foreach": "yes"}, TypeError, "foreach must be None, True or False"),
])
def test_pytorchs_switches_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        optim.SGD([bp.zeros(2, requires_grad=True)], lr=0.1, **kwargs)


def test_capturable_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="no GPU"):
        optim.Adam([bp.zeros(2, requires_grad=True)], capturable=True)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "NAdam", "RMSprop", "Adagrad",
                                  "Adadelta"])
def test_param_group_keys_are_pytorchs(name):
    torch = pytest.importorskip("torch")
    ours = getattr(optim, name)([bp.zeros(2, requires_grad=True)], lr=0.1)
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    assert set(ours.param_groups[0]) == set(theirs.param_groups[0])


def test_a_view_taken_after_flattening_blocks_moving_the_buffer_again():
    model = make_mlp(seed=4)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = make_data(seed=4)
    train(model, opt, x, y, steps=1)
    assert _flat(model)
    row = model.out.weight[1]  # a view into the flat buffer
    model.hidden.bias.data = model.hidden.bias.data.copy()  # forces a rebuild
    train(model, opt, x, y, steps=2)
    np.testing.assert_array_equal(row.data, model.out.weight.data[1])
    assert row.data.base is model.out.weight.data.base


def test_a_gradient_of_another_dtype_set_by_hand_takes_the_loop():
    results = []
    for foreach in (None, False):
        model = make_mlp(seed=4, dtype=np.float32)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=foreach)
        train(model, opt, *make_data(seed=4, dtype=np.float32), steps=2)
        for p in model.parameters():
            p.grad = bp.tensor(np.full(p.shape, 0.1), dtype=bp.float64)
        opt.step()
        results.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_a_deep_copy_of_model_and_optimizer_trains_like_the_original():
    import copy

    model = make_mlp(seed=4)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = make_data(seed=4)
    train(model, opt, x, y, steps=2)
    assert _flat(model)
    model2, opt2 = copy.deepcopy((model, opt))
    train(model, opt, x, y, steps=3)
    train(model2, opt2, x, y, steps=3)
    _same([model, model2])
