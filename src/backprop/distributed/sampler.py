"""``DistributedSampler``: each rank's share of a dataset, disjoint, reshuffled every epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from backprop.distributed import comm

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """The indices of rank ``rank``'s shard of ``dataset`` for one epoch (PyTorch's
    ``torch.utils.data.DistributedSampler``); pass it as ``DataLoader(sampler=...)``.

    Every rank draws the same permutation of all indices (seeded by ``seed + epoch``) and takes
    every ``num_replicas``-th entry starting at its rank, so the shards are disjoint and cover
    the dataset; ``set_epoch(e)`` before each epoch gives a new order. When the dataset does not
    divide evenly, the permutation is padded by repeating its first indices (or, with
    ``drop_last``, cut) so that every rank has the same number of batches.

    With per-rank batch B, batch k of every rank together is exactly batch k of one process
    that uses batch N·B over the same permutation (``num_replicas=1``): the property the
    data-parallel equivalence rests on.

    Args:
        dataset: anything with ``len()``.
        num_replicas: the number of ranks (default ``world_size()``).
        rank: this rank (default ``rank()``).
        shuffle: permute (else the indices in order).
        seed: the permutation's seed; the same on every rank.
        drop_last: cut the tail instead of padding it.

    Example:
        >>> s = DistributedSampler(range(10), num_replicas=2, rank=1, seed=0)
        >>> len(s), len(set(s) & set(DistributedSampler(range(10), 2, 0, seed=0)))
        (5, 0)
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        num_replicas = comm.world_size() if num_replicas is None else num_replicas
        rank = comm.rank() if rank is None else rank
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got "
                             f"{num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}], "
                             f"got {rank!r}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = n // num_replicas
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` (call before each epoch, on every rank)."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, (num_samples,) int64."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:
            order = np.concatenate([order, np.resize(order, self.total_size - n)])
        order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
