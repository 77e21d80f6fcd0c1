"""CNN training-step benchmark: a LeNet-5-like net in backprop beside PyTorch (issue 5).

Run by hand (never imported by the tests)::

    python benchmarks/bench_cnn.py               # 7 interleaved rounds of 20 steps
    python benchmarks/bench_cnn.py --quick       # smoke run
    python benchmarks/bench_cnn.py --profile     # also a cProfile of our step
    python benchmarks/bench_cnn.py --blas-threads 1   # NumPy's BLAS on 1 thread (torch keeps 2)
    BACKPROP_FAST=0 python benchmarks/bench_cnn.py    # the NumPy path only (no numba)

Workload: batch 64 of 1x28x28 float32 images, conv(1→6, 5)-ReLU-maxpool(2)-conv(6→16, 5)-ReLU-
maxpool(2)-flatten-linear(256→120)-ReLU-linear(120→84)-ReLU-linear(84→10), mean cross-entropy
(``nn.functional.cross_entropy``), SGD with momentum 0.9 (``optim.SGD``), lr 0.01. A step is
zero_grad, forward, loss, backward, step. Both libraries start from the same weights (ours are
loaded into torch through ``load_state_dict``) and cycle through the same 4 batches; one step of
each is compared first so the benchmark cannot time something wrong.

Threads: torch gets 2 (``torch.set_num_threads(2)``); NumPy's BLAS is limited to 2 as well
(OPENBLAS/OMP/MKL_NUM_THREADS, set before NumPy is imported; ``--blas-threads`` changes it: on
a loaded machine one BLAS thread avoids OpenBLAS's spin-wait contention). Timing: rounds
interleave the libraries (order alternating) with a short pause before each block; the table
gives the median step time over rounds. Target: ours ≥ 0.5x PyTorch's throughput (0.8x with
the numba fast path).

Fast path: with numba installed (the ``[fast]`` extra) ours runs twice, as ``backprop`` (numba
kernels for im2col, col2im and max pooling; ``backends.fast.flags(enabled=True)``) and as
``backprop numpy`` (the NumPy path), two models from the same seed, interleaved in the same
rounds. Ratios are paired: torch's time over ours *in the same round*, the median over rounds,
so a burst of load on the machine hits both sides of a ratio. The load average (1, 5, 15 min)
is printed before and after, because the figures mean little without it.
"""

from __future__ import annotations

import _harness  # first: it sets NumPy's BLAS threads before NumPy loads

_harness.set_blas_threads()

import cProfile  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402

import backprop as bp  # noqa: E402
from backprop.backends import fast  # noqa: E402

BATCH, POOL, LR, MOMENTUM, THREADS, TARGET, FAST_TARGET = 64, 4, 0.01, 0.9, 2, 0.5, 0.8


def lenet(nn):
    """The same architecture in either library (``nn`` is ``backprop.nn`` or ``torch.nn``)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32) for _ in range(POOL)]
    ys = [rng.integers(0, 10, BATCH) for _ in range(POOL)]
    return xs, ys


def ours(xs, ys, use_fast=None):
    """Our model and step; ``use_fast`` True/False runs every step with the numba path on/off
    (None: as the process is configured)."""
    bp.manual_seed(0)
    model = lenet(bp.nn)
    opt = bp.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(bp.tensor(x), bp.tensor(y)) for x, y in zip(xs, ys)]
    it = [0]

    def plain_step():
        x, y = data[it[0] % POOL]
        it[0] += 1
        opt.zero_grad()
        loss = bp.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if use_fast is None:
        return model, plain_step

    def step():
        with fast.flags(enabled=use_fast):
            return plain_step()

    return model, step


def _load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _paired(times: dict, num: str, den: str) -> float:
    """Median over rounds of times[num][r] / times[den][r]: den's throughput over num's."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def theirs(torch, state, xs, ys):
    model = lenet(torch.nn)
    model.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in state.items()})
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, ys)]
    it = [0]

    def step():
        x, y = data[it[0] % POOL]
        it[0] += 1
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, step


def main(argv=None) -> None:
    args, rounds, steps = _harness.parse_args(__doc__, 20, argv)
    xs, ys = make_data()
    with_fast = fast.is_enabled()  # numba installed and BACKPROP_FAST not 0
    model, our_step = ours(xs, ys, use_fast=True if with_fast else None)
    try:
        import torch
    except ImportError:
        torch = None
    impls = {"backprop": our_step}
    if with_fast:
        impls["backprop numpy"] = ours(xs, ys, use_fast=False)[1]
    if torch is not None:
        torch.set_num_threads(THREADS)
        tmodel, their_step = theirs(torch, model.state_dict(), xs, ys)
        a, b = float(our_step().item()), float(their_step().item())
        w = model.state_dict()["0.weight"].data
        tw = tmodel.state_dict()["0.weight"].detach().numpy()
        assert abs(a - b) < 1e-4 and np.allclose(w, tw, atol=1e-5), (a, b)
        print(f"check: one step agrees (loss {a:.6f} vs {b:.6f}, updated conv1 weights close)")
        impls["torch"] = their_step
    print(f"before: {_load()}")
    times = _harness.interleaved(impls, rounds, steps, warmup=3)
    print(f"after:  {_load()}")
    print(f"LeNet-5-like training step, batch {BATCH}, 1x28x28, float32; torch threads "
          f"{THREADS}, NumPy BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}"
          f"; numba fast path {'on (backprop) and off (backprop numpy)' if with_fast else 'off'}"
          f"; median of {rounds} interleaved rounds x {steps} steps")
    med = _harness.print_medians(times, BATCH, "samples")
    if "torch" in med:
        target = FAST_TARGET if with_fast else TARGET
        ratio = _paired(times, "torch", "backprop")
        verdict = "meets" if ratio >= target else "misses"
        by_medians = med["torch"] / med["backprop"]
        print(f"  throughput ours/torch = {ratio:.2f}x paired, {by_medians:.2f}x by medians "
              f"({verdict} the {target}x target)")
        if with_fast:
            print(f"  numpy path ours/torch = {_paired(times, 'torch', 'backprop numpy'):.2f}x "
                  "paired")
    if with_fast:
        print(f"  fast path speed-up = {_paired(times, 'backprop numpy', 'backprop'):.2f}x paired")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [our_step() for _ in range(20)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
