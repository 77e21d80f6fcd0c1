"""``DataLoader``: batches of Tensors from a dataset, shuffled by its own seeded generator.

When the dataset holds arrays (``TensorDataset``, every built-in dataset, a ``Subset`` of one),
a batch is one fancy-index per array: no Python loop over samples. Per batch the loader does one
slice of the epoch's permutation, one ``a[indices]`` per array and wraps the results as Tensors.

Loading always runs in this process: ``num_workers``, ``pin_memory``, ``persistent_workers``,
``prefetch_factor`` and ``worker_init_fn`` are accepted so PyTorch programs run unchanged, but
worker processes would only add start-up and copying to what is already one vectorised slice per
batch (see ``docs/pytorch.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from backprop import random as _random
from backprop.data.dataset import (
    FLOAT32,
    INT64,
    CollatedBatch,
    CollatedDict,
    Dataset,
    _seed_from,
    as_batch_array,
    collate_arrays,
    fetch,
)
from backprop.tensor import _wrap


def _to_tensors(batch, final: bool = False):
    """Wrap a batch's arrays as Tensors; arrays not marked final get the batch dtypes (floats
    float32, integers int64)."""
    # _wrap: the batch arrays are fresh (fancy-indexed) and need no copy or check
    kind = type(batch)
    if kind is CollatedBatch:  # the vectorised path, once per batch: keep it lean
        return tuple([_wrap(a, False, None, 0) if type(a) is np.ndarray else _to_tensors(a, True)
                      for a in batch])
    if kind is tuple and not final:
        return tuple([
            _wrap(a if a.dtype is FLOAT32 or a.dtype is INT64 else as_batch_array(a),
                  False, None, 0)
            if type(a) is np.ndarray else _to_tensors(a)
            for a in batch
        ])
    if isinstance(batch, dict):
        final = final or kind is CollatedDict
        return {k: _to_tensors(v, final) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_tensors(v, final) for v in batch)
    arr = np.asarray(batch)
    return _wrap(arr if final else as_batch_array(arr), False, None, 0)


def default_collate(samples: list):
    """Stack a list of samples into a batch of Tensors.

    Samples may be Tensors (their dtype is kept), arrays or numbers (floats become float32,
    integers int64), or tuples/dicts of them; the structure is kept.

    Example:
        >>> import backprop as bp
        >>> from backprop.data import default_collate
        >>> x, y = default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
        >>> x.shape, x.dtype, y
        ((2, 2), dtype('float32'), tensor([1, 0]))
        >>> default_collate([bp.zeros(2, dtype=bp.float64)] * 3).dtype
        dtype('float64')
    """
    if not samples:
        raise ValueError("default_collate: got an empty list of samples")
    return _to_tensors(collate_arrays(samples), final=True)


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
        batch_sampler: an iterable of index lists, one per batch (excludes ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``).
        num_workers, pin_memory, timeout, worker_init_fn, multiprocessing_context,
            prefetch_factor, persistent_workers, pin_memory_device, in_order: PyTorch's; checked
            as PyTorch checks them, and otherwise without effect: loading stays in this process.
        generator: shuffle with this stream (a ``backprop.Generator`` or a
            ``numpy.random.Generator``) instead of the loader's own.
        seed: seeds the loader's own ``numpy.random.Generator``; None draws the seed from
            backprop's global generator, so ``backprop.manual_seed`` makes it reproducible.

    Yields:
        for a dataset of pairs, ``(x, y)`` tuples of Tensors: data given as Tensors in their own
        dtype; arrays as float32 (floating) and int64 (integers, class labels); batch shapes
        (B, ...) with B = ``batch_size`` except possibly in the last batch.

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

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Iterable[int] | None = None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None,
                 persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True, seed: int | None = None) -> None:
        shuffle = bool(shuffle)
        if batch_sampler is not None:
            # PyTorch's rule: a batch sampler decides batches, so the other batching options
            # must keep their defaults
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size = None
        elif batch_size is None:
            raise ValueError("DataLoader: batch_size=None (no batching) is not supported; pass a "
                             "positive batch_size")
        elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError(
                "DataLoader: sampler and shuffle=True exclude each other (the sampler decides the "
                "order); shuffle inside the sampler instead"
            )
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) \
                or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative; use "
                             f"num_workers=0 to disable multiprocessing (got {num_workers!r})")
        if timeout < 0:
            raise ValueError("DataLoader: timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in "
                             "multiprocessing. Let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle = shuffle
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        # accepted for PyTorch programs; loading runs in this process (module docstring)
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        self.persistent_workers, self.prefetch_factor = persistent_workers, prefetch_factor
        self.timeout, self.worker_init_fn = timeout, worker_init_fn
        if generator is not None:
            if seed is not None:
                raise TypeError("DataLoader: pass generator or seed, not both")
            # shuffling draws from the caller's stream, as PyTorch's loader does
            self.seed = None
            self.generator = _random.numpy_generator(generator)
        else:
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
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator:
        dataset, collate_fn = self.dataset, self.collate_fn
        getitems = getattr(dataset, "__getitems__", None)
        for indices in self._batches():
            if collate_fn is not None:
                yield collate_fn([dataset[i] for i in indices.tolist()])
            elif getitems is not None:  # the vectorised path: one fancy-index per array
                yield _to_tensors(getitems(indices))
            else:
                yield _to_tensors(fetch(dataset, indices))

    def _batches(self) -> Iterator[np.ndarray]:
        if self.batch_sampler is not None:
            for batch in self.batch_sampler:
                yield np.asarray(batch, dtype=np.int64).reshape(-1)
            return
        order = self._epoch_indices()
        n, b = len(order), self.batch_size
        stop = n - n % b if self.drop_last else n
        for start in range(0, stop, b):
            yield order[start:start + b]

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {self._num_samples()}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"seed={self.seed})"
        )
