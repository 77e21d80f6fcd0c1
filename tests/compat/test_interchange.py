"""PyTorch weight interchange through safetensors, without importing torch in backprop: a
torch model's ``state_dict`` saved with ``safetensors.torch`` loads into the equivalent
``backprop.nn`` model (through ``backprop.load`` and through ``safetensors.numpy``), and
``backprop.save`` writes what ``safetensors.torch`` loads into the torch model (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")
st_numpy = pytest.importorskip("safetensors.numpy")


def lenet5(nn):
    """LeNet-5 (tanh, average pooling) in either library: the same code, the same keys."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )


def lstm_model(nn):
    """A two-layer batch-first LSTM and a linear read-out of every step."""
    return nn.ModuleDict({"lstm": nn.LSTM(8, 16, num_layers=2, batch_first=True),
                          "head": nn.Linear(16, 4)})


def run_lenet(model, x):
    return model(x)


def run_lstm(model, x):
    out, _ = model["lstm"](x)
    return model["head"](out)


CASES = [("lenet5", lenet5, run_lenet, (3, 1, 28, 28)), ("lstm", lstm_model, run_lstm, (2, 5, 8))]


@pytest.mark.parametrize("name, build, run, shape", CASES, ids=[c[0] for c in CASES])
def test_torch_weights_load_into_backprop_and_give_torch_s_outputs(tmp_path, rng, name, build,
                                                                   run, shape):
    torch.manual_seed(0)
    tmodel = build(torch.nn).eval()
    path = tmp_path / f"{name}.safetensors"
    st_torch.save_file(tmodel.state_dict(), str(path))
    x = rng.normal(size=shape).astype(np.float32)
    with torch.no_grad():
        expected = run(tmodel, torch.from_numpy(x)).numpy()
    for state in (bp.load(path), st_numpy.load_file(str(path))):
        model = build(bp.nn).eval()
        result = model.load_state_dict(state)
        assert result.missing_keys == [] and result.unexpected_keys == []
        with bp.no_grad():
            got = run(model, bp.tensor(x)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, build, run, shape", CASES, ids=[c[0] for c in CASES])
def test_backprop_weights_load_into_torch_and_give_backprop_s_outputs(tmp_path, rng, name, build,
                                                                      run, shape):
    bp.manual_seed(1)
    model = build(bp.nn).eval()
    path = tmp_path / f"{name}.safetensors"
    bp.save(model.state_dict(), path)
    tmodel = build(torch.nn).eval()
    tmodel.load_state_dict(st_torch.load_file(str(path)))  # strict: every key, every shape
    x = rng.normal(size=shape).astype(np.float32)
    with bp.no_grad():
        expected = run(model, bp.tensor(x)).numpy()
    with torch.no_grad():
        got = run(tmodel, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prefix, wrapper", [("module.", "DistributedDataParallel"),
                                             ("_orig_mod.", "torch.compile")])
def test_wrapper_prefixes_get_a_hint_naming_the_prefix(tmp_path, prefix, wrapper):
    torch.manual_seed(0)
    tmodel = lenet5(torch.nn)
    path = tmp_path / "wrapped.safetensors"
    st_torch.save_file({prefix + k: v for k, v in tmodel.state_dict().items()}, str(path))
    model = lenet5(bp.nn)
    with pytest.raises(RuntimeError, match=f"start with '{prefix}'.*{wrapper}.*removeprefix"):
        model.load_state_dict(bp.load(path))
    state = {k.removeprefix(prefix): v for k, v in bp.load(path).items()}
    model.load_state_dict(state)  # the hint's fix works


def test_bfloat16_weights_are_refused_with_a_clear_message(tmp_path):
    tmodel = lenet5(torch.nn).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    st_torch.save_file(tmodel.state_dict(), str(path))
    with pytest.raises(ValueError, match="bfloat16.*v.float()"):
        bp.load(path)


LAYERS = {
    "Linear": lambda nn: nn.Linear(4, 3),
    "Bilinear": lambda nn: nn.Bilinear(3, 4, 2),
    "Conv1d": lambda nn: nn.Conv1d(2, 3, 3),
    "Conv2d": lambda nn: nn.Conv2d(2, 3, 3, groups=1),
    "ConvTranspose2d": lambda nn: nn.ConvTranspose2d(2, 3, 3),
    "BatchNorm1d": lambda nn: nn.BatchNorm1d(3),
    "BatchNorm2d": lambda nn: nn.BatchNorm2d(3),
    "LayerNorm": lambda nn: nn.LayerNorm(5),
    "Embedding": lambda nn: nn.Embedding(7, 3),
    "RNN": lambda nn: nn.RNN(3, 4, num_layers=2, bidirectional=True),
    "GRU": lambda nn: nn.GRU(3, 4, bias=False),
    "LSTM": lambda nn: nn.LSTM(3, 4, num_layers=2),
    "MultiheadAttention": lambda nn: nn.MultiheadAttention(8, 2),
    "TransformerEncoderLayer": lambda nn: nn.TransformerEncoderLayer(8, 2, 16),
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_every_layer_s_state_dict_crosses_both_ways_with_the_same_keys_and_values(tmp_path,
                                                                                  layer):
    torch.manual_seed(0)
    tmodel = LAYERS[layer](torch.nn)
    path = tmp_path / "from_torch.safetensors"
    st_torch.save_file(tmodel.state_dict(), str(path))
    model = LAYERS[layer](bp.nn)
    model.load_state_dict(bp.load(path))  # strict: the same keys and shapes
    for key, value in tmodel.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key].numpy(), value.numpy())
    back = tmp_path / "from_backprop.safetensors"
    bp.manual_seed(1)
    fresh = LAYERS[layer](bp.nn)
    bp.save(fresh.state_dict(), back)
    tmodel.load_state_dict(st_torch.load_file(str(back)))
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(tmodel.state_dict()[key].numpy(), value.numpy())
