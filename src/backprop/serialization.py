"""``backprop.save`` / ``backprop.load``: ``torch.save`` / ``torch.load`` in a safe format.

Everything is written as a safetensors file (the ecosystem's format: a JSON header and raw
tensor bytes, no pickle), so loading a file never runs code:

- a flat dict of Tensors (a model's ``state_dict()``) becomes a *plain* safetensors file, one
  tensor per key, which ``safetensors.torch.load_file`` reads straight into a ``torch.nn`` model;
  and a file written by ``safetensors.torch.save_file(model.state_dict(), path)`` loads here
  with ``model.load_state_dict(backprop.load(path))``;
- anything else (a checkpoint dict holding the model, the optimizer's state, the epoch, lists,
  tuples, numbers, strings, None, NumPy arrays) is stored as backprop's checkpoint format: the
  arrays as tensors, the rest as JSON in the header with a SHA-256 over it all
  (``backprop.train.checkpoint`` writes the same format).

A file written by ``torch.save`` (a zip archive of pickles) or any pickle is refused with a
message saying why and how to convert it. safetensors is imported on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from backprop import _faults
from backprop._version import __version__
from backprop.devices import check_device
from backprop.tensor import Tensor

__all__ = ["load", "save"]

FORMAT = "backprop-checkpoint"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit on the JSON header
_KEY_ORDER = "backprop.keys"  # metadata entry of a plain file: its keys in the saved order


def _safetensors_numpy():
    try:
        import safetensors.numpy as st
    except ImportError as exc:  # a dependency of backprop, but a user may have removed it
        raise ImportError(
            "saving and loading need the safetensors package: install it with `pip install "
            "safetensors` (it is a dependency of backprop, so `pip install backprop` brings it)"
        ) from exc
    return st


# --- nested state <-> (JSON, tensors) ---------------------------------------------------------
# Markers are one-key dicts whose key starts with "__"; user dicts with such keys, or with
# non-string keys (an optimizer's state is keyed by parameter index), are stored as item lists.
_MARKERS = ("__tensor__", "__array__", "__scalar__", "__tuple__", "__items__")


def _pack(obj, tensors: dict[str, np.ndarray], where: str):
    if isinstance(obj, Tensor):
        return {"__tensor__": _store(obj.data, tensors, where)}
    if isinstance(obj, np.ndarray):
        return {"__array__": _store(obj, tensors, where)}
    if isinstance(obj, np.generic):
        return {"__scalar__": _store(np.asarray(obj), tensors, where)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(v, tensors, f"{where}.{k}" if where else k) for k, v in obj.items()}
        return {"__items__": [[_pack(k, tensors, f"{where}.key{i}"),
                               _pack(v, tensors, f"{where}.{k}")]
                              for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, list):
        return [_pack(v, tensors, f"{where}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, tensors, f"{where}.{i}") for i, v in enumerate(obj)]}
    raise TypeError(
        f"save: cannot store {where or 'the object'} of type {type(obj).__name__}; a saved "
        "object holds dicts, lists, tuples, Tensors, ndarrays, numbers, strings and None "
        "(save a module's state_dict(), not the module)"
    )


def _store(array: np.ndarray, tensors: dict[str, np.ndarray], where: str) -> str:
    key, n = where or "value", 1
    while key in tensors:  # "a.b" from {"a.b": x} and from {"a": {"b": y}}: keep both
        n += 1
        key = f"{where}#{n}"
    # ascontiguousarray alone turns a 0-d array (a NumPy scalar) into shape (1,)
    tensors[key] = np.ascontiguousarray(array).reshape(array.shape)
    return key


def _unpack(obj, tensors: dict[str, np.ndarray]):
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (key, value), = obj.items()
        if key == "__tensor__":
            return Tensor(tensors[value])
        if key == "__array__":
            return tensors[value]
        if key == "__scalar__":
            return tensors[value][()]
        if key == "__tuple__":
            return tuple(_unpack(v, tensors) for v in value)
        if key == "__items__":
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in value}
    return {k: _unpack(v, tensors) for k, v in obj.items()}


def _digest(state_json: str, tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(state_json.encode())
    for key in sorted(tensors):
        a = tensors[key]
        h.update(f"\0{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def encode_state(state) -> bytes:
    """``state`` in backprop's checkpoint format (the bytes of a safetensors file)."""
    tensors: dict[str, np.ndarray] = {}
    packed = _pack(state, tensors, "")
    state_json = json.dumps(packed, separators=(",", ":"))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backprop_version": __version__,
        "state": state_json,
        "sha256": _digest(state_json, tensors),
    }
    return _safetensors_numpy().save(tensors, metadata=metadata)


def decode_state(data: bytes, metadata: dict[str, str]):
    """The object stored in a checkpoint-format file's bytes, after checking its SHA-256.

    Raises:
        ValueError: the bytes are truncated, corrupted or not what was saved (the message says
            which).
    """
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"has format version {metadata.get('format_version')!r}; this "
                         f"backprop ({__version__}) reads version {FORMAT_VERSION}")
    try:
        tensors = _safetensors_numpy().load(data)
    except Exception as exc:  # the Rust reader raises its own error type
        raise ValueError(f"is truncated or corrupted ({exc})") from None
    state_json = metadata.get("state", "")
    if _digest(state_json, tensors) != metadata.get("sha256"):
        raise ValueError("is corrupted: its SHA-256 does not match its contents")
    try:
        return _unpack(json.loads(state_json), tensors)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ValueError("is corrupted (its state is not what was saved)") from None
    except RecursionError:  # valid JSON, but deeper than Python's parser (and _unpack) go
        raise ValueError("is corrupted (its state is nested too deeply)") from None


def parse_header(data: bytes) -> dict:
    """The JSON header of safetensors bytes.

    Raises:
        ValueError: the bytes are too short for their header, or it is not a JSON object.
    """
    if len(data) < 8:
        raise ValueError(f"is truncated ({len(data)} bytes, not even a header)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"is truncated (its header claims {n} bytes, the file has "
                         f"{len(data) - 8} after the length)")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("is corrupted (its header is not valid JSON)") from None
    except RecursionError:
        raise ValueError("is corrupted (its header is nested too deeply)") from None
    if not isinstance(header, dict):
        raise ValueError("is corrupted (its header is not a JSON object)")
    return header


TEMPORARY_MARK = ".tmp-"


def temporary_path(path: Path) -> Path:
    """Where ``atomic_write`` writes ``path``'s new contents before the rename: a hidden file
    beside it, ``.<name>.tmp-<pid>``. A process killed before the rename leaves it behind."""
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}")


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new, never a mix.

    The bytes go to a temporary file beside ``path``, are flushed to disk (``fsync``) and the
    file is renamed over ``path``; the directory entry is flushed too where the OS allows.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _faults.pause_before_replace(path.name)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename != str(path):
            # name the file the caller asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    try:  # make the rename itself durable; not possible on every platform (Windows)
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- the public functions ---------------------------------------------------------------------


class UnsafeFileError(RuntimeError):
    """``backprop.load`` was given a pickle (such as a file written by ``torch.save``): it never
    unpickles, because unpickling can run any code the file's author chose."""


def _is_state_dict(obj) -> bool:
    return (isinstance(obj, dict) and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, Tensor) for v in obj.values()))


def save(obj, f, pickle_module=None, pickle_protocol=None, **kwargs) -> None:
    """Save ``obj`` to ``f`` (a path or a binary file object), PyTorch's ``torch.save``.

    A flat dict of Tensors (a ``state_dict()``) is written as a plain safetensors file that
    ``safetensors.torch.load_file`` reads; anything else (nested dicts, lists, tuples, Tensors,
    ndarrays, numbers, strings, None) in backprop's checkpoint format, also safetensors. A path
    is written atomically. ``pickle_module`` and ``pickle_protocol`` are accepted and unused:
    nothing is pickled.

    Args:
        obj: what to save.
        f: a path (str or ``os.PathLike``) or an object with ``write(bytes)``.

    Example:
        >>> import tempfile, pathlib
        >>> import backprop as bp
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> model = bp.nn.Linear(3, 2)
        >>> bp.save(model.state_dict(), path)
        >>> sorted(bp.load(path)), bp.load(path)["weight"].shape
        (['bias', 'weight'], (2, 3))
        >>> bp.save({"model": model.state_dict(), "epoch": 3, "loss": [0.5, 0.25]}, path)
        >>> bp.load(path)["epoch"], bp.load(path)["loss"]
        (3, [0.5, 0.25])
    """
    if _is_state_dict(obj):
        tensors = {k: np.ascontiguousarray(v.data).reshape(v.shape) for k, v in obj.items()}
        metadata = {"format": "pt", "backprop_version": __version__,
                    _KEY_ORDER: json.dumps(list(obj))}
        data = _safetensors_numpy().save(tensors, metadata=metadata)
    else:
        data = encode_state(obj)
    if hasattr(f, "write"):
        f.write(data)
    else:
        atomic_write(f, data)


def _read(f) -> bytes:
    if hasattr(f, "read"):
        data = f.read()
        if not isinstance(data, bytes):
            raise TypeError("load: the file object must be opened in binary mode ('rb')")
        return data
    try:
        return Path(f).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no file at {f}") from None


def _refuse_pickle(name: str, zipped: bool) -> UnsafeFileError:
    what = ("a file written by torch.save (a zip archive of pickles)" if zipped
            else "a pickle (as written by torch.save's legacy format or pickle.dump)")
    return UnsafeFileError(
        f"load: {name} is {what}. backprop never unpickles, because unpickling can run any code "
        "the file's author put in it. Convert it where it was made, with PyTorch: "
        "`from safetensors.torch import save_file; save_file(model.state_dict(), "
        "'model.safetensors')`, then backprop.load('model.safetensors')"
    )


def load(f, map_location=None, pickle_module=None, *, weights_only: bool | None = None,
         mmap: bool | None = None, **kwargs):
    """Load an object saved by :func:`save`, or a safetensors file from anywhere (PyTorch's
    ``torch.load``).

    Args:
        f: a path or a binary file object.
        map_location: PyTorch's; the CPU in any spelling (``"cpu"``, ``torch.device("cpu")``, a
            dict or callable mapping storage locations) is accepted, since tensors live on the
            CPU; a GPU raises ``DeviceUnavailableError``.
        weights_only: accepted for PyTorch programs; loading is always "weights only" here,
            whatever it says: the files hold only tensors and plain data, and no code runs.
        pickle_module, mmap: accepted and unused.

    Returns:
        what was saved: a plain safetensors file gives a dict of Tensors (in the saved order
        when backprop wrote it); a checkpoint-format file gives back its dicts, lists, tuples,
        Tensors, arrays and numbers.

    Raises:
        UnsafeFileError: ``f`` is a pickle or a ``torch.save`` zip archive (never unpickled).
        ValueError: ``f`` is not a safetensors file, or is truncated or corrupted.
    """
    if isinstance(map_location, (str, int)) or map_location is None or \
            hasattr(map_location, "type"):  # a device, ours or torch's
        check_device(map_location, "loaded tensor")
    elif isinstance(map_location, dict):
        for target in map_location.values():
            check_device(target, "loaded tensor")
    elif not callable(map_location):
        raise TypeError(f"load: map_location must be a device, a string, a dict or a callable, "
                        f"got {type(map_location).__name__}")
    name = repr(str(f)) if not hasattr(f, "read") else "the file object"
    data = _read(f)
    try:
        header = parse_header(data)
    except ValueError as exc:
        # only now look for a pickle's signature: a safetensors header's length may begin
        # with any byte, including a pickle opcode
        if data[:4] == b"PK\x03\x04":
            raise _refuse_pickle(name, zipped=True) from None
        if data[:1] == b"\x80" or data[:1] in (b"(", b"]", b"}"):  # pickle protocols 0-5
            raise _refuse_pickle(name, zipped=False) from None
        raise ValueError(f"load: {name} is not a safetensors file: it {exc}") from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") == FORMAT:
        try:
            return decode_state(data, metadata)
        except ValueError as exc:
            raise ValueError(f"load: {name} {exc}") from None
    dtypes = {v.get("dtype") for k, v in header.items() if k != "__metadata__"
              and isinstance(v, dict)}
    if "BF16" in dtypes:
        raise ValueError(f"load: {name} holds bfloat16 tensors, which NumPy (and so backprop) "
                         "cannot represent; convert them in PyTorch first: "
                         "save_file({k: v.float() for k, v in state_dict.items()}, path)")
    try:
        arrays = _safetensors_numpy().load(data)
    except Exception as exc:  # the Rust reader raises its own error type
        raise ValueError(f"load: {name} is truncated or corrupted ({exc})") from None
    order = _key_order(metadata, arrays)
    return {k: Tensor(arrays[k]) for k in order}


def _key_order(metadata: dict, arrays: dict) -> list[str]:
    try:
        keys = json.loads(metadata.get(_KEY_ORDER, "null"))
    except json.JSONDecodeError:
        keys = None
    if isinstance(keys, list) and sorted(keys) == sorted(arrays):
        return keys
    return list(arrays)

