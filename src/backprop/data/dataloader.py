"""``DataLoader``: batches of Tensors from a dataset, shuffled by its own seeded generator.

When the dataset holds arrays (``TensorDataset``, every built-in dataset, a ``Subset`` of one),
a batch is one fancy-index per array: no Python loop over samples. Per batch the loader does one
slice of the epoch's permutation, one ``a[indices]`` per array and wraps the results as Tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from backprop.data.dataset import (
    FLOAT32,
    INT64,
    Dataset,
    _seed_from,
    as_batch_array,
    collate_arrays,
    fetch,
)
from backprop.tensor import _wrap


def _to_tensors(batch):
    # _wrap: the batch arrays are fresh (fancy-indexed) and need no copy or check
    if type(batch) is tuple:  # the vectorised path, once per batch: keep it lean
        return tuple([
            _wrap(a if a.dtype is FLOAT32 or a.dtype is INT64 else as_batch_array(a),
                  False, None, 0)
            for a in batch
        ])
    if isinstance(batch, dict):
        return {k: _to_tensors(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_tensors(v) for v in batch)
    return _wrap(as_batch_array(np.asarray(batch)), False, None, 0)


def default_collate(samples: list):
    """Stack a list of samples into a batch of Tensors (floats float32, integers int64).

    Samples may be arrays, Tensors, numbers, or tuples/dicts of them; the structure is kept.

    Example:
        >>> from backprop.data import default_collate
        >>> x, y = default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
        >>> x.shape, x.dtype, y
        ((2, 2), dtype('float32'), tensor([1, 0]))
    """
    if not samples:
        raise ValueError("default_collate: got an empty list of samples")
    return _to_tensors(collate_arrays(samples))


class DataLoader:
    """Iterate over a dataset in batches of Tensors (PyTorch's DataLoader, single process).

    Args:
        dataset: a ``Dataset``. One that defines ``__getitems__`` (``TensorDataset``, ``Subset``
            of one, every built-in dataset) is batched by fancy-indexing its arrays.
        batch_size: samples per batch.
        shuffle: draw a new random order every epoch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        collate_fn: called with the list of samples ``[dataset[i] for i in batch]`` to build a
            batch (PyTorch's contract). None: the vectorised path, or ``default_collate``.
        sampler: an iterable of indices giving the order of an epoch (an array, a list, or an
            object re-iterated every epoch). Excludes ``shuffle``.
        seed: seeds the loader's own ``numpy.random.Generator``; None draws the seed from
            backprop's global generator, so ``backprop.manual_seed`` makes it reproducible.

    Yields:
        for a dataset of pairs, ``(x, y)`` tuples of Tensors: floating arrays as float32 and
        integer arrays (class labels) as int64; batch shapes (B, ...) with B = ``batch_size``
        except possibly in the last batch.

    Example:
        >>> import numpy as np
        >>> from backprop.data import DataLoader, TensorDataset
        >>> ds = TensorDataset(np.zeros((10, 3)), np.arange(10))
        >>> [len(y) for x, y in DataLoader(ds, batch_size=4, shuffle=True, seed=0)]
        [4, 4, 2]
        >>> x, y = next(iter(DataLoader(ds, batch_size=4)))
        >>> x.dtype, y
        (dtype('float32'), tensor([0, 1, 2, 3]))
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, collate_fn: Callable | None = None,
                 sampler: Iterable[int] | None = None, seed: int | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError(
                "DataLoader: sampler and shuffle=True exclude each other (the sampler decides the "
                "order); shuffle inside the sampler instead"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.sampler = sampler
        self.seed = _seed_from(seed)
        self.generator = np.random.default_rng(self.seed)

    def _epoch_indices(self) -> np.ndarray:
        if self.sampler is not None:
            order = self.sampler
            if not isinstance(order, np.ndarray):
                order = np.fromiter(iter(order), dtype=np.int64)
            return order.astype(np.int64, copy=False).reshape(-1)
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def _num_samples(self) -> int:
        return len(self.dataset) if self.sampler is None else len(self.sampler)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator:
        order = self._epoch_indices()
        n, b = len(order), self.batch_size
        stop = n - n % b if self.drop_last else n
        dataset, collate_fn = self.dataset, self.collate_fn
        getitems = getattr(dataset, "__getitems__", None)
        for start in range(0, stop, b):
            indices = order[start:start + b]
            if collate_fn is not None:
                yield collate_fn([dataset[i] for i in indices.tolist()])
            elif getitems is not None:  # the vectorised path: one fancy-index per array
                yield _to_tensors(getitems(indices))
            else:
                yield _to_tensors(fetch(dataset, indices))

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {self._num_samples()}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"seed={self.seed})"
        )
