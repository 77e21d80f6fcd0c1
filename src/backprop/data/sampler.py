"""Samplers with PyTorch's names: the order in which ``DataLoader`` visits a dataset.

A sampler is an iterable of indices, iterated afresh every epoch (``RandomSampler`` draws a new
order each time). Pass one as ``DataLoader(sampler=...)``, or a ``BatchSampler`` as
``batch_sampler=``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized

import numpy as np

from backprop import random as _random

__all__ = ["BatchSampler", "RandomSampler", "Sampler", "SequentialSampler",
           "SubsetRandomSampler"]


class Sampler:
    """Base class: subclasses define ``__iter__`` (indices) and usually ``__len__``."""

    def __init__(self, data_source: Sized | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1, every epoch."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A new random order every epoch: a permutation, or ``num_samples`` draws with
    replacement.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw with replacement.
        num_samples: how many indices per epoch (default: the dataset's length).
        generator: a ``backprop.Generator`` or ``numpy.random.Generator`` (default: the global
            one, so ``backprop.manual_seed`` makes it reproducible).

    Example:
        >>> import backprop as bp
        >>> sorted(bp.utils.data.RandomSampler(range(5)))
        [0, 1, 2, 3, 4]
    """

    def __init__(self, data_source: Sized, replacement: bool = False,
                 num_samples: int | None = None, generator=None) -> None:
        self.data_source, self.replacement = data_source, bool(replacement)
        self._num_samples, self.generator = num_samples, generator
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, "
                             f"but got num_samples={num_samples}")

    @property
    def num_samples(self) -> int:
        """Indices per epoch."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        rng = _random.numpy_generator(self.generator)
        n = len(self.data_source)
        if self.replacement:
            return iter(rng.integers(0, n, self.num_samples).tolist())
        reps = -(-self.num_samples // n) if n else 0
        order = np.concatenate([rng.permutation(n) for _ in range(reps)] or [np.arange(0)])
        return iter(order[:self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a new random order every epoch.

    Args:
        indices: the dataset indices to draw from.
        generator: as for :class:`RandomSampler`.
    """

    def __init__(self, indices, generator=None) -> None:
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        rng = _random.numpy_generator(self.generator)
        return iter(self.indices[rng.permutation(len(self.indices))].tolist())

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Group another sampler's indices into lists of ``batch_size``.

    Example:
        >>> import backprop as bp
        >>> list(bp.utils.data.BatchSampler(range(5), batch_size=2, drop_last=False))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer value, but "
                             f"got batch_size={batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(int(i))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
