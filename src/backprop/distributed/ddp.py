"""``DistributedDataParallel``: every rank holds the whole model, computes gradients on its own
shard of the batch, and the gradients are averaged over the ranks during backward.

How the averaging overlaps backward: the parameters are packed into a few buckets, in the
reverse of their registration order (roughly the order backward produces their gradients). A
post-accumulate-grad hook on every parameter marks its gradient final; when the last gradient
of a bucket is final, the bucket is copied into one flat buffer and a non-blocking all-reduce
(MPI ``Iallreduce``) starts at once, while backward goes on computing the earlier layers'
gradients. A callback queued on the backward pass waits for every bucket when the last node
has run and writes the averaged gradients back into ``.grad``, so ``optimizer.step()`` sees
them as it would in one process.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from backprop.autograd import graph
from backprop.autograd.grad_mode import no_grad
from backprop.distributed import comm
from backprop.nn.module import Module
from backprop.tensor import Tensor

__all__ = ["DistributedDataParallel"]

_MB = 1024 * 1024


class _Bucket:
    """Parameters whose gradients are all-reduced together, as one flat buffer."""

    __slots__ = ("index", "params", "offsets", "numel", "dtype", "pending", "buffer", "work",
                 "ready")

    def __init__(self, index: int, params: list, dtype) -> None:
        self.index, self.params, self.dtype = index, params, dtype
        sizes = [p.data.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.numel = int(self.offsets[-1])
        self.pending, self.buffer, self.work, self.ready = len(params), None, None, False

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.dtype).itemsize


class DistributedDataParallel(Module):
    """Data-parallel training over the ranks of ``backprop.distributed`` (PyTorch's
    ``torch.nn.parallel.DistributedDataParallel``).

    At construction rank 0's parameters and buffers are copied to every rank. Each backward
    pass then leaves in every parameter's ``.grad`` the average of the ranks' gradients, with
    the all-reduces started while backward still runs (see the module docstring). So N ranks
    with batch B each take the same steps as one process with batch N·B over the same samples,
    provided the loss is a mean over the batch, there is no dropout and batch statistics are
    taken with ``SyncBatchNorm``.

    Args:
        module: the model; every rank must build the same architecture.
        bucket_cap_mb: size limit of a bucket, in MiB (PyTorch's 25). The first bucket (the
            output layers, whose gradients come first) is limited to 1 MiB, so its all-reduce
            starts early in backward.
        broadcast_buffers: copy rank 0's buffers (BatchNorm statistics) to every rank at each
            training forward pass (not needed with ``SyncBatchNorm``, whose statistics agree).

    Attributes:
        module: the wrapped model. ``state_dict()`` keys carry PyTorch's ``module.`` prefix;
            save ``ddp.module.state_dict()`` for a checkpoint that loads into the bare model.
        buckets: the buckets, as lists of parameter names, in all-reduce order.
        timeline: the last backward pass: ``{"buckets": [(start, end), ...], "backward_end":
            t, "wait": seconds}`` with ``time.perf_counter()`` stamps; ``start`` is when a
            bucket's all-reduce was started, ``backward_end`` when the last node had run
            (before waiting), ``wait`` the time then spent waiting for the all-reduces.

    Shapes: as ``module``.

    Example (under ``mpirun -n 2 python train.py``; in one process it is rank 0 of 1):
        >>> import backprop as bp
        >>> from backprop import distributed as dist
        >>> dist.init()
        >>> model = dist.DistributedDataParallel(bp.nn.Linear(4, 2))
        >>> model(bp.randn(3, 4)).sum().backward()
        >>> model.module.weight.grad.shape
        (2, 4)
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0,
                 broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got "
                            f"{type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got "
                             f"{bucket_cap_mb!r}")
        comm.init()
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self._sync = True
        self.timeline: dict = {}
        self._sync_state(what="the start of DistributedDataParallel (broadcasting rank 0's "
                              "weights)", with_params=True)
        params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = self._make_buckets(params, bucket_cap_mb * _MB)
        names = {id(p): n for n, p in module.named_parameters()}
        self.buckets = [[names[id(p)] for p in b.params] for b in self._buckets]
        self._where = {}
        for b in self._buckets:
            for p in b.params:
                self._where[id(p)] = b
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self._key = object()

    @staticmethod
    def _make_buckets(params: list, cap: float) -> list[_Bucket]:
        buckets, current, size, limit = [], [], 0, min(_MB, cap)
        for p in reversed(params):
            if current and (size + p.data.nbytes > limit or p.data.dtype != current[0].data.dtype):
                buckets.append(_Bucket(len(buckets), current, current[0].data.dtype))
                current, size, limit = [], 0, cap
            current.append(p)
            size += p.data.nbytes
        if current:
            buckets.append(_Bucket(len(buckets), current, current[0].data.dtype))
        return buckets

    def _sync_state(self, what: str, with_params: bool) -> None:
        if comm.world_size() == 1:
            return
        tensors = list(self.module.parameters()) if with_params else []
        tensors += [b for b in self.module.buffers() if b is not None]
        with no_grad():
            for t in tensors:
                arr = t.data
                if arr.flags.c_contiguous and arr.flags.writeable:
                    comm.broadcast(arr, 0, what=what)
                else:
                    tmp = np.ascontiguousarray(arr)
                    comm.broadcast(tmp, 0, what=what)
                    t.data[...] = tmp

    def forward(self, *args, **kwargs):
        if self.training and self.broadcast_buffers and any(True for _ in self.module.buffers()):
            self._sync_state("the buffer broadcast before a forward pass", with_params=False)
        return self.module(*args, **kwargs)

    @contextmanager
    def no_sync(self):
        """Inside it, backward passes only accumulate local gradients (for gradient
        accumulation over several micro-batches); the first backward after it averages the
        accumulated gradients."""
        old, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = old

    # --- the hooks -----------------------------------------------------------------------
    def _step_state(self):
        task = graph.current_graph_task()
        state = task.state.get(self._key)
        if state is None:
            for b in self._buckets:
                b.pending, b.buffer, b.work, b.ready = len(b.params), None, None, False
            state = task.state[self._key] = {"next": 0, "t0": time.perf_counter()}
            graph.queue_callback(self._finish)
        return state

    def _grad_ready(self, param: Tensor) -> None:
        if not self._sync or comm.world_size() == 1:
            return
        state = self._step_state()
        bucket = self._where[id(param)]
        bucket.pending -= 1
        if bucket.pending == 0:
            bucket.ready = True
        # buckets start in index order on every rank: MPI requires collectives in the same
        # order everywhere, and backward may finish a later bucket first
        while state["next"] < len(self._buckets) and self._buckets[state["next"]].ready:
            self._launch(self._buckets[state["next"]])
            state["next"] += 1
        for b in self._buckets[:state["next"]]:
            b.work.is_completed()  # lets MPI progress the transfers already started

    def _launch(self, bucket: _Bucket) -> None:
        # a fresh buffer every step: the averaged gradients handed out as .grad are views of it
        buf = np.empty(bucket.numel, dtype=bucket.dtype)
        for p, lo, hi in zip(bucket.params, bucket.offsets[:-1], bucket.offsets[1:]):
            if p.grad is None:
                buf[lo:hi] = 0  # not used by this rank's forward: contributes nothing
            else:
                buf[lo:hi] = p.grad.data.reshape(-1)
        bucket.buffer = buf
        bucket.work = comm.all_reduce(
            buf, "sum", async_op=True,
            what=f"the gradient all-reduce of bucket {bucket.index}")

    def _finish(self) -> None:
        backward_end = time.perf_counter()
        state = self._step_state()
        for b in self._buckets[state["next"]:]:  # parameters this backward did not reach
            self._launch(b)
        for b in self._buckets:
            b.work.wait()
        waited = time.perf_counter() - backward_end
        spans = [(b.work.started, b.work.finished) for b in self._buckets]
        inv = 1.0 / comm.world_size()
        for b in self._buckets:
            b.buffer *= inv
            for p, lo, hi in zip(b.params, b.offsets[:-1], b.offsets[1:]):
                p.grad = Tensor(b.buffer[lo:hi].reshape(p.data.shape))
            b.buffer = b.work = None
        self.timeline = {"buckets": spans, "first_grad_ready": state["t0"],
                         "backward_end": backward_end, "wait": waited}
        state.clear()

    def extra_repr(self) -> str:
        return f"world_size={comm.world_size()}, buckets={len(self._buckets)}"
