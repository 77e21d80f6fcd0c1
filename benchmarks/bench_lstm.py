"""LSTM training-step benchmark: backprop's nn.LSTM beside PyTorch's (issue 5).

Run by hand (never imported by the tests)::

    python benchmarks/bench_lstm.py               # 7 interleaved rounds of 10 steps
    python benchmarks/bench_lstm.py --quick       # smoke run
    python benchmarks/bench_lstm.py --profile     # also a cProfile of our step
    python benchmarks/bench_lstm.py --blas-threads 1   # NumPy's BLAS on 1 thread (torch keeps 2)

Workload: a one-layer LSTM (input 32, hidden 128) over sequences of 64 steps, batch 32, float32,
full BPTT; the loss is the mean square of a linear read-out (128 -> 1) of the last output
against a target; plain SGD, lr 0.01. A step is zero_grad, forward, loss, backward, step. Both
libraries start from the same weights (ours loaded into torch through ``load_state_dict``) and
cycle through the same 4 batches; one step of each is compared first so the benchmark cannot
time something wrong. References: torch's fused ``nn.LSTM`` and torch's own Python loop over
``nn.LSTMCell`` (same weights).

Threads: torch gets 2 (``torch.set_num_threads(2)``); NumPy's BLAS is limited to 2 as well
(set before NumPy is imported). Timing: rounds interleave the implementations (order
alternating) with a short pause before each block; the table gives the median step time over
rounds. Target: ours ≥ 0.8x the throughput of torch's nn.LSTM.
"""

from __future__ import annotations

import _harness  # first: it sets NumPy's BLAS threads before NumPy loads

_harness.set_blas_threads()

import cProfile  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402

import numpy as np  # noqa: E402

import backprop as bp  # noqa: E402

INPUT, HIDDEN, SEQ, BATCH, POOL, LR = 32, 128, 64, 32, 4, 0.01
THREADS, TARGET = 2, 0.8


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32) for _ in range(POOL)]
    ys = [rng.standard_normal((BATCH, 1)).astype(np.float32) for _ in range(POOL)]
    return xs, ys


def ours(xs, ys):
    bp.manual_seed(0)
    lstm, head = bp.nn.LSTM(INPUT, HIDDEN), bp.nn.Linear(HIDDEN, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = bp.optim.SGD(params, lr=LR)
    data = [(bp.tensor(x), bp.tensor(y)) for x, y in zip(xs, ys)]
    it = [0]

    def step():
        x, y = data[it[0] % POOL]
        it[0] += 1
        opt.zero_grad()
        out, _ = lstm(x)
        loss = bp.nn.functional.mse_loss(head(out[-1]), y)
        loss.backward()
        opt.step()
        return loss

    return (lstm, head), step


def theirs(torch, state, head_state, xs, ys, cell_loop: bool):
    head = torch.nn.Linear(HIDDEN, 1)
    head.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in head_state.items()})
    if cell_loop:
        lstm = torch.nn.LSTMCell(INPUT, HIDDEN)
        lstm.load_state_dict({k[:-3]: torch.from_numpy(v.data.copy()) for k, v in state.items()})
    else:
        lstm = torch.nn.LSTM(INPUT, HIDDEN)
        lstm.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in state.items()})
    opt = torch.optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=LR)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, ys)]
    it = [0]

    def step():
        x, y = data[it[0] % POOL]
        it[0] += 1
        opt.zero_grad()
        if cell_loop:
            h = c = torch.zeros(BATCH, HIDDEN)
            for t in range(SEQ):
                h, c = lstm(x[t], (h, c))
            last = h
        else:
            last = lstm(x)[0][-1]
        loss = torch.nn.functional.mse_loss(head(last), y)
        loss.backward()
        opt.step()
        return loss

    return lstm, step


def main(argv=None) -> None:
    args, rounds, steps = _harness.parse_args(__doc__, 10, argv)
    xs, ys = make_data()
    (lstm, head), our_step = ours(xs, ys)
    try:
        import torch
    except ImportError:
        torch = None
    impls = {"backprop": our_step}
    if torch is not None:
        torch.set_num_threads(THREADS)
        state, head_state = lstm.state_dict(), head.state_dict()
        tlstm, their_step = theirs(torch, state, head_state, xs, ys, cell_loop=False)
        _, cell_step = theirs(torch, state, head_state, xs, ys, cell_loop=True)
        a, b, c = (float(s().item()) for s in (our_step, their_step, cell_step))
        w = lstm.state_dict()["weight_hh_l0"].data
        tw = tlstm.state_dict()["weight_hh_l0"].detach().numpy()
        assert abs(a - b) < 1e-4 and abs(a - c) < 1e-4 and np.allclose(w, tw, atol=1e-5), (a, b)
        print(f"check: one step agrees (loss {a:.6f} vs {b:.6f} / {c:.6f}, updated W_hh close)")
        impls["torch"] = their_step
        impls["torch-cell"] = cell_step
    times = _harness.interleaved(impls, rounds, steps, warmup=2)
    print(f"LSTM training step: input {INPUT}, hidden {HIDDEN}, sequence {SEQ}, batch {BATCH}, "
          f"full BPTT, float32; torch threads {THREADS}, NumPy BLAS threads "
          f"{os.environ['OPENBLAS_NUM_THREADS']}; median of {rounds} interleaved rounds x "
          f"{steps} steps")
    med = _harness.print_medians(times, BATCH, "sequences")
    if "torch" in med:
        ratio = med["torch"] / med["backprop"]
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"  throughput ours/torch nn.LSTM = {ratio:.2f}x ({verdict} the {TARGET}x target); "
              f"ours/torch LSTMCell loop = {med['torch-cell'] / med['backprop']:.2f}x")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [our_step() for _ in range(10)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
