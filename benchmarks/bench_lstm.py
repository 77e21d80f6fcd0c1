"""LSTM training-step benchmark: backprop's nn.LSTM beside PyTorch's (issue 5).

Run by hand (never imported by the tests)::

    python benchmarks/bench_lstm.py               # 7 interleaved rounds of 10 steps
    python benchmarks/bench_lstm.py --quick       # smoke run
    python benchmarks/bench_lstm.py --profile     # also a cProfile of our step
    python benchmarks/bench_lstm.py --blas-threads 1   # NumPy's BLAS on 1 thread (torch keeps 2)
    python benchmarks/bench_lstm.py --best-of 30  # also the fastest of 30 single steps each
    python benchmarks/bench_lstm.py --gru         # the same step with a GRU (nn.GRU beside torch's)

Workload: a one-layer LSTM (input 32, hidden 128) over sequences of 64 steps, batch 32, float32,
full BPTT; the loss is the mean square of a linear read-out (128 -> 1) of the last output
against a target; plain SGD, lr 0.01. A step is zero_grad, forward, loss, backward, step. Both
libraries start from the same weights (ours loaded into torch through ``load_state_dict``) and
cycle through the same 4 batches; one step of each is compared first so the benchmark cannot
time something wrong. References: torch's fused ``nn.LSTM`` and torch's own Python loop over
``nn.LSTMCell`` (same weights).

Ours runs twice, interleaved: ``backprop`` with the numba fast path (``backprop.backends.fast``,
when numba is installed: the layer's time loop as one kernel call) and ``backprop-numpy`` with it
off (the NumPy time loop); both from the same weights, checked against each other and torch.
``--gru``: the same workload and step with ``nn.GRU`` (3 gates) against torch's ``nn.GRU``,
ours with and without the fast path (no floor).

NumPy floor: the same step in plain NumPy with no autodiff engine (``floor``): one GEMM for the
input projection of all steps, per step one ``h @ W_hhᵀ`` GEMM and in-place gate maths on
preallocated buffers, a hand-derived BPTT loop (per step one ``dgates @ W_hh`` GEMM), and dW_hh,
dW_ih and the bias gradient each as one GEMM / sum over all steps after the loop. Its loss, six
gradients and six updated weights are checked against backprop's nn.LSTM (np.allclose, rtol 1e-4,
atol 1e-5 x the array's max) before timing. Two more variants split its time: the same GEMM calls
alone (``floor-gemm-only``) and everything but the GEMMs (``floor-elementwise-only``).

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
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import backprop as bp  # noqa: E402
from backprop.backends import fast  # noqa: E402

INPUT, HIDDEN, SEQ, BATCH, POOL, LR = 32, 128, 64, 32, 4, 0.01
THREADS, TARGET = 2, 0.8


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32) for _ in range(POOL)]
    ys = [rng.standard_normal((BATCH, 1)).astype(np.float32) for _ in range(POOL)]
    return xs, ys


def ours(xs, ys, fast_path: bool | None = None, cls=None):
    """Our model and its step; ``fast_path``: run the step with the numba path on / off (None:
    whatever the process default is). ``cls``: the recurrent layer (default nn.LSTM)."""
    bp.manual_seed(0)
    lstm, head = (cls or bp.nn.LSTM)(INPUT, HIDDEN), bp.nn.Linear(HIDDEN, 1)
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

    if fast_path is None:
        return (lstm, head), step

    def switched():
        with fast.flags(enabled=fast_path):
            return step()

    return (lstm, head), switched


def theirs(torch, state, head_state, xs, ys, cell_loop: bool, gru: bool = False):
    head = torch.nn.Linear(HIDDEN, 1)
    head.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in head_state.items()})
    if gru:
        lstm = torch.nn.GRU(INPUT, HIDDEN)
        lstm.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in state.items()})
    elif cell_loop:
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


# --- NumPy floor: the same step with no autodiff engine ---


def floor(state, head_state, xs, ys, mode: str = "full"):
    """The same training step in plain NumPy: no graph, preallocated buffers, in-place gate maths.

    Forward: the input projection of all steps as one GEMM; per step one ``h @ W_hhᵀ`` GEMM, one
    tanh pass over all four gates (the σ gates' pre-activations halved through pre-scaled weight
    copies, σ(x) = (1 + tanh(x/2)) / 2), and the cell update, storing the gates, c and tanh(c).
    Backward: hand-derived BPTT, per step one ``dgates @ W_hh`` GEMM plus in-place elementwise;
    dW_hh, dW_ih and the bias gradient each as ONE GEMM / sum over all steps after the loop.
    Gate rows are kept in the order (i, f, o, g) so the σ gates are one contiguous block.

    ``mode``: "full" (the floor), "gemm" (the same GEMM calls on the same buffers, nothing else)
    or "elementwise" (everything but the GEMMs). The last two exist only for the time breakdown;
    they run one full step first so their buffers hold realistic values.

    Returns (step, grads, params): ``step()`` returns the loss; ``grads()`` / ``params()`` give
    the last step's gradients / the current weights in nn.LSTM's layout (weight_ih_l0,
    weight_hh_l0, bias_ih_l0, bias_hh_l0, head weight, head bias).
    """
    T, N, H = SEQ, BATCH, HIDDEN
    perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]  # torch's (i, f, g, o) -> (i, f, o, g)
    inv = np.argsort(perm)
    f32 = np.float32
    w_ih = np.ascontiguousarray(state["weight_ih_l0"][perm], dtype=f32)  # (4H, I)
    w_hh = np.ascontiguousarray(state["weight_hh_l0"][perm], dtype=f32)  # (4H, H)
    b_ih = np.array(state["bias_ih_l0"][perm], dtype=f32)
    b_hh = np.array(state["bias_hh_l0"][perm], dtype=f32)
    w_o = np.array(head_state["weight"], dtype=f32)  # (1, H)
    b_o = np.array(head_state["bias"], dtype=f32)  # (1,)
    params = [w_ih, w_hh, b_ih, b_hh, w_o, b_o]
    scale = np.r_[np.full(3 * H, 0.5), np.ones(H)].astype(f32)  # σ gates: tanh(x/2)
    # per-step buffers
    w_ih_s, w_hh_s = np.empty_like(w_ih), np.empty_like(w_hh)
    bias_s = np.empty(4 * H, f32)
    gates = np.empty((T, N, 4 * H), f32)  # pre-activations, then activations (i, f, o, g)
    hs = np.zeros((T + 1, N, H), f32)  # hs[0] = h_0 = 0
    cs = np.zeros((T + 1, N, H), f32)  # cs[0] = c_0 = 0
    tcs = np.empty((T, N, H), f32)  # tanh(c_t)
    dgates = np.empty((T, N, 4 * H), f32)
    tmp4, d4 = np.empty((N, 4 * H), f32), np.empty((N, 4 * H), f32)
    tmp, dh, dc = np.empty((N, H), f32), np.empty((N, H), f32), np.empty((N, H), f32)
    g_w_ih, g_w_hh = np.empty_like(w_ih), np.empty_like(w_hh)
    g_b = np.empty(4 * H, f32)
    g_w_o, z, dz = np.empty_like(w_o), np.empty((N, 1), f32), np.empty((N, 1), f32)
    grads = [g_w_ih, g_w_hh, g_b, g_b, g_w_o, None]
    data = [(np.ascontiguousarray(x).reshape(T * N, INPUT), y) for x, y in zip(xs, ys)]
    gates2, dgates2 = gates.reshape(T * N, 4 * H), dgates.reshape(T * N, 4 * H)
    h_prev2 = hs[1:T].reshape((T - 1) * N, H)  # h_1 .. h_{T-1}: the inputs of steps 1 .. T-1
    dgates_rest = dgates[1:].reshape((T - 1) * N, 4 * H)  # step 0 multiplies h_0 = 0
    it = [0]
    run = {"gemm": True, "ew": True}
    mm = np.matmul

    def step():
        x2, y = data[it[0] % POOL]
        it[0] += 1
        gm, ew = run["gemm"], run["ew"]
        # --- forward ---
        if ew:
            np.multiply(w_ih, scale[:, None], out=w_ih_s)
            np.multiply(w_hh, scale[:, None], out=w_hh_s)
            np.add(b_ih, b_hh, out=bias_s)
            np.multiply(bias_s, scale, out=bias_s)
        if gm:
            mm(x2, w_ih_s.T, out=gates2)
        if ew:
            np.add(gates2, bias_s, out=gates2)
        for t in range(T):
            a = gates[t]
            if t and gm:  # h_0 = 0: step 0 has no recurrent product
                mm(hs[t], w_hh_s.T, out=tmp4)
            if not ew:
                continue
            if t:
                a += tmp4
            np.tanh(a, out=a)
            sg = a[:, :3 * H]
            sg += 1
            sg *= 0.5
            c = cs[t + 1]
            np.multiply(a[:, H:2 * H], cs[t], out=c)
            np.multiply(a[:, :H], a[:, 3 * H:], out=tmp)
            c += tmp
            np.tanh(c, out=tcs[t])
            np.multiply(a[:, 2 * H:3 * H], tcs[t], out=hs[t + 1])
        # loss: mean((h_T w_oᵀ + b_o - y)²)
        if gm:
            mm(hs[T], w_o.T, out=z)
        loss = 0.0
        if ew:
            np.add(z, b_o, out=z)
            np.subtract(z, y, out=dz)
            loss = float(np.dot(dz[:, 0], dz[:, 0])) / N
            np.multiply(dz, 2 / N, out=dz)
        # --- backward ---
        if gm:
            mm(dz.T, hs[T], out=g_w_o)
            mm(dz, w_o, out=dh)
        if ew:
            grads[5] = dz.sum(0)
            dc.fill(0)
        for t in range(T - 1, -1, -1):
            if ew:
                a, d, tc = gates[t], dgates[t], tcs[t]
                i, f, o, g = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                # dc += dh·o·(1 - tanh²c)
                np.multiply(tc, tc, out=tmp)
                np.subtract(1, tmp, out=tmp)
                np.multiply(tmp, o, out=tmp)
                np.multiply(tmp, dh, out=tmp)
                np.add(dc, tmp, out=dc)
                # upstream of each gate: (dc·g, dc·c_prev, dh·tanh c, dc·i)
                np.multiply(dc, g, out=d[:, :H])
                np.multiply(dc, cs[t], out=d[:, H:2 * H])
                np.multiply(dh, tc, out=d[:, 2 * H:3 * H])
                np.multiply(dc, i, out=d[:, 3 * H:])
                # local derivative: s - s² for the σ gates, 1 - g² for g
                np.multiply(a, a, out=d4)
                np.subtract(a[:, :3 * H], d4[:, :3 * H], out=d4[:, :3 * H])
                np.subtract(1, d4[:, 3 * H:], out=d4[:, 3 * H:])
                d *= d4
                np.multiply(dc, f, out=dc)
            if t and gm:  # h_0's gradient is not needed
                mm(dgates[t], w_hh, out=dh)
        # the weight gradients over all steps at once
        if gm:
            mm(dgates_rest.T, h_prev2, out=g_w_hh)
            mm(dgates2.T, x2, out=g_w_ih)
        if ew:
            np.sum(dgates2, axis=0, out=g_b)
            # --- SGD ---
            for p, gr in zip(params, grads):
                p -= LR * gr  # b_ih and b_hh share one gradient array
        return loss

    if mode != "full":
        step()  # realistic values in every buffer
        run["gemm"], run["ew"] = mode == "gemm", mode == "elementwise"

    def grads_torch_layout():
        return [g_w_ih[inv], g_w_hh[inv], g_b[inv], g_b[inv], g_w_o, grads[5]]

    def params_torch_layout():
        return [w_ih[inv], w_hh[inv], b_ih[inv], b_hh[inv], w_o, b_o]

    return step, grads_torch_layout, params_torch_layout


def check_floor(lstm, head, floor_loss, floor_grads, floor_params, our_loss) -> None:
    """After one step of ours and of the floor from the same weights and batch: the loss, every
    gradient and every updated weight must agree (float32 tolerance, relative to each array's
    scale), or the benchmark stops."""
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    ours_p = [getattr(lstm, k) for k in names] + [head.weight, head.bias]
    assert abs(floor_loss - our_loss) <= 1e-5 * max(1.0, abs(our_loss)), (floor_loss, our_loss)
    worst = 0.0
    for what, got, want in (("gradient", floor_grads(), [p.grad.data for p in ours_p]),
                            ("updated weight", floor_params(), [p.data for p in ours_p])):
        for name, a, b in zip(names + ("head.weight", "head.bias"), got, want):
            tol = 1e-5 * float(np.max(np.abs(b)))
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=tol):
                raise SystemExit(f"NumPy floor disagrees with backprop: {what} of {name} "
                                 f"(max |diff| {np.max(np.abs(a - b))}, scale {tol / 1e-5:.3g})")
            worst = max(worst, float(np.max(np.abs(a - b))) / max(tol / 1e-5, 1e-30))
    print(f"check: NumPy floor agrees with backprop's nn.LSTM (loss {floor_loss:.6f}; 6 gradients "
          f"and 6 updated weights np.allclose rtol 1e-4, atol 1e-5 x max|ref|; worst |diff| / "
          f"max|ref| = {worst:.1e})")


def best_single_steps(impls: dict, n: int) -> dict:
    """The fastest of ``n`` single steps of each implementation (interleaved, a short pause
    before each): on a shared machine, the step least disturbed by other processes."""
    best = {k: float("inf") for k in impls}
    for r in range(n):
        for k in (list(impls) if r % 2 == 0 else list(impls)[::-1]):
            time.sleep(0.05)
            t0 = time.perf_counter()
            impls[k]()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _paired(times: dict, slow: str, quick: str) -> float:
    """The median over rounds of time[slow] / time[quick]: both ran in the same round, so a
    burst of load on the machine hits both (noise the medians of the columns keep)."""
    return float(np.median([a / b for a, b in zip(times[slow], times[quick])]))


def gru_main(rounds: int, steps: int, best_of: int = 0) -> None:
    """The same training step with nn.GRU: ours with the fast path on and off, torch's nn.GRU."""
    xs, ys = make_data()
    (gru, head), fast_step = ours(xs, ys, fast_path=fast.is_available(), cls=bp.nn.GRU)
    impls = {"backprop": fast_step, "backprop-numpy": ours(xs, ys, False, bp.nn.GRU)[1]}
    losses = [float(impls[k]().item()) for k in impls]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(THREADS)
        # the weights before our first step: a fresh model from the same seed
        (gru0, head0), _ = ours(xs, ys, cls=bp.nn.GRU)
        _, impls["torch"] = theirs(torch, gru0.state_dict(), head0.state_dict(), xs, ys,
                                   cell_loop=False, gru=True)
        losses.append(float(impls["torch"]().item()))
    assert max(losses) - min(losses) < 1e-4, losses
    print(f"check: one step agrees (losses {', '.join(f'{v:.6f}' for v in losses)})")
    times = _harness.interleaved(impls, rounds, steps, warmup=2)
    print(f"GRU training step: input {INPUT}, hidden {HIDDEN}, sequence {SEQ}, batch {BATCH}, "
          f"full BPTT, float32; torch threads {THREADS}; median of {rounds} interleaved rounds "
          f"x {steps} steps; load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    med = _harness.print_medians(times, BATCH, "sequences")
    print(f"  fast path: throughput fast/NumPy path = "
          f"{_paired(times, 'backprop-numpy', 'backprop'):.2f}x (median of per-round ratios)")
    if "torch" in med:
        print(f"  throughput ours/torch nn.GRU = {med['torch'] / med['backprop']:.2f}x (paired "
              f"{1 / _paired(times, 'backprop', 'torch'):.2f}x); NumPy path/torch = "
              f"{med['torch'] / med['backprop-numpy']:.2f}x")
    if best_of:
        best = best_single_steps(impls, best_of)
        print(f"  fastest of {best_of} single steps each (interleaved): "
              + ", ".join(f"{k} {t * 1e3:.2f} ms" for k, t in best.items()))
        if "torch" in best:
            print(f"  on these: ours/torch = {best['torch'] / best['backprop']:.2f}x, NumPy "
                  f"path/torch = {best['torch'] / best['backprop-numpy']:.2f}x")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    best_of = 0
    if "--best-of" in argv:  # not a harness flag: take it out before the harness parses
        k = argv.index("--best-of")
        best_of, argv = int(argv[k + 1]), argv[:k] + argv[k + 2:]
    gru = "--gru" in argv
    argv = [a for a in argv if a != "--gru"]
    args, rounds, steps = _harness.parse_args(__doc__, 10, argv)
    if gru:
        return gru_main(rounds, steps, best_of)
    xs, ys = make_data()
    have_fast = fast.is_available()
    (lstm, head), our_step = ours(xs, ys, fast_path=have_fast)
    state, head_state = lstm.state_dict(), head.state_dict()
    init = {k: v.data.copy() for k, v in state.items()}  # before any step changes them
    head_init = {k: v.data.copy() for k, v in head_state.items()}
    try:
        import torch
    except ImportError:
        torch = None
    floor_check, floor_grads, floor_params = floor(init, head_init, xs, ys)
    impls = {"backprop": our_step}
    if have_fast:
        impls["backprop-numpy"] = ours(xs, ys, fast_path=False)[1]
    if torch is not None:
        torch.set_num_threads(THREADS)
        tlstm, their_step = theirs(torch, state, head_state, xs, ys, cell_loop=False)
        _, cell_step = theirs(torch, state, head_state, xs, ys, cell_loop=True)
        a, b, c = (float(s().item()) for s in (our_step, their_step, cell_step))
        w = lstm.state_dict()["weight_hh_l0"].data
        tw = tlstm.state_dict()["weight_hh_l0"].detach().numpy()
        assert abs(a - b) < 1e-4 and abs(a - c) < 1e-4 and np.allclose(w, tw, atol=1e-5), (a, b)
        print(f"check: one step agrees (loss {a:.6f} vs {b:.6f} / {c:.6f}, updated W_hh close)")
        impls["torch"] = their_step
        impls["torch-cell"] = cell_step
    else:
        a = float(our_step().item())
    if have_fast:
        a_np = float(impls["backprop-numpy"]().item())
        assert abs(a - a_np) < 1e-5, (a, a_np)
        print(f"check: the fast path and the NumPy path agree (loss {a:.6f} vs {a_np:.6f})")
    check_floor(lstm, head, floor_check(), floor_grads, floor_params, a)
    impls["numpy-floor"] = floor(init, head_init, xs, ys)[0]
    impls["floor-gemm-only"] = floor(init, head_init, xs, ys, mode="gemm")[0]
    impls["floor-elementwise-only"] = floor(init, head_init, xs, ys, mode="elementwise")[0]
    times = _harness.interleaved(impls, rounds, steps, warmup=2)
    print(f"LSTM training step: input {INPUT}, hidden {HIDDEN}, sequence {SEQ}, batch {BATCH}, "
          f"full BPTT, float32; torch threads {THREADS}, NumPy BLAS threads "
          f"{os.environ['OPENBLAS_NUM_THREADS']}; median of {rounds} interleaved rounds x "
          f"{steps} steps; load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    med = _harness.print_medians(times, BATCH, "sequences")
    if have_fast:
        print(f"  fast path: throughput fast/NumPy path = "
              f"{_paired(times, 'backprop-numpy', 'backprop'):.2f}x (median of per-round ratios)")
    fl, gemm, ew = med["numpy-floor"], med["floor-gemm-only"], med["floor-elementwise-only"]
    print(f"  NumPy floor breakdown: GEMM calls alone {gemm * 1e3:.2f} ms ({gemm / fl:.0%} of the "
          f"floor), elementwise alone {ew * 1e3:.2f} ms ({ew / fl:.0%}); floor - GEMMs = "
          f"{(fl - gemm) * 1e3:.2f} ms")
    print(f"  engine overhead (ours - floor): {(med['backprop'] - fl) * 1e3:.2f} ms/step; "
          f"throughput ours/floor = {fl / med['backprop']:.2f}x")
    if "torch" in med:
        ratio = med["torch"] / med["backprop"]
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"  throughput ours/torch nn.LSTM = {ratio:.2f}x ({verdict} the {TARGET}x target; "
              f"paired {1 / _paired(times, 'backprop', 'torch'):.2f}x); ours/torch LSTMCell loop "
              f"= {med['torch-cell'] / med['backprop']:.2f}x")
        if have_fast:
            print(f"  throughput NumPy path/torch nn.LSTM = "
                  f"{med['torch'] / med['backprop-numpy']:.2f}x")
        print(f"  throughput floor/torch nn.LSTM = {med['torch'] / fl:.2f}x; GEMMs alone/torch "
              f"= {med['torch'] / gemm:.2f}x (GEMMs alone take {gemm / med['torch']:.2f}x torch's "
              f"whole step)")
    if best_of:
        best = best_single_steps(impls, best_of)
        print(f"  fastest of {best_of} single steps each (interleaved): "
              + ", ".join(f"{k} {t * 1e3:.2f} ms" for k, t in best.items()))
        if "torch" in best:
            print(f"  on these: floor/torch nn.LSTM = {best['torch'] / best['numpy-floor']:.2f}x, "
                  f"ours/torch = {best['torch'] / best['backprop']:.2f}x, GEMMs alone take "
                  f"{best['floor-gemm-only'] / best['torch']:.2f}x torch's step")
            if have_fast:
                print(f"  on these: NumPy path/torch = "
                      f"{best['torch'] / best['backprop-numpy']:.2f}x")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [our_step() for _ in range(10)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
