"""``backprop.save`` / ``backprop.load`` (PyTorch's ``torch.save`` / ``torch.load``): safe
safetensors files, interchangeable with PyTorch's ``safetensors.torch`` (issue 15; issue 14's
weight interchange builds on them)."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

import backprop as bp
from backprop.serialization import UnsafeFileError

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


def _lenet(m):
    nn = m.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 14 * 14, 10))


def test_a_pytorch_state_dict_saved_with_safetensors_loads_and_gives_torch_s_outputs(tmp_path,
                                                                                     rng):
    torch.manual_seed(0)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    for make in (_lenet, lambda m: m.nn.LSTM(5, 7, num_layers=2, bidirectional=True)):
        theirs = make(torch).eval()
        st_torch.save_file(theirs.state_dict(), tmp_path / "t.safetensors")
        ours = make(bp).eval()
        ours.load_state_dict(bp.load(tmp_path / "t.safetensors"))
        inp = x if ours.__class__.__name__ == "Sequential" else x[0, 0, :, :5].reshape(4, 7, 5)
        out = ours(bp.tensor(inp))
        tout = theirs(torch.tensor(inp))
        out, tout = (out[0], tout[0]) if isinstance(out, tuple) else (out, tout)
        np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_backprop_save_of_a_state_dict_is_a_plain_safetensors_file_torch_reads(tmp_path):
    ours = _lenet(bp)
    bp.save(ours.state_dict(), tmp_path / "b.safetensors")
    loaded = st_torch.load_file(tmp_path / "b.safetensors")
    assert sorted(loaded) == sorted(ours.state_dict())
    theirs = _lenet(torch)
    theirs.load_state_dict(loaded)  # strict: every key and shape as torch names them
    for (name, p), (_, tp) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_array_equal(p.data, tp.numpy(), err_msg=name)
    # and back, in the saved order
    assert list(bp.load(tmp_path / "b.safetensors")) == list(ours.state_dict())


def test_a_checkpoint_dict_round_trips_and_training_resumes_exactly(tmp_path, rng):
    x = bp.tensor(rng.standard_normal((8, 4)).astype(np.float32))
    y = bp.tensor(rng.integers(0, 3, 8))

    def step(model, opt):
        opt.zero_grad()
        bp.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    bp.manual_seed(0)
    model = bp.nn.Linear(4, 3)
    opt = bp.optim.Adam(model.parameters(), lr=0.1)
    step(model, opt)
    checkpoint = {"epoch": 1, "model_state_dict": model.state_dict(),
                  "optimizer_state_dict": opt.state_dict(), "loss": 0.25,
                  "history": [1.5, 0.5], "shape": (4, 3), "note": None, "tag": "run-1"}
    bp.save(checkpoint, tmp_path / "ckpt.pt")
    step(model, opt)  # the uninterrupted run's second step
    restored = bp.load(tmp_path / "ckpt.pt", map_location="cpu", weights_only=True)
    assert {k: restored[k] for k in ("epoch", "loss", "history", "shape", "note", "tag")} == \
        {"epoch": 1, "loss": 0.25, "history": [1.5, 0.5], "shape": (4, 3), "note": None,
         "tag": "run-1"}
    model2 = bp.nn.Linear(4, 3)
    model2.load_state_dict(restored["model_state_dict"])
    opt2 = bp.optim.Adam(model2.parameters(), lr=0.1)
    opt2.load_state_dict(restored["optimizer_state_dict"])
    step(model2, opt2)
    np.testing.assert_array_equal(model2.weight.data, model.weight.data)
    # the same checkpoint in torch's own idiom: torch.save / torch.load
    tmodel = torch.nn.Linear(4, 3)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.1)
    buf = io.BytesIO()
    torch.save({"epoch": 1, "model": tmodel.state_dict(), "opt": topt.state_dict()}, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["epoch"] == 1


def test_file_objects_tensors_and_numbers_round_trip(rng):
    for obj in (bp.tensor(rng.standard_normal((2, 3))), 3.5, [bp.ones(2), {"a": (1, 2)}],
                {0: bp.zeros(1), "k": np.arange(3)}):
        buf = io.BytesIO()
        bp.save(obj, buf)
        buf.seek(0)
        back = bp.load(buf)
        if isinstance(obj, bp.Tensor):
            np.testing.assert_array_equal(back.data, obj.data)
        elif isinstance(obj, list):
            assert back[1] == {"a": (1, 2)} and np.array_equal(back[0].data, np.ones(2))
        elif isinstance(obj, dict):
            assert set(back) == {0, "k"} and isinstance(back["k"], np.ndarray)
        else:
            assert back == obj


def test_torch_save_files_and_pickles_are_refused_without_unpickling(tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "model.pt")
    with pytest.raises(UnsafeFileError, match=r"torch\.save.*never unpickles.*save_file"):
        bp.load(tmp_path / "model.pt")
    marker = tmp_path / "pwned"

    class Payload:  # unpickling this would create the marker file
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"evil{protocol}.pkl"
        path.write_bytes(pickle.dumps({"weights": Payload()}, protocol=protocol))
        with pytest.raises(UnsafeFileError, match="pickle"):
            bp.load(path, weights_only=False)
    assert not marker.exists()
    assert isinstance(UnsafeFileError("x"), RuntimeError)


def test_load_checks_devices_and_files(tmp_path):
    path = tmp_path / "m.safetensors"
    bp.save(bp.nn.Linear(2, 1).state_dict(), path)
    for loc in ("cpu", bp.device("cpu"), torch.device("cpu"), {"cuda:0": "cpu"},
                lambda storage, location: storage):
        assert set(bp.load(path, map_location=loc)) == {"weight", "bias"}
    with pytest.raises(AssertionError):
        bp.load(path, map_location="cuda")
    with pytest.raises(RuntimeError):  # what torch raises on a machine without CUDA
        torch.load(io.BytesIO(_torch_bytes()), map_location="cuda", weights_only=True)
    data = bytearray(path.read_bytes())
    (tmp_path / "short.safetensors").write_bytes(bytes(data[:20]))
    with pytest.raises(ValueError, match="truncated"):
        bp.load(tmp_path / "short.safetensors")
    ckpt = tmp_path / "c.safetensors"
    bp.save({"w": bp.ones(3), "epoch": 1}, ckpt)
    corrupt = bytearray(ckpt.read_bytes())
    corrupt[-1] ^= 0xFF
    ckpt.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="SHA-256"):
        bp.load(ckpt)
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="state_dict"):
        bp.save(bp.nn.Linear(2, 1), tmp_path / "module.pt")


def test_bfloat16_files_are_refused_with_the_conversion(tmp_path):
    st_torch.save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "bf.safetensors")
    with pytest.raises(ValueError, match=r"bfloat16.*\.float\(\)"):
        bp.load(tmp_path / "bf.safetensors")


def test_save_writes_atomically(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    bp.save({"a": bp.ones(2)}, path)
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        bp.save({"a": bp.zeros(2)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]


def _torch_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(1)}, buf)
    return buf.getvalue()
