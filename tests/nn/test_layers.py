"""Dropout, normalisation, embedding and bilinear layers: values, gradients, running statistics
and state_dict loading against torch in train and eval mode; gradcheck and gradgradcheck of the
functional forms; dropout statistics; float32 preservation; and every error.

One table drives the torch comparison: each ``LayerCase`` builds the same layer in both
libraries, randomises the torch layer's state, loads it into backprop, then runs several training
steps and an eval step, comparing outputs, gradients and buffers after each.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import backprop as bp
from backprop import nn
from backprop.nn import functional as F


def _seeded(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


# --- the torch comparison table ---


@dataclass(frozen=True)
class LayerCase:
    """One row of the table.

    Attributes:
        name: the pytest id (unique).
        build: ``build(nn_module) -> layer``, with either library's ``nn`` (the APIs agree).
        make: ``rng -> tuple of input arrays`` (floats differentiated, integers passed as is).
    """

    name: str
    build: Callable
    make: Callable


def _normal(*shape):
    return lambda rng: (rng.normal(1.0, 2.0, shape),)


def _ints(high, shape):
    return lambda rng: (rng.integers(0, high, shape),)


LAYER_CASES = [
    LayerCase("bn1d_2d_input", lambda m: m.BatchNorm1d(3), _normal(5, 3)),
    LayerCase("bn1d_3d_input", lambda m: m.BatchNorm1d(3), _normal(4, 3, 6)),
    LayerCase("bn1d_momentum_none", lambda m: m.BatchNorm1d(3, momentum=None), _normal(5, 3)),
    LayerCase("bn1d_no_affine", lambda m: m.BatchNorm1d(3, affine=False, eps=1e-3),
              _normal(5, 3, 2)),
    LayerCase("bn1d_no_running_stats", lambda m: m.BatchNorm1d(3, track_running_stats=False),
              _normal(6, 3)),
    LayerCase("bn2d", lambda m: m.BatchNorm2d(4, momentum=0.3), _normal(3, 4, 5, 2)),
    LayerCase("bn2d_no_bias", lambda m: m.BatchNorm2d(2, bias=False), _normal(3, 2, 2, 2)),
    LayerCase("bn2d_momentum_none", lambda m: m.BatchNorm2d(2, momentum=None),
              _normal(2, 2, 3, 3)),
    LayerCase("bn2d_no_running_stats_no_affine",
              lambda m: m.BatchNorm2d(2, affine=False, track_running_stats=False),
              _normal(2, 2, 3, 3)),
    LayerCase("layer_norm_int", lambda m: m.LayerNorm(5), _normal(3, 5)),
    LayerCase("layer_norm_tuple", lambda m: m.LayerNorm((3, 4), eps=1e-3), _normal(2, 2, 3, 4)),
    LayerCase("layer_norm_no_bias", lambda m: m.LayerNorm([4], bias=False), _normal(3, 4)),
    LayerCase("layer_norm_no_affine", lambda m: m.LayerNorm(4, elementwise_affine=False),
              _normal(2, 4)),
    LayerCase("embedding", lambda m: m.Embedding(6, 3), _ints(6, (4, 5))),
    LayerCase("embedding_padding", lambda m: m.Embedding(6, 3, padding_idx=2), _ints(6, (20,))),
    LayerCase("embedding_negative_padding", lambda m: m.Embedding(5, 2, padding_idx=-1),
              _ints(5, (3, 7))),
    LayerCase("bilinear", lambda m: m.Bilinear(3, 4, 5),
              lambda rng: (rng.normal(size=(6, 3)), rng.normal(size=(6, 4)))),
    LayerCase("bilinear_no_bias_leading_dims", lambda m: m.Bilinear(2, 3, 4, bias=False),
              lambda rng: (rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 5, 3)))),
]


def _randomise_torch_state(torch, layer, rng) -> None:
    """Non-trivial parameters and running statistics, so loading them is really tested."""
    with torch.no_grad():
        for name, t in layer.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(3)
            elif name.endswith("running_var"):
                t.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, tuple(t.shape))))
            else:
                t.copy_(torch.from_numpy(rng.normal(size=tuple(t.shape))))


def _bp_state(torch_layer) -> dict:
    return {k: v.detach().numpy().copy() for k, v in torch_layer.state_dict().items()}


def _assert_close(actual, expected, what: str, rtol=1e-9, atol=1e-10) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def _compare_step(torch, case, bp_layer, t_layer, arrays, rng, step: str) -> None:
    bp_in = [bp.tensor(a, requires_grad=True) if a.dtype.kind == "f" else bp.tensor(a)
             for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) if a.dtype.kind == "f" else torch.tensor(a)
            for a in arrays]
    bp_layer.zero_grad()
    t_layer.zero_grad()
    y_bp, y_t = bp_layer(*bp_in), t_layer(*t_in)
    g = rng.normal(size=tuple(y_t.shape))
    (y_bp * bp.tensor(g)).sum().backward()
    (y_t * torch.tensor(g)).sum().backward()
    _assert_close(y_bp.data, y_t.detach().numpy(), f"{case.name} {step}: output")
    for k, (a, b) in enumerate(zip(bp_in, t_in)):
        if b.requires_grad:
            _assert_close(a.grad.data, b.grad.numpy(), f"{case.name} {step}: input {k} grad")
    t_params = dict(t_layer.named_parameters())
    for name, p in bp_layer.named_parameters():
        _assert_close(p.grad.data, t_params[name].grad.numpy(), f"{case.name} {step}: {name}")
    t_buffers = dict(t_layer.named_buffers())
    bp_buffers = dict(bp_layer.named_buffers())
    assert bp_buffers.keys() == t_buffers.keys()
    for name, b in bp_buffers.items():
        _assert_close(b.data, t_buffers[name].numpy(), f"{case.name} {step}: buffer {name}")


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c.name for c in LAYER_CASES])
def test_layer_matches_torch_train_and_eval(case: LayerCase):
    torch = pytest.importorskip("torch")
    rng = _seeded(case.name)
    t_layer = case.build(torch.nn).double()
    _randomise_torch_state(torch, t_layer, rng)
    bp_layer = case.build(nn).double()
    bp_layer.load_state_dict(_bp_state(t_layer))
    assert list(bp_layer.state_dict()) == list(t_layer.state_dict())
    for step in range(3):
        _compare_step(torch, case, bp_layer, t_layer, case.make(rng), rng, f"train step {step}")
    bp_layer.eval()
    t_layer.eval()
    _compare_step(torch, case, bp_layer, t_layer, case.make(rng), rng, "eval")


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c.name for c in LAYER_CASES])
def test_layer_float32_stays_float32(case: LayerCase):
    rng = _seeded(case.name + "f32")
    layer = case.build(nn)
    inputs = [bp.tensor(a.astype(np.float32), requires_grad=True) if a.dtype.kind == "f"
              else bp.tensor(a) for a in case.make(rng)]
    y = layer(*inputs)
    assert y.dtype == np.float32
    y.sum().backward()
    for t in inputs:
        if t.requires_grad:
            assert t.grad.dtype == np.float32
    for name, p in layer.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
    for name, b in layer.named_buffers():
        expected = np.int64 if name == "num_batches_tracked" else np.float32
        assert b.dtype == expected, name


def test_batchnorm_state_dict_keys_match_torch():
    torch = pytest.importorskip("torch")
    seq_bp = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.2))
    seq_t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.Dropout(0.2))
    assert list(seq_bp.state_dict()) == list(seq_t.state_dict())
    nbt = seq_bp.state_dict()["1.num_batches_tracked"]
    assert nbt.shape == () and nbt.dtype == np.int64


def test_batchnorm_running_stats_by_hand():
    rng = _seeded("bn_by_hand")
    layer = nn.BatchNorm1d(2, momentum=0.25).double()
    x = rng.normal(size=(4, 2))
    layer(bp.tensor(x))
    _assert_close(layer.running_mean.data, 0.25 * x.mean(0), "running_mean")
    _assert_close(layer.running_var.data, 0.75 + 0.25 * x.var(0, ddof=1), "running_var")
    assert layer.num_batches_tracked.item() == 1


def test_batchnorm_momentum_none_is_cumulative_average():
    rng = _seeded("bn_cumulative")
    layer = nn.BatchNorm2d(3, momentum=None).double()
    batches = [rng.normal(i, 1.0, (2, 3, 2, 2)) for i in range(4)]
    for b in batches:
        layer(bp.tensor(b))
    means = np.mean([b.mean((0, 2, 3)) for b in batches], axis=0)
    variances = np.mean([b.var((0, 2, 3), ddof=1) for b in batches], axis=0)
    _assert_close(layer.running_mean.data, means, "running_mean")
    _assert_close(layer.running_var.data, variances, "running_var")
    assert layer.num_batches_tracked.item() == 4


def test_batchnorm_eval_does_not_update_and_uses_running_stats():
    layer = nn.BatchNorm1d(2).double().eval()
    layer.running_mean.data[:] = [1.0, -1.0]
    layer.running_var.data[:] = [4.0, 0.25]
    x = np.array([[3.0, 0.0], [1.0, -1.0]])
    y = layer(bp.tensor(x))
    _assert_close(y.data, (x - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5), "eval")
    assert layer.num_batches_tracked.item() == 0
    _assert_close(layer.running_mean.data, [1.0, -1.0], "unchanged")


def test_batchnorm_reset_running_stats():
    layer = nn.BatchNorm1d(3)
    layer(bp.randn(4, 3) * 3 + 2)
    layer.reset_running_stats()
    assert np.all(layer.running_mean.data == 0) and np.all(layer.running_var.data == 1)
    assert layer.num_batches_tracked.item() == 0


def test_embedding_padding_row_gets_no_gradient_and_starts_at_zero():
    bp.manual_seed(0)
    layer = nn.Embedding(4, 3, padding_idx=1)
    assert np.all(layer.weight.data[1] == 0)
    layer(bp.tensor([[1, 0], [1, 1]])).sum().backward()
    assert np.all(layer.weight.grad.data[1] == 0)
    np.testing.assert_array_equal(layer.weight.grad.data[0], np.ones(3))
    np.testing.assert_array_equal(layer.weight.grad.data[2:], np.zeros((2, 3)))


def test_embedding_init_is_standard_normal():
    bp.manual_seed(1)
    w = nn.Embedding(400, 50).weight.data
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02


def test_bilinear_init_bounds():
    bp.manual_seed(2)
    layer = nn.Bilinear(16, 3, 8)
    bound = 1 / math.sqrt(16)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.8 * bound
    assert layer.weight.shape == (8, 16, 3) and layer.bias.shape == (8,)


def test_layer_repr_matches_torch():
    torch = pytest.importorskip("torch")
    for build in (lambda m: m.BatchNorm2d(3, momentum=None), lambda m: m.Dropout(0.3),
                  lambda m: m.Embedding(5, 2, padding_idx=0), lambda m: m.Bilinear(2, 3, 4),
                  lambda m: m.Dropout2d(), lambda m: m.BatchNorm1d(2, bias=False),
                  lambda m: m.LayerNorm((2, 3), bias=False)):
        assert repr(build(nn)) == repr(build(torch.nn))


# --- gradcheck / gradgradcheck of the functional forms ---


def _seeded_dropout(fn, p):
    def call(x):
        bp.manual_seed(7)  # the same mask for every evaluation of the finite differences
        return fn(x, p=p)
    return call


def _params(rng, *shapes):
    return tuple(bp.tensor(rng.normal(size=s), requires_grad=True) for s in shapes)


FUNCTIONAL_CASES = {
    "dropout": lambda rng: (_seeded_dropout(F.dropout, 0.4), _params(rng, (3, 4))),
    "dropout2d": lambda rng: (_seeded_dropout(F.dropout2d, 0.5), _params(rng, (3, 4, 2, 2))),
    "batch_norm_train": lambda rng: (
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        _params(rng, (4, 3, 2), (3,), (3,))),
    "batch_norm_train_running": lambda rng: (
        lambda x: F.batch_norm(x, bp.zeros(2, dtype=bp.float64), bp.ones(2, dtype=bp.float64),
                               training=True, momentum=0.5),
        _params(rng, (3, 2, 2, 2))),
    "batch_norm_eval": lambda rng: (
        lambda x, w, b: F.batch_norm(x, bp.tensor([0.5, -1.0, 0.0]), bp.tensor([2.0, 0.5, 1.0]),
                                     w, b, training=False),
        _params(rng, (4, 3), (3,), (3,))),
    "layer_norm": lambda rng: (
        lambda x, w, b: F.layer_norm(x, (3, 2), w, b), _params(rng, (2, 3, 2), (3, 2), (3, 2))),
    "layer_norm_no_affine": lambda rng: (lambda x: F.layer_norm(x, 4), _params(rng, (3, 4))),
    "embedding": lambda rng: (lambda w: F.embedding(bp.tensor([[0, 2], [2, 3]]), w),
                              _params(rng, (4, 3))),
    # the padding row (a constant here) deliberately gets no gradient, so check the other rows
    "embedding_padding": lambda rng: (
        lambda w, pad_row: F.embedding(bp.tensor([0, 2, 2, 1]), bp.cat([w, pad_row]),
                                       padding_idx=2),
        _params(rng, (2, 2)) + (bp.tensor(rng.normal(size=(1, 2))),)),
    "bilinear": lambda rng: (F.bilinear, _params(rng, (3, 2), (3, 4), (2, 2, 4), (2,))),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CASES))
def test_functional_gradcheck(name: str):
    fn, inputs = FUNCTIONAL_CASES[name](_seeded(name))
    assert bp.gradcheck(fn, inputs)


@pytest.mark.parametrize("name", list(FUNCTIONAL_CASES))
def test_functional_gradgradcheck(name: str):
    fn, inputs = FUNCTIONAL_CASES[name](_seeded(name + "gg"))
    assert bp.gradgradcheck(fn, inputs)


def test_functional_forms_match_torch():
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    rng = _seeded("functional_vs_torch")
    x = rng.normal(size=(4, 3, 5))
    w, b = rng.normal(size=3), rng.normal(size=3)
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    for training in (True, False):
        rm_bp, rv_bp = bp.tensor(rm.copy()), bp.tensor(rv.copy())
        rm_t, rv_t = torch.tensor(rm.copy()), torch.tensor(rv.copy())
        y_bp = F.batch_norm(bp.tensor(x), rm_bp, rv_bp, bp.tensor(w), bp.tensor(b), training,
                            0.2, 1e-3)
        y_t = tF.batch_norm(torch.tensor(x), rm_t, rv_t, torch.tensor(w), torch.tensor(b),
                            training, 0.2, 1e-3)
        _assert_close(y_bp.data, y_t.numpy(), f"batch_norm training={training}")
        _assert_close(rm_bp.data, rm_t.numpy(), "running_mean")
        _assert_close(rv_bp.data, rv_t.numpy(), "running_var")
    _assert_close(F.layer_norm(bp.tensor(x), (3, 5)).data,
                  tF.layer_norm(torch.tensor(x), (3, 5)).numpy(), "layer_norm")
    idx = rng.integers(0, 3, (2, 4))
    table = rng.normal(size=(3, 5))
    _assert_close(F.embedding(bp.tensor(idx), bp.tensor(table)).data,
                  tF.embedding(torch.tensor(idx), torch.tensor(table)).numpy(), "embedding")
    w3 = rng.normal(size=(2, 5, 5))
    x2 = rng.normal(size=(4, 3, 5))
    _assert_close(F.bilinear(bp.tensor(x), bp.tensor(x2), bp.tensor(w3)).data,
                  tF.bilinear(torch.tensor(x), torch.tensor(x2), torch.tensor(w3)).numpy(),
                  "bilinear")


# --- dropout statistics ---


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_preserves_mean_and_zeroes_fraction_p(p: float):
    bp.manual_seed(int(p * 100))
    y = nn.Dropout(p)(bp.ones(200_000)).data
    assert abs((y == 0).mean() - p) < 0.005
    assert abs(y.mean() - 1.0) < 0.02
    np.testing.assert_allclose(np.unique(y[y != 0]), [1 / (1 - p)], rtol=1e-6)


def test_dropout2d_zeroes_whole_channels():
    bp.manual_seed(3)
    y = nn.Dropout2d(0.5)(bp.ones(64, 32, 3, 3)).data
    per_channel = y.reshape(64, 32, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))  # constant within a channel
    zeroed = (per_channel[..., 0] == 0).mean()
    assert abs(zeroed - 0.5) < 0.05
    assert set(np.unique(y)) == {0.0, 2.0}


def test_dropout2d_3d_input_drops_channels_of_n_c_l():
    bp.manual_seed(4)
    y = F.dropout2d(bp.ones(50, 20, 7), p=0.3).data
    assert np.all(y.min(-1) == y.max(-1))
    assert abs((y[..., 0] == 0).mean() - 0.3) < 0.06


@pytest.mark.parametrize("layer_cls", [nn.Dropout, nn.Dropout2d])
def test_dropout_eval_is_identity(layer_cls):
    x = bp.randn(2, 3, 4, 4)
    layer = layer_cls(0.9).eval()
    assert layer(x) is x
    assert F.dropout(x, 0.9, training=False) is x


def test_dropout_extreme_p():
    x = bp.randn(3, 4, requires_grad=True)
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    assert np.all(y.data == 0)
    y.sum().backward()
    assert np.all(x.grad.data == 0)


def test_dropout_reproducible_under_manual_seed():
    draws = []
    for _ in range(2):
        bp.manual_seed(123)
        draws.append((F.dropout(bp.ones(50)).data, nn.Dropout2d()(bp.ones(4, 5, 2)).data))
    np.testing.assert_array_equal(draws[0][0], draws[1][0])
    np.testing.assert_array_equal(draws[0][1], draws[1][1])
    bp.manual_seed(124)
    assert not np.array_equal(F.dropout(bp.ones(50)).data, draws[0][0])


def test_dropout_gradient_is_the_mask():
    bp.manual_seed(5)
    x = bp.randn(100, requires_grad=True)
    y = F.dropout(x, 0.25)
    y.sum().backward()
    expected = np.where(y.data != 0, 1 / 0.75, 0.0)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-6)


def test_dropout_inplace():
    bp.manual_seed(6)
    x = bp.ones(40)
    y = nn.Dropout(0.5, inplace=True)(x)
    assert y is x and set(np.unique(x.data)) == {0.0, 2.0}


def test_dropout_float32_stays_float32():
    x = bp.randn(10, 4, 3, requires_grad=True)
    for y in (F.dropout(x, 0.3), F.dropout2d(x, 0.3)):
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32


# --- errors ---


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_p(p: float):
    for make in (lambda: nn.Dropout(p), lambda: nn.Dropout2d(p),
                 lambda: F.dropout(bp.ones(3), p), lambda: F.dropout2d(bp.ones(1, 2, 3), p)):
        with pytest.raises(ValueError, match="between 0 and 1"):
            make()


def test_dropout2d_on_2d_input_warns_and_drops_elementwise_as_torch():
    # PyTorch warns for a 2-D input and drops each (N, C) entry on its own (issue 15)
    bp.manual_seed(0)
    with pytest.warns(UserWarning, match=r"dropout2d: received a 2-D input.*Use dropout"):
        y = nn.Dropout2d(0.5)(bp.ones(200, 30)).data
    assert set(np.unique(y)) == {0.0, 2.0}
    rows_mixed = ((y == 0).any(axis=1) & (y == 2).any(axis=1)).mean()
    assert rows_mixed > 0.9  # element-wise, not whole rows
    with pytest.raises(bp.ShapeError, match=r"at least 2 dimensions.*\(3,\)"):
        nn.Dropout2d()(bp.ones(3))


def test_batchnorm_wrong_channels_names_shapes():
    with pytest.raises(bp.ShapeError, match=r"expected 3 channels.*\(4, 5\)"):
        nn.BatchNorm1d(3)(bp.ones(4, 5))
    with pytest.raises(bp.ShapeError, match=r"expected 2 channels.*\(1, 3, 2, 2\)"):
        nn.BatchNorm2d(2)(bp.ones(1, 3, 2, 2))


def test_batchnorm_wrong_rank_names_shapes():
    with pytest.raises(bp.ShapeError, match=r"\(N, C\) or \(N, C, L\).*\(2, 3, 4, 5\)"):
        nn.BatchNorm1d(3)(bp.ones(2, 3, 4, 5))
    with pytest.raises(bp.ShapeError, match=r"\(N, C, H, W\).*\(2, 3\)"):
        nn.BatchNorm2d(3)(bp.ones(2, 3))
    with pytest.raises(bp.ShapeError, match=r"\(N, C, \*\).*\(3,\)"):
        F.batch_norm(bp.ones(3), None, None, training=True)


def test_batch_norm_functional_wrong_stat_shapes():
    with pytest.raises(bp.ShapeError, match=r"running_mean must have shape \(3,\).*\(4,\)"):
        F.batch_norm(bp.ones(2, 3), bp.zeros(4), bp.ones(3))
    with pytest.raises(bp.ShapeError, match=r"weight must have shape \(3,\).*\(2,\)"):
        F.batch_norm(bp.ones(2, 3), None, None, bp.ones(2), training=True)


def test_batchnorm_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(bp.ones(1, 3))
    assert nn.BatchNorm1d(3).eval()(bp.ones(1, 3)).shape == (1, 3)


def test_normalization_constructor_errors():
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm((3, 0))


def test_layer_norm_wrong_shape_names_shapes():
    with pytest.raises(bp.ShapeError, match=r"\(2, 5\).*\(4,\)"):
        nn.LayerNorm(4)(bp.ones(2, 5))
    with pytest.raises(bp.ShapeError, match=r"\(3,\).*\(3, 4\)"):
        F.layer_norm(bp.ones(3), (3, 4))
    with pytest.raises(bp.ShapeError, match=r"weight must have shape.*\(4,\).*\(3,\)"):
        F.layer_norm(bp.ones(2, 4), (4,), bp.ones(3))


def test_embedding_out_of_range_raises_index_error():
    layer = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"index 5 is out of range.*5 rows"):
        layer(bp.tensor([0, 5]))
    with pytest.raises(IndexError, match=r"index -1 is out of range"):
        layer(bp.tensor([-1, 2]))


def test_embedding_rejects_float_indices_and_bad_padding():
    with pytest.raises(TypeError, match="integer"):
        nn.Embedding(5, 2)(bp.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=-6)
    with pytest.raises(ValueError, match="positive"):
        nn.Embedding(0, 2)
    with pytest.raises(bp.ShapeError, match=r"\(num_embeddings, embedding_dim\).*\(5,\)"):
        F.embedding(bp.tensor([0]), bp.ones(5))


def test_bilinear_shape_errors():
    layer = nn.Bilinear(3, 4, 2)
    with pytest.raises(bp.ShapeError, match=r"\(5, 2\) and \(5, 4\).*\(2, 3, 4\)"):
        layer(bp.ones(5, 2), bp.ones(5, 4))
    with pytest.raises(bp.ShapeError, match=r"\(5, 3\) and \(6, 4\)"):
        layer(bp.ones(5, 3), bp.ones(6, 4))
    with pytest.raises(bp.ShapeError, match=r"weight must have shape"):
        F.bilinear(bp.ones(2, 3), bp.ones(2, 4), bp.ones(3, 4))
    with pytest.raises(bp.ShapeError, match=r"bias must have shape \(2,\).*\(3,\)"):
        F.bilinear(bp.ones(2, 3), bp.ones(2, 4), bp.ones(2, 3, 4), bp.ones(3))
    with pytest.raises(ValueError, match="positive"):
        nn.Bilinear(0, 1, 1)
