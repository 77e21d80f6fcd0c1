"""``backprop.nn.utils.rnn``: variable-length sequences as PyTorch packs them.

``pad_sequence`` stacks sequences of different lengths into one padded tensor;
``pack_padded_sequence`` turns a padded batch and its lengths into a :class:`PackedSequence`
(the valid time steps only, time-major, longest sequence first), which ``RNN``, ``LSTM`` and
``GRU`` accept: each sequence then stops at its own length, so its final state is the state at
its last real step, and a reverse direction starts there. ``pad_packed_sequence`` goes back.
All differentiable (composites of indexing and padding ops).

Example:
    >>> import backprop as bp
    >>> from backprop.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
    >>> padded = pad_sequence([bp.ones(3, 2), bp.ones(1, 2)], batch_first=True)
    >>> padded.shape
    (2, 3, 2)
    >>> packed = pack_padded_sequence(padded, [3, 1], batch_first=True)
    >>> packed.batch_sizes
    tensor([2, 1, 1])
    >>> out, (h, c) = bp.nn.LSTM(2, 4, batch_first=True)(packed)
    >>> unpacked, lengths = pad_packed_sequence(out, batch_first=True)
    >>> unpacked.shape, lengths
    ((2, 3, 4), tensor([3, 1]))
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from backprop import creation
from backprop.errors import ShapeError
from backprop.ops.shape import getitem, index_put, index_select, pad, stack, transpose
from backprop.tensor import Tensor, _wrap

__all__ = ["PackedSequence", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence",
           "pad_sequence", "unpack_sequence", "unpad_sequence"]


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A batch of variable-length sequences, PyTorch's ``PackedSequence``.

    Attributes:
        data: (sum of lengths, *): the valid steps, time-major; at step t the first
            ``batch_sizes[t]`` sequences (longest first).
        batch_sizes: int64 (max length,): how many sequences are still running at each step.
        sorted_indices: int64 (N,) or None: the batch order used (longest first).
        unsorted_indices: int64 (N,) or None: its inverse, to restore the caller's order.

    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`.
    """

    __slots__ = ()

    def to(self, *args, **kwargs) -> PackedSequence:
        """``data`` moved/cast as ``Tensor.to`` does (the CPU only); the indices unchanged."""
        data = self.data.to(*args, **kwargs)
        return self if data is self.data else self._replace(data=data)

    def cpu(self) -> PackedSequence:
        """Itself: it lives on the CPU."""
        return self

    @property
    def is_cuda(self) -> bool:
        """False."""
        return False


def _int_vector(values, what: str) -> np.ndarray:
    arr = values.data if isinstance(values, Tensor) else np.asarray(values)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise TypeError(f"{what} must be a 1-D integer tensor or list of ints, got "
                        f"{arr.dtype} of shape {arr.shape}")
    return arr.astype(np.int64)


def _positions(batch_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, batch) of every packed row, in packed order."""
    times = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    rows = np.concatenate([np.arange(b) for b in batch_sizes]) if len(batch_sizes) else \
        np.zeros(0, np.int64)
    return times, rows


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch: keep only each sequence's first ``lengths[i]`` steps.

    Args:
        input: (T, N, *) padded sequences ((N, T, *) with ``batch_first``).
        lengths: (N,) the length of each sequence (a list or an int64 tensor), all >= 1.
        batch_first: the layout of ``input``.
        enforce_sorted: require ``lengths`` in decreasing order (as PyTorch); with False the
            batch is sorted here and restored by ``pad_packed_sequence`` and the RNNs.

    Returns:
        a :class:`PackedSequence`.
    """
    lengths = _int_vector(lengths, "pack_padded_sequence: lengths")
    x = transpose(input, 0, 1) if batch_first else input
    if x.ndim < 2 or x.shape[1] != len(lengths):
        raise ShapeError(f"pack_padded_sequence: input of shape {input.shape} does not hold "
                         f"{len(lengths)} sequences (batch_first={batch_first})")
    if len(lengths) and lengths.min() <= 0:
        raise RuntimeError("pack_padded_sequence: length of all samples has to be greater than "
                           f"0, but found an element in 'lengths' that is <= 0: {lengths.tolist()}")
    if len(lengths) and lengths.max() > x.shape[0]:
        raise RuntimeError(f"pack_padded_sequence: a length of {lengths.max()} exceeds the "
                           f"input's {x.shape[0]} time steps")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError(
                "pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
                "`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
                "pack_padded_sequence and/or pack_sequence to sidestep this requirement if you "
                "do not need ONNX exportability."
            )
        sorted_indices = unsorted_indices = None
    else:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
        x = index_select(x, 1, order)
        sorted_indices = _wrap(order, False, None, 0)
        unsorted_indices = _wrap(np.argsort(order), False, None, 0)
    batch_sizes = (lengths[None, :] > np.arange(lengths.max() if len(lengths) else 0)[:, None]
                   ).sum(axis=1).astype(np.int64)
    times, rows = _positions(batch_sizes)
    data = getitem(x, (times, rows))
    return PackedSequence(data, _wrap(batch_sizes, False, None, 0), sorted_indices,
                          unsorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: int | None = None) -> tuple:
    """Undo :func:`pack_padded_sequence`: the padded batch and the lengths, in the caller's
    batch order.

    Returns:
        ``(padded, lengths)``: (T, N, *) ((N, T, *) with ``batch_first``), T = ``total_length``
        or the longest length; lengths int64 (N,).
    """
    batch_sizes = sequence.batch_sizes.data
    steps, n = len(batch_sizes), int(batch_sizes[0]) if len(batch_sizes) else 0
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"pad_packed_sequence: expected total_length to be at least the "
                             f"length of the longest sequence ({steps}), but got "
                             f"total_length={total_length}")
        steps = total_length
    data = sequence.data
    times, rows = _positions(batch_sizes)
    base = creation.full((steps, n) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)
    padded = index_put(base, (times, rows), data)
    lengths = (batch_sizes[None, :] > np.arange(n)[:, None]).sum(axis=1).astype(np.int64)
    if sequence.unsorted_indices is not None:
        order = sequence.unsorted_indices.data
        padded = index_select(padded, 1, order)
        lengths = lengths[order]
    if batch_first:
        padded = transpose(padded, 0, 1)
    return padded, _wrap(lengths, False, None, 0)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of shape (L_i, *) into one (T, N, *) tensor ((N, T, *) with
    ``batch_first``), T the longest L_i, padding with ``padding_value`` on ``padding_side``."""
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got "
                         f"{padding_side!r}")
    trailing = tuple(sequences[0].shape[1:])
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        if tuple(s.shape[1:]) != trailing:
            raise ShapeError(f"pad_sequence: every sequence needs the trailing shape {trailing}, "
                             f"got {tuple(s.shape)}")
        extra = longest - s.shape[0]
        widths = [0, 0] * len(trailing) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(pad(s, widths, value=padding_value) if extra else s)
    return stack(padded, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of (L_i, *) sequences (``pad_sequence`` then ``pack_padded_sequence``)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """The list of sequences in a padded batch, each cut to its length."""
    lengths = _int_vector(lengths, "unpad_sequence: lengths")
    x = padded_sequences if batch_first else transpose(padded_sequences, 0, 1)
    return [getitem(x, (i, slice(0, int(n)))) for i, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences in a :class:`PackedSequence`, in the caller's order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
