"""CNN training-step benchmark: a LeNet-5-like net in backprop beside PyTorch (issue 5).

Run by hand (never imported by the tests)::

    python benchmarks/bench_cnn.py               # 7 interleaved rounds of 20 steps
    python benchmarks/bench_cnn.py --quick       # smoke run
    python benchmarks/bench_cnn.py --profile     # also a cProfile of our step
    python benchmarks/bench_cnn.py --blas-threads 1   # NumPy's BLAS on 1 thread (torch keeps 2)

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
gives the median step time over rounds. Target: ours ≥ 0.5x PyTorch's throughput.
"""

from __future__ import annotations

import _harness  # first: it sets NumPy's BLAS threads before NumPy loads

_harness.set_blas_threads()

import cProfile  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402

import numpy as np  # noqa: E402

import backprop as bp  # noqa: E402

BATCH, POOL, LR, MOMENTUM, THREADS, TARGET = 64, 4, 0.01, 0.9, 2, 0.5


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


def ours(xs, ys):
    bp.manual_seed(0)
    model = lenet(bp.nn)
    opt = bp.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(bp.tensor(x), bp.tensor(y)) for x, y in zip(xs, ys)]
    it = [0]

    def step():
        x, y = data[it[0] % POOL]
        it[0] += 1
        opt.zero_grad()
        loss = bp.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, step


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
    model, our_step = ours(xs, ys)
    try:
        import torch
    except ImportError:
        torch = None
    impls = {"backprop": our_step}
    if torch is not None:
        torch.set_num_threads(THREADS)
        tmodel, their_step = theirs(torch, model.state_dict(), xs, ys)
        a, b = float(our_step().item()), float(their_step().item())
        w = model.state_dict()["0.weight"].data
        tw = tmodel.state_dict()["0.weight"].detach().numpy()
        assert abs(a - b) < 1e-4 and np.allclose(w, tw, atol=1e-5), (a, b)
        print(f"check: one step agrees (loss {a:.6f} vs {b:.6f}, updated conv1 weights close)")
        impls["torch"] = their_step
    times = _harness.interleaved(impls, rounds, steps, warmup=3)
    print(f"LeNet-5-like training step, batch {BATCH}, 1x28x28, float32; torch threads "
          f"{THREADS}, NumPy BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}"
          "; median of "
          f"{rounds} interleaved rounds x {steps} steps")
    med = _harness.print_medians(times, BATCH, "samples")
    if "torch" in med:
        ratio = med["torch"] / med["backprop"]
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"  throughput ours/torch = {ratio:.2f}x ({verdict} the {TARGET}x target)")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [our_step() for _ in range(20)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
