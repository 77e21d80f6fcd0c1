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

import os
import stat
import struct
from pathlib import Path

from backprop.serialization import (  # the format itself lives in backprop.serialization
    FORMAT,
    MAX_HEADER_BYTES,
    atomic_write,
    decode_state,
    encode_state,
    parse_header,
)
from backprop.train._resources import available_memory, format_bytes


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupted or not a backprop checkpoint.

    The file is never loaded when this is raised; the message names it and says what is wrong.
    """


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
    atomic_write(path, encode_state(state))


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
    try:
        return parse_header(data)
    except ValueError as exc:
        raise _refuse(path, str(exc)) from None


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
    try:
        return decode_state(data, metadata)
    except ValueError as exc:
        raise _refuse(path, str(exc)) from None
