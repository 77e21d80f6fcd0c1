"""Checkpoints: a whole training state in one ``.safetensors`` file, written atomically, checked
on load.

A state is any nest of dicts, lists and tuples whose leaves are Tensors, ndarrays, NumPy scalars
and JSON values (numbers, strings, booleans, None): a model's ``state_dict()``, an optimizer's,
a scheduler's, RNG states, counters, the run's config. Every array leaf becomes one tensor of the
safetensors file (the ecosystem's format: no pickle, so loading a file runs no code); the rest
becomes JSON in the file's metadata header, with a marker where each array was. The header also
holds a SHA-256 over the JSON and every tensor's name, dtype, shape and bytes, so a file that was
truncated or had any byte changed is refused instead of loaded.

Writing goes to a temporary file in the same directory, is flushed to disk with ``fsync`` and
then renamed over the old checkpoint: a crash at any moment leaves either the old file or the
new one, never a mix.

The safetensors package is imported on first use, so ``import backprop`` stays NumPy-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from pathlib import Path

import numpy as np

from backprop._version import __version__
from backprop.tensor import Tensor
from backprop.train import _faults
from backprop.train._resources import available_memory, format_bytes

FORMAT = "backprop-checkpoint"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit on the JSON header


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupted or not a backprop checkpoint.

    The file is never loaded when this is raised; the message names it and says what is wrong.
    """


def _safetensors_numpy():
    try:
        import safetensors.numpy as st
    except ImportError as exc:  # a dependency of backprop, but a user may have removed it
        raise ImportError(
            "checkpoints need the safetensors package: install it with `pip install safetensors` "
            "(it is a dependency of backprop, so `pip install backprop` brings it)"
        ) from exc
    return st


# --- the state <-> (JSON, tensors) split ---------------------------------------------------
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
        f"save_checkpoint: cannot store {where or 'the state'} of type {type(obj).__name__}; "
        "a state holds dicts, lists, tuples, Tensors, ndarrays, numbers, strings and None"
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


# --- files -----------------------------------------------------------------------------------
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


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Save a training state to one ``.safetensors`` file, atomically.

    Args:
        path: the file to write (replaced atomically if it exists).
        state: a dict nesting dicts, lists and tuples of Tensors, ndarrays, NumPy scalars and
            JSON values. Arrays are stored as tensors; everything else as JSON in the header,
            together with a SHA-256 of it all.

    Example:
        >>> import tempfile, pathlib
        >>> import backprop as bp
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "ckpt.safetensors"
        >>> save_checkpoint(p, {"model": bp.nn.Linear(2, 1).state_dict(), "epoch": 3})
        >>> state = load_checkpoint(p)
        >>> state["epoch"], state["model"]["weight"].shape
        (3, (1, 2))
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint: state must be a dict, got {type(state).__name__}")
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
    atomic_write(path, _safetensors_numpy().save(tensors, metadata=metadata))


def _refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} {why}; it was not loaded. Resume from an intact copy or start a new "
        "run in a new directory"
    )


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata header of a ``.safetensors`` file (without reading its tensors).

    Raises:
        CheckpointError: the file is missing or its header is truncated or not valid JSON.
    """
    path = Path(path)
    return _header(path, _read(path, header_only=True)).get("__metadata__") or {}


def _read(path: Path, header_only: bool = False) -> bytes:
    """The file's bytes; with ``header_only``, just the length prefix and the JSON header.

    Only a regular file is read, and only when it fits in memory: a FIFO would block forever
    and a device such as /dev/zero would never end. It is opened without blocking and checked
    with ``fstat`` on the open descriptor, so it cannot be swapped in between.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refuse(path, f"is not a regular file (it is {_file_kind(info.st_mode)})")
    size = info.st_size
    with open(fd, "rb") as f:
        try:
            if header_only:
                prefix = f.read(8)
                if len(prefix) < 8:
                    return prefix
                (n,) = struct.unpack("<Q", prefix)
                if 8 + n > size:
                    raise _truncated(path, n, size - 8)
                _check_header_size(path, n)
                return prefix + f.read(n)
            memory = available_memory()
            if memory is not None and size > memory:
                raise _refuse(path, f"is {size:,} bytes ({format_bytes(size)}), more than the "
                                    f"{memory:,} bytes of memory available")
            data = f.read()
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if len(data) >= 8:
        _check_header_size(path, struct.unpack("<Q", data[:8])[0])
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((text for test, text in kinds if test(mode)), "not a file")


def _truncated(path: Path, n: int, rest: int) -> CheckpointError:
    return _refuse(path, f"is truncated (its header claims {n} bytes, the file has {rest} after "
                         "the length)")


def _check_header_size(path: Path, n: int) -> None:
    if n > MAX_HEADER_BYTES:
        raise _refuse(path, f"is corrupted (its header claims {n:,} bytes; a safetensors header "
                            f"is at most {MAX_HEADER_BYTES:,})")


def _header(path: Path, data: bytes) -> dict:
    if len(data) < 8:
        raise _refuse(path, f"is truncated ({len(data)} bytes, not even a header)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise _truncated(path, n, len(data) - 8)
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(path, "is corrupted (its header is not valid JSON)") from None
    except RecursionError:
        raise _refuse(path, "is corrupted (its header is nested too deeply)") from None
    if not isinstance(header, dict):
        raise _refuse(path, "is corrupted (its header is not a JSON object)")
    return header


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a state written by ``save_checkpoint``, after checking it is whole.

    Returns:
        the state, with Tensors, ndarrays, tuples and non-string dict keys as they were saved.

    Raises:
        CheckpointError: no file at ``path``; not a regular file (a FIFO, a device); larger than
            the memory available; truncated, corrupted (its SHA-256 does not match, its state
            nested too deeply), or not a backprop checkpoint. Nothing is loaded in these cases.
    """
    path = Path(path)
    data = _read(path)
    metadata = _header(path, data).get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise _refuse(path, "is not a backprop checkpoint (its metadata has no "
                            f"format={FORMAT!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise _refuse(path, f"has format version {metadata.get('format_version')!r}; this "
                            f"backprop ({__version__}) reads version {FORMAT_VERSION}")
    try:
        tensors = _safetensors_numpy().load(data)
    except Exception as exc:  # the Rust reader raises its own error type
        raise _refuse(path, f"is truncated or corrupted ({exc})") from None
    state_json = metadata.get("state", "")
    if _digest(state_json, tensors) != metadata.get("sha256"):
        raise _refuse(path, "is corrupted: its SHA-256 does not match its contents")
    try:
        packed = json.loads(state_json)
        return _unpack(packed, tensors)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise _refuse(path, "is corrupted (its state is not what was saved)") from None
    except RecursionError:  # valid JSON, but deeper than Python's parser (and _unpack) go
        raise _refuse(path, "is corrupted (its state is nested too deeply)") from None
