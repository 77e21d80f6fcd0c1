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
import struct
from pathlib import Path

from backprop.serialization import (  # the format itself lives in backprop.serialization
    FORMAT,
    atomic_write,
    decode_state,
    encode_state,
    parse_header,
)


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
    """The file's bytes; with ``header_only``, just the length prefix and the JSON header (the
    whole file when the prefix claims more bytes than there are, so ``_header`` reports the
    truncation)."""
    try:
        if not header_only:
            return path.read_bytes()
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                return prefix
            (n,) = struct.unpack("<Q", prefix)
            if 8 + n > os.fstat(f.fileno()).st_size:
                return prefix + f.read()
            return prefix + f.read(n)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None


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
        CheckpointError: no file at ``path``; the file is truncated, corrupted (its SHA-256 does
            not match), or not a backprop checkpoint. Nothing is loaded in these cases.
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
