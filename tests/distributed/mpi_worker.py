"""Run by tests/distributed under ``mpirun -n N`` (and in one process for the reference): not a
test module itself. ``python mpi_worker.py MODE OUT_DIR``."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

import backprop as bp
from backprop import distributed as dist
from backprop.data import DataLoader, TensorDataset


def make_model(dtype):
    """A CNN with SyncBatchNorm (conv, BN, pooling) followed by an MLP head."""
    nn = bp.nn
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.SyncBatchNorm(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 16), nn.Tanh(), nn.SyncBatchNorm(16),
        nn.Linear(16, 3),
    )
    return model.to(dtype)


def train(dtype, per_rank_batch: int, epochs: int = 2) -> dict:
    """Train with DDP over the world (one process: world of 1); returns the final state."""
    rng = np.random.default_rng(123)
    x = rng.normal(size=(48, 1, 8, 8)).astype(dtype)
    y = rng.integers(0, 3, size=48)
    data = TensorDataset(x, y)
    bp.manual_seed(100 + dist.rank())  # different on every rank: DDP must broadcast rank 0's
    model = make_model(dtype)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.002)
    opt = bp.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    sampler = dist.DistributedSampler(data, seed=7)
    loader = DataLoader(data, batch_size=per_rank_batch, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            if xb.dtype != model[0].weight.dtype:
                xb = xb.to(model[0].weight.dtype)
            opt.zero_grad()
            bp.nn.functional.cross_entropy(ddp(xb), yb).backward()
            opt.step()
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def overlap() -> dict:
    """The MNIST MLP's buckets and one backward's timeline, default bucket sizes."""
    bp.manual_seed(0)
    nn = bp.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    ddp = dist.DistributedDataParallel(model)
    x, y = bp.randn(64, 784), bp.randint(0, 10, (64,))
    timelines = []
    for _ in range(3):
        ddp.zero_grad()
        bp.nn.functional.cross_entropy(ddp(x), y).backward()
        timelines.append(ddp.timeline)
    # no_sync: local gradients only (they differ between ranks); the next backward outside it
    # averages what was accumulated (the same on every rank)
    x = bp.randn(8, 784) * (dist.rank() + 1)
    ddp.zero_grad()
    with ddp.no_sync():
        bp.nn.functional.cross_entropy(ddp(x), y[:8]).backward()
    local = model[4].bias.grad.numpy().tolist()
    bp.nn.functional.cross_entropy(ddp(x), y[:8]).backward()
    synced = model[4].bias.grad.numpy().tolist()
    from threadpoolctl import threadpool_info

    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return {"buckets": ddp.buckets, "timelines": timelines, "blas_threads": blas,
            "no_sync_local": local, "after_sync": synced}


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    dist.init(timeout=float(os.environ.get("TEST_DIST_TIMEOUT", "60")))
    r, n = dist.rank(), dist.world_size()
    if mode == "equivalence":
        per_rank = 8 // n  # a global batch of 8 however many ranks
        for name, dtype in (("float64", np.float64), ("float32", np.float32)):
            state = train(dtype, per_rank)
            np.savez(os.path.join(out, f"{name}-world{n}-rank{r}.npz"), **state)
        result = overlap()
        with open(os.path.join(out, f"overlap-world{n}-rank{r}.json"), "w") as f:
            json.dump(result, f)
    elif mode == "hang":
        # rank 1 stops before the all-reduce; rank 0 must give up after the timeout
        if r == 1:
            print("rank 1: hanging", flush=True)
            time.sleep(3600)
        buf = np.ones(4)
        t0 = time.monotonic()
        try:
            dist.all_reduce(buf, what="the test's all-reduce")
        except dist.DistributedTimeoutError as exc:
            print(f"rank {r} after {time.monotonic() - t0:.1f} s: {exc} ranks={exc.ranks}",
                  flush=True)
            dist.abort(3)
        print("rank 0: the all-reduce completed although rank 1 hangs", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
