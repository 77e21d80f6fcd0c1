"""Data-parallel step time, all-reduce time and overlap for the MNIST MLP and CNN (by hand).

    OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py                 # 1 rank
    OMP_NUM_THREADS=1 mpirun -n 2 --oversubscribe python benchmarks/bench_distributed.py

A fixed global batch (128) is split over the ranks (strong scaling). Inputs are random arrays
of MNIST's shape: the time of a step does not depend on the pixel values. Rank 0 prints one
JSON line per model: the median step time (forward, backward including the wait for the
all-reduces, optimizer step), the median time a blocking all-reduce of all the gradients
takes on its own, the median time backward still waited for the all-reduces after its last
node, and the overlap 1 - wait / all-reduce (the part of the communication hidden behind
backward). These are the figures of docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import backprop as bp
from backprop import distributed as dist

nn = bp.nn


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                         nn.ReLU(), nn.Linear(256, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.SyncBatchNorm(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.SyncBatchNorm(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def measure(name, build, global_batch: int, steps: int) -> dict:
    n, r = dist.world_size(), dist.rank()
    bp.manual_seed(0)
    model = build()
    ddp = dist.DistributedDataParallel(model)
    opt = bp.optim.Adam(ddp.parameters(), lr=1e-3)
    rng = np.random.default_rng(r)
    b = global_batch // n
    x = bp.tensor(rng.normal(size=(b, 1, 28, 28)).astype(np.float32))
    y = bp.tensor(rng.integers(0, 10, size=b))
    times, waits, leads = [], [], []
    for i in range(steps + 3):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
        if i >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - t0)
            waits.append(ddp.timeline.get("wait", 0.0))
            if ddp.timeline:  # how long before backward's end the first all-reduce started
                leads.append(ddp.timeline["backward_end"] - ddp.timeline["buckets"][0][0])
    numel = sum(p.data.size for p in model.parameters())
    flat = np.zeros(numel, dtype=np.float32)
    alone = []
    for _ in range(20):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        alone.append(time.perf_counter() - t0)
    # every rank's median step; the slowest rank sets the pace
    step = np.array([statistics.median(times)])
    dist.all_reduce(step, "max")
    allreduce = statistics.median(alone) if n > 1 else 0.0
    wait = statistics.median(waits) if n > 1 else 0.0
    return {"model": name, "ranks": n, "global_batch": global_batch, "parameters": numel,
            "gradient_MB": round(numel * 4 / 1e6, 3), "buckets": len(ddp.buckets),
            "step_ms": round(1e3 * float(step[0]), 2), "allreduce_ms": round(1e3 * allreduce, 3),
            "wait_ms": round(1e3 * wait, 3),
            "first_bucket_lead_ms": round(1e3 * statistics.median(leads), 3) if leads else None,
            "overlap": round(max(0.0, 1 - wait / allreduce), 2) if allreduce else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    dist.init()
    for name, build in (("mlp", mlp), ("cnn", cnn)):
        result = measure(name, build, args.batch, args.steps)
        if dist.rank() == 0:
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
