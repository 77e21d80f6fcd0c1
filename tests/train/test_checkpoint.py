"""save_checkpoint / load_checkpoint: exact round trips, integrity checks, atomic writes."""

import json
import math
import os
import struct

import numpy as np
import pytest

import backprop as bp
import backprop.serialization as fmt
import backprop.train.checkpoint as ckpt_mod
from backprop.train import CheckpointError, load_checkpoint, read_metadata, save_checkpoint


def _state():
    pcg = np.random.default_rng(123).bit_generator.state  # 128-bit ints
    return {
        "model": bp.nn.Linear(3, 2).state_dict(),
        "t": bp.tensor(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "arrays": {
            "f32": np.linspace(0, 1, 5, dtype=np.float32),
            "f64": np.array([1e-300, -0.0, np.pi]),
            "i64": np.array([-(2**62), 0, 2**62], dtype=np.int64),
            "bool": np.array([True, False, True]),
            "empty": np.empty((0, 3), dtype=np.float32),
            "zero_d": np.array(2.5, dtype=np.float64),
        },
        "scalars": [np.float32(1.5), np.int64(-7), np.float64(0.1), np.bool_(True)],
        "tuple": (1, "a", (2.0, None), [3, (4,)]),
        "int_keys": {0: {"step": 3}, 1: "x", -5: [1]},
        "__dunder": {"__tensor__": 1, "__x": "y"},
        "floats": [math.nan, math.inf, -math.inf, 0.1 + 0.2, 1e308],
        "big": 2**70 + 1,
        "neg_big": -(2**65),
        "rng": pcg,
        "json": {"s": "é ünïcode", "none": None, "t": True, "f": False, "nested": [[[]]], "e": {}},
        "dotted.key": np.ones(2),
        "dotted": {"key": np.zeros(2)},  # same tensor name as above: both must survive
    }


def _assert_same(a, b, where="state"):
    if isinstance(a, dict):  # an OrderedDict (a module's state_dict) comes back as a dict
        assert type(b) is dict, where
    else:
        assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, bp.Tensor):
        _assert_same(a.data, b.data, where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a == b, where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def test_round_trip_preserves_types_values_and_dtypes(tmp_path):
    path = tmp_path / "c.safetensors"
    state = _state()
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    _assert_same(state, back)
    # spot checks that _assert_same cannot have glossed over
    assert type(back["scalars"][0]) is np.float32 and back["scalars"][0] == 1.5
    assert isinstance(back["t"], bp.Tensor) and isinstance(back["arrays"]["f32"], np.ndarray)
    assert isinstance(back["model"]["weight"], bp.Tensor)
    assert back["arrays"]["zero_d"].shape == () and back["arrays"]["empty"].shape == (0, 3)
    assert back["big"] == 2**70 + 1 and back["rng"]["state"]["state"] > 2**64
    assert back["tuple"] == (1, "a", (2.0, None), [3, (4,)])
    assert set(back["int_keys"]) == {0, 1, -5}
    assert back["__dunder"] == {"__tensor__": 1, "__x": "y"}
    assert np.array_equal(back["dotted.key"], np.ones(2))
    assert np.array_equal(back["dotted"]["key"], np.zeros(2))
    rng = np.random.default_rng()
    rng.bit_generator.state = back["rng"]
    assert rng.random() == np.random.default_rng(123).random()


def test_loaded_arrays_are_writable_copies(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"a": np.arange(4.0)})
    a = load_checkpoint(path)["a"]
    a[0] = 9.0  # must not raise
    assert load_checkpoint(path)["a"][0] == 0.0


def test_an_optimizer_state_dict_round_trips_and_loads(tmp_path):
    model = bp.nn.Linear(3, 2)
    opt = bp.optim.Adam(model.parameters(), lr=0.1)
    model(bp.randn(4, 3)).sum().backward()
    opt.step()
    path = tmp_path / "o.safetensors"
    save_checkpoint(path, {"opt": opt.state_dict()})
    back = load_checkpoint(path)["opt"]
    _assert_same(opt.state_dict(), back)
    opt2 = bp.optim.Adam(bp.nn.Linear(3, 2).parameters(), lr=0.5)
    opt2.load_state_dict(back)
    assert opt2.param_groups[0]["lr"] == 0.1


def _tensor_region(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return data, 8 + n


@pytest.mark.parametrize("where", [0, 1, -1])
def test_a_flipped_byte_in_the_tensor_data_is_refused(tmp_path, where):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.arange(100, dtype=np.float32), "n": 1})
    data, start = _tensor_region(path)
    i = [start, (start + len(data)) // 2, len(data) - 1][where]
    corrupted = bytearray(data)
    corrupted[i] ^= 0x01
    path.write_bytes(bytes(corrupted))
    with pytest.raises(CheckpointError, match=r"corrupted.*SHA-256"):
        load_checkpoint(path)


def test_a_changed_json_value_in_the_header_is_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.zeros(3), "epoch": 3})
    data = path.read_bytes()
    assert data.count(b'\\"epoch\\":3') == 1
    path.write_bytes(data.replace(b'\\"epoch\\":3', b'\\"epoch\\":4'))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_truncated_files_are_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.arange(50, dtype=np.float64), "meta": {"a": 1}})
    data = path.read_bytes()
    _, start = _tensor_region(path)
    for cut in sorted({0, 5, 8, 100, start - 1, start, len(data) // 2, len(data) - 1}):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"truncated|corrupted") as exc:
            load_checkpoint(path)
        assert str(path) in str(exc.value), cut


def test_a_plain_safetensors_file_is_not_a_backprop_checkpoint(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "plain.safetensors"
    st.save_file({"w": np.zeros(3, dtype=np.float32)}, str(path))
    with pytest.raises(CheckpointError, match="not a backprop checkpoint"):
        load_checkpoint(path)
    st.save_file({"w": np.zeros(3, dtype=np.float32)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a backprop checkpoint"):
        load_checkpoint(path)


def test_a_future_format_version_is_refused(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.zeros(2)})
    meta = read_metadata(path)
    assert meta["format"] == "backprop-checkpoint" and meta["format_version"] == "1"
    assert len(meta["sha256"]) == 64 and json.loads(meta["state"])
    meta["format_version"] = "2"
    st.save_file(st.load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="format version '2'"):
        load_checkpoint(path)


def test_a_missing_file_says_no_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_metadata(tmp_path / "absent.safetensors")


def test_a_crash_before_the_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.arange(10.0), "epoch": 1})
    before = path.read_bytes()

    def crash(src, dst):
        assert os.path.exists(src)  # the new file was fully written before the rename
        raise OSError("simulated crash")

    monkeypatch.setattr(ckpt_mod.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, {"w": np.arange(20.0), "epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]
    assert load_checkpoint(path)["epoch"] == 1


def test_saving_replaces_the_old_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})
    assert load_checkpoint(path) == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


@pytest.mark.parametrize("state, where", [
    ({"a": {"b": object()}}, "a.b"),
    ({"a": [1, {1, 2}]}, "a.1"),
    ({"opt": {0: {"fn": len}}}, "opt.0.fn"),
])
def test_unsupported_types_raise_type_error_naming_the_path(tmp_path, state, where):
    path = tmp_path / "c.safetensors"
    with pytest.raises(TypeError, match=rf"cannot store {where} of type"):
        save_checkpoint(path, state)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_state_must_be_a_dict(tmp_path):
    with pytest.raises(TypeError, match="must be a dict"):
        save_checkpoint(tmp_path / "c.safetensors", [1, 2])


def test_trainer_state_dict_round_trips_through_a_file(tmp_path):
    from backprop.train import Trainer

    from .helpers import blobs, mlp

    model = mlp(dropout=0.2)
    trainer = Trainer(model, bp.nn.CrossEntropyLoss(), bp.optim.Adam(model.parameters()),
                      seed=0, progress=False)
    trainer.fit(blobs(20), epochs=2, batch_size=5)
    path = tmp_path / "t.safetensors"
    trainer.save_checkpoint(path)
    _assert_same(trainer.state_dict(), load_checkpoint(path))


# --- files someone sent you: never hang, never exhaust memory, never a traceback ---


def _load_within(path, seconds=20):
    """load_checkpoint(path) in a thread: (exception or None); fails if it has not returned
    after ``seconds`` (a FIFO would block a plain open() forever)."""
    import threading

    result = {}

    def target():
        try:
            load_checkpoint(path)
            result["error"] = None
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with open(path, "wb"):  # a writer unblocks a reader stuck on the FIFO
            pass
        pytest.fail(f"load_checkpoint({path}) did not return within {seconds} s")
    return result["error"]


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "c.safetensors"
    os.mkfifo(path)
    error = _load_within(path)
    assert isinstance(error, CheckpointError) and "not a regular file" in str(error), error
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_metadata(path)


@pytest.mark.parametrize("where", ["/dev/zero", "directory"])
def test_a_device_or_directory_is_refused_before_reading(tmp_path, where):
    path = tmp_path if where == "directory" else where  # /dev/zero never ends
    error = _load_within(path)
    assert isinstance(error, CheckpointError) and "not a regular file" in str(error), error


def test_a_file_larger_than_the_memory_available_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.zeros(1000, dtype=np.float32)})
    monkeypatch.setattr(ckpt_mod, "available_memory", lambda: 2000)
    monkeypatch.setattr(ckpt_mod.Path, "read_bytes", lambda self: pytest.fail("read"))
    with pytest.raises(CheckpointError, match=r"4,\d+ bytes.*2,000 bytes of memory"):
        load_checkpoint(path)


def test_a_deeply_nested_state_with_a_valid_hash_is_refused(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "c.safetensors"
    state_json = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on this
    meta = {"format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION,
            "state": state_json, "sha256": fmt._digest(state_json, {})}
    path.write_bytes(st.save({}, metadata=meta))
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(path)
