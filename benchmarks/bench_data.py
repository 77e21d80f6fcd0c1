"""DataLoader benchmark: one shuffled epoch of MNIST-sized data through each loader.

Run by hand (never imported by the tests)::

    python benchmarks/bench_data.py               # 7 interleaved rounds
    python benchmarks/bench_data.py --rounds 15
    python benchmarks/bench_data.py --quick       # smoke run: 3 rounds
    python benchmarks/bench_data.py --no-torch    # our figures and the NumPy baselines only

Data: 60,000 x 784 float32 features (random, MNIST's size), int64 labels, batch 128, shuffled
(469 batches, the last one of 96). An epoch is consumed by reading each batch's length, so only
the batching itself is timed. Implementations:

- backprop: ``DataLoader(TensorDataset(X, Y), batch_size=128, shuffle=True)``, yielding Tensors.
- slicing (shuffled): ``perm = rng.permutation(N)``, then ``X[perm[i:i+128]]``, ``Y[...]``: the
  same gathers with no framework around them, the figure ours should match.
- slicing (in order): ``X[i:i+128]`` views, no shuffle and no copy: a lower bound, not a peer.
- torch: ``torch.utils.data.DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)``
  (num_workers=0): one ``__getitem__`` per sample, then ``default_collate`` stacks them.
- torch, batched sampler: the same dataset with ``sampler=BatchSampler(RandomSampler(ds), 128,
  False)`` and ``batch_size=None``, so torch indexes a whole batch at once (its fast idiom).

Timing: one warm-up epoch each, then R rounds; each round runs one epoch of every implementation
in turn, the order rotated from round to round, with a 0.2 s pause before each (so one library's
spinning worker threads do not slow the next). Reported: the median epoch time over the rounds,
min-max, and each time relative to shuffled slicing (the median of the per-round ratios in
brackets). Before timing, every implementation runs one epoch over (X, ids) and must deliver every
sample exactly once, each row with its own label, as float32 features and int64 labels.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np
from _harness import cpu_model

from backprop.data import DataLoader, TensorDataset

N, D, BATCH = 60_000, 784, 128
PAUSE_S = 0.2


# Each factory takes (X, Y) and returns a function that makes one epoch's iterable of
# (x_batch, y_batch) pairs; the loaders are built once, outside the timed region.
def backprop_loader(x: np.ndarray, y: np.ndarray) -> Callable[[], Iterable]:
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, seed=0)
    return lambda: loader


def slicing_shuffled(x: np.ndarray, y: np.ndarray) -> Callable[[], Iterable]:
    rng = np.random.default_rng(0)

    def epoch():
        perm = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = perm[start:start + BATCH]
            yield x[idx], y[idx]

    return epoch


def slicing_in_order(x: np.ndarray, y: np.ndarray) -> Callable[[], Iterable]:
    def epoch():
        for start in range(0, len(x), BATCH):
            yield x[start:start + BATCH], y[start:start + BATCH]

    return epoch


def torch_loader(x: np.ndarray, y: np.ndarray) -> Callable[[], Iterable]:
    import torch
    from torch.utils.data import DataLoader as TorchLoader
    from torch.utils.data import TensorDataset as TorchDataset

    torch.manual_seed(0)
    ds = TorchDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = TorchLoader(ds, batch_size=BATCH, shuffle=True)
    return lambda: loader


def torch_batched_sampler(x: np.ndarray, y: np.ndarray) -> Callable[[], Iterable]:
    import torch
    from torch.utils.data import BatchSampler, RandomSampler
    from torch.utils.data import DataLoader as TorchLoader
    from torch.utils.data import TensorDataset as TorchDataset

    torch.manual_seed(0)
    ds = TorchDataset(torch.from_numpy(x), torch.from_numpy(y))
    sampler = BatchSampler(RandomSampler(ds), BATCH, drop_last=False)
    loader = TorchLoader(ds, batch_size=None, sampler=sampler)
    return lambda: loader


def _as_numpy(a) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else np.asarray(a.numpy())


def check(name: str, make: Callable, x: np.ndarray, shuffled: bool) -> None:
    """One epoch over (X, ids): every sample once, each row with its own id, right dtypes."""
    ids = np.arange(len(x), dtype=np.int64)
    seen = []
    for xb, yb in make(x, ids)():
        xb, yb = _as_numpy(xb), _as_numpy(yb)
        if xb.dtype != np.float32 or yb.dtype != np.int64:
            sys.exit(f"check failed: {name} yields {xb.dtype}/{yb.dtype}, not float32/int64")
        if not np.array_equal(xb, x[yb]):
            sys.exit(f"check failed: {name} pairs rows with the wrong labels")
        seen.append(yb)
    seen = np.concatenate(seen)
    if not np.array_equal(np.sort(seen), ids):
        sys.exit(f"check failed: {name} does not deliver every sample exactly once")
    if shuffled and np.array_equal(seen, ids):
        sys.exit(f"check failed: {name} did not shuffle")


def run_epoch(epoch: Callable[[], Iterable]) -> float:
    start = time.perf_counter()
    count = 0
    for _, yb in epoch():
        count += len(yb)
    elapsed = time.perf_counter() - start
    assert count == N
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds: a smoke run")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch loaders")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds

    impls: list[tuple[str, Callable, bool]] = [
        ("backprop DataLoader", backprop_loader, True),
        ("slicing, shuffled", slicing_shuffled, True),
        ("slicing, in order (views)", slicing_in_order, False),
    ]
    torch_version = None
    if not args.no_torch:
        try:
            import torch

            torch_version = f"{torch.__version__}, {torch.get_num_threads()} threads"
            impls += [("torch DataLoader", torch_loader, True),
                      ("torch DataLoader, batched sampler", torch_batched_sampler, True)]
        except ImportError:
            torch_version = "not importable (its rows are skipped)"

    print(f"CPU: {cpu_model()}, nproc {os.cpu_count()}")
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, torch {torch_version}")
    print(f"data: {N:,} x {D} float32 + int64 labels, batch {BATCH}, shuffled; "
          f"{rounds} interleaved rounds, median epoch time\n")

    rng = np.random.default_rng(0)
    x = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, 10, N).astype(np.int64)

    for name, make, shuffled in impls:
        check(name, make, x, shuffled)
    epochs = {name: make(x, y) for name, make, _ in impls}
    for epoch in epochs.values():  # warm-up
        run_epoch(epoch)

    times: dict[str, list[float]] = {name: [] for name in epochs}
    names = list(epochs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(PAUSE_S)
            times[name].append(run_epoch(epochs[name]))

    ref = times["slicing, shuffled"]
    print(f"  {'implementation':36s} {'median ms/epoch':>16s} {'min-max':>14s} "
          f"{'samples/s':>11s}  {'/ slicing, shuffled':>20s}")
    for name in names:
        t = times[name]
        med = statistics.median(t)
        paired = statistics.median(a / b for a, b in zip(t, ref))
        print(f"  {name:36s} {med * 1e3:16.1f} {min(t) * 1e3:6.1f}-{max(t) * 1e3:<7.1f} "
              f"{N / med:11,.0f}  {med / statistics.median(ref):11.2f}x ({paired:.2f})")


if __name__ == "__main__":
    main()
