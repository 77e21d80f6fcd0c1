"""Datasets: the ``Dataset`` protocol, ``TensorDataset`` over arrays, ``Subset``, ``random_split``.

A dataset that holds whole arrays also answers ``__getitems__(indices)`` with one fancy-index per
array, which is what lets ``DataLoader`` build a batch without a Python loop over samples. (PyTorch
uses the same hook name; here it returns the batch already collated, as a tuple of arrays.)

Batch dtypes: data given as Tensors keep their dtype, as in PyTorch (a float64 ``TensorDataset``
yields float64 batches); data given as NumPy arrays, and the built-in datasets, are batched as
float32 features and int64 labels (NumPy's float64 default is rarely what a model wants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from backprop import random as _random
from backprop.creation import from_numpy
from backprop.tensor import Tensor


class DatasetError(ValueError):
    """A dataset file is missing, truncated or not what it claims to be, or a table cell is bad.

    The message names the file (and row and column for tables), what was expected, what was
    found, and for downloadable datasets where to get them.
    """


FLOAT32, INT64 = np.dtype(np.float32), np.dtype(np.int64)


def as_batch_array(arr: np.ndarray) -> np.ndarray:
    """Give an array the dtype a batch carries: floats become float32, integers int64.

    Free (no copy) when the dtype is already right, which is the case for every built-in dataset.
    """
    dtype = arr.dtype
    if dtype is FLOAT32 or dtype is INT64:  # the common case, checked first: it runs per batch
        return arr
    kind = dtype.kind
    if kind == "f" and arr.dtype != np.float32:
        return arr.astype(np.float32)
    if kind in "iu" and arr.dtype != np.int64:
        return arr.astype(np.int64)
    return arr


class Dataset:
    """A map-style dataset: ``len(ds)`` samples, ``ds[i]`` the i-th one.

    Subclass it and define ``__len__`` and ``__getitem__``. Define ``__getitems__(indices)`` too
    (returning the whole batch) if the data sit in arrays, so ``DataLoader`` can batch without a
    per-sample loop.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class CollatedBatch(tuple):
    """A batch of arrays whose dtypes are final: ``DataLoader`` wraps them without casting.

    ``TensorDataset.__getitems__`` and ``collate_arrays`` return one, so a float64 Tensor given
    by the user stays float64 however the batch travels (through ``Subset``, ``random_split``).
    """


class CollatedDict(dict):
    """A dict batch whose array dtypes are final (the dict form of :class:`CollatedBatch`)."""


class TensorDataset(Dataset):
    """A dataset over Tensors (or arrays) that share their first dimension.

    Sample ``i`` is ``tuple(t[i] for t in tensors)``, as Tensors. Tensors keep their dtype, as in
    PyTorch; NumPy arrays are given the batch dtypes (floats float32, integers int64). Nothing
    is copied.

    Args:
        *tensors: Tensors or ndarrays, all with the same length along dim 0.

    Example:
        >>> import numpy as np
        >>> import backprop as bp
        >>> from backprop.data import TensorDataset
        >>> ds = TensorDataset(np.zeros((5, 3)), np.arange(5))
        >>> len(ds), ds[2][1], ds[0][0].dtype
        (5, tensor(2), dtype('float32'))
        >>> TensorDataset(bp.zeros(5, 3, dtype=bp.float64))[0][0].dtype
        dtype('float64')
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        arrays = tuple(t.data if isinstance(t, Tensor) else np.asarray(t) for t in tensors)
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is 0-d; every array needs a dim 0")
            if len(a) != len(arrays[0]):
                shapes = ", ".join(str(b.shape) for b in arrays)
                raise ValueError(
                    f"TensorDataset: all arrays need the same length along dim 0, got shapes "
                    f"{shapes}"
                )
        self.arrays: tuple[np.ndarray, ...] = arrays
        # which arrays came as Tensors: those keep their dtype in every batch
        self._keep_dtype = tuple(isinstance(t, Tensor) for t in tensors)

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        """The arrays as Tensors (sharing memory, dtypes kept)."""
        return tuple(from_numpy(a) for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index) -> tuple[Tensor, ...]:
        return tuple(from_numpy(_batch_dtype(np.asarray(a[index]), keep))
                     for a, keep in zip(self.arrays, self._keep_dtype))

    def __getitems__(self, indices: np.ndarray) -> CollatedBatch:
        """The batch for an index array: one fancy-index per array."""
        return CollatedBatch([_batch_dtype(a[indices], keep)
                              for a, keep in zip(self.arrays, self._keep_dtype)])


def _batch_dtype(arr: np.ndarray, keep: bool) -> np.ndarray:
    return arr if keep else as_batch_array(arr)


class LabeledDataset(TensorDataset):
    """A classification dataset: ``.data`` (features or images), ``.targets`` (class indices) and
    ``.classes`` (the name of each class index).

    Every built-in dataset returns one. Images are float32 in [0, 1] shaped (N, 1, H, W); targets
    are int64 in 0..K-1; ``classes[k]`` names class k. Sample ``i`` is ``(data[i], targets[i])``.

    Args:
        data: (N, ...) features.
        targets: (N,) class indices.
        classes: the class names, one per index.
        name: shown in the repr.
    """

    def __init__(self, data: np.ndarray, targets: np.ndarray, classes: Sequence[str],
                 name: str = "LabeledDataset") -> None:
        super().__init__(data, targets)
        self.classes: list[str] = list(classes)
        self.name = name

    @property
    def data(self) -> np.ndarray:
        """(N, ...) features or images."""
        return self.arrays[0]

    @data.setter
    def data(self, value: np.ndarray) -> None:
        value = np.asarray(value)
        if len(value) != len(self):
            raise ValueError(f"{self.name}: new data has {len(value)} samples, not {len(self)}")
        self.arrays = (value, *self.arrays[1:])

    @property
    def targets(self) -> np.ndarray:
        """(N,) int64 class indices."""
        return self.arrays[1]

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> class index."""
        return {c: i for i, c in enumerate(self.classes)}

    def __repr__(self) -> str:
        shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
        return (
            f"{self.name}(n={len(self)}, data={self.data.dtype}{tuple(self.data.shape)}, "
            f"targets={self.targets.dtype}, classes=[{shown}])"
        )


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: any dataset; if it has ``__getitems__`` the subset batches without a loop too.
        indices: a sequence of sample indices.
    """

    def __init__(self, dataset: Dataset, indices) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices: np.ndarray):
        """The batch for an index array: one fancy-index when the wrapped dataset can batch."""
        return fetch(self.dataset, self.indices[indices])


def collate_arrays(samples: Sequence):
    """Stack a list of samples into one batch of arrays (tuples stay tuples, dicts dicts).

    Tensor entries keep their dtype; arrays and numbers get the batch dtypes (floats float32,
    integers int64). The result is marked final (:class:`CollatedBatch`), so the loader wraps it
    as it is.
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return CollatedBatch([collate_arrays([s[k] for s in samples]) for k in range(len(first))])
    if isinstance(first, dict):
        return CollatedDict({k: collate_arrays([s[k] for s in samples]) for k in first})
    if isinstance(first, Tensor):
        return np.stack([s.data if isinstance(s, Tensor) else np.asarray(s) for s in samples])
    return as_batch_array(np.stack([np.asarray(s) for s in samples]))


def fetch(dataset: Dataset, indices: np.ndarray):
    """The batch of arrays at ``indices``: one ``__getitems__`` call when the dataset has it, else
    a loop over ``dataset[i]`` (the only per-sample loop, for datasets that are not arrays)."""
    getitems = getattr(dataset, "__getitems__", None)
    if getitems is not None:
        return getitems(indices)
    return collate_arrays([dataset[i] for i in indices.tolist()])


def _split_lengths(n: int, lengths: Sequence[int | float]) -> list[int]:
    if all(isinstance(v, float) for v in lengths) and math.isclose(sum(lengths), 1.0):
        if any(v < 0 for v in lengths):
            raise ValueError(f"random_split: fractions must be non-negative, got {list(lengths)}")
        sizes = [math.floor(n * v) for v in lengths]
        for i in range(n - sum(sizes)):  # PyTorch's rule: the remainder goes round-robin
            sizes[i % len(sizes)] += 1
        return sizes
    sizes = [int(v) for v in lengths]
    if any(v < 0 or v != s for v, s in zip(lengths, sizes)) or sum(sizes) != n:
        raise ValueError(
            f"random_split: lengths must be non-negative ints summing to the dataset's length "
            f"{n}, or fractions summing to 1; got {list(lengths)}"
        )
    return sizes


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator=None, *,
                 seed: int | None = None) -> list[Subset]:
    """Split a dataset into non-overlapping random subsets.

    Args:
        dataset: the dataset to split.
        lengths: the subset sizes (summing to ``len(dataset)``) or fractions (summing to 1; the
            remainder is handed out one sample at a time from the first subset on).
        generator: draws the permutation: a ``backprop.Generator`` (PyTorch's
            ``generator=torch.Generator().manual_seed(42)``) or a ``numpy.random.Generator``;
            an int is read as ``seed``.
        seed: seeds the permutation; with neither, it is drawn from ``backprop.manual_seed``'s
            generator.

    Returns:
        a list of ``Subset``.

    Example:
        >>> import backprop as bp
        >>> from backprop.data import TensorDataset, random_split
        >>> train, val = random_split(TensorDataset(np.arange(10)), [0.8, 0.2], seed=0)
        >>> len(train), len(val)
        (8, 2)
        >>> a, b = random_split(range(10), [5, 5], generator=bp.Generator().manual_seed(42))
        >>> sorted(list(a.indices) + list(b.indices)) == list(range(10))
        True
    """
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        generator, seed = None, int(generator)
    sizes = _split_lengths(len(dataset), lengths)
    if generator is not None:
        if seed is not None:
            raise TypeError("random_split: pass generator or seed, not both")
        rng = _random.numpy_generator(generator)
    else:
        rng = np.random.default_rng(_seed_from(seed))
    perm = rng.permutation(len(dataset))
    bounds = np.cumsum([0, *sizes])
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _seed_from(seed: int | None) -> int:
    """``seed`` itself, or a fresh one drawn from backprop's global generator."""
    if seed is None:
        return int(_random.default_generator().integers(2**63))
    return seed
