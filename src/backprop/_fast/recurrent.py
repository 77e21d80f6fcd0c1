"""numba kernels of the recurrent layers (``ops.recurrent``): each runs a whole layer's time
loop, forward or first-order backward, in one call.

What they save over the NumPy loops: per step, NumPy's path pays the Python interpreter and
about fifteen ufunc calls (each a fresh sweep over the gate arrays); here each step is one
``h @ W_hhᵀ`` (``_gemm.mm``: NumPy's own BLAS called through a pointer, or numba's ``np.dot``,
which calls SciPy's) and a few fused, vectorised passes over each batch row's gates, with no
Python in between.

Two threads: the rows of a batch never mix in a recurrent layer, so from ``PAIR_ROWS`` rows a
half and ``PAIR_MACS`` multiply-adds a layer, each kernel runs its whole time loop over one half
of the batch on the calling thread and over the other half on ``backprop._pair``'s helper
(``_rows``): one hand-over per layer and direction, no synchronisation between steps, the same
bits as one thread. (numba's OpenMP layer with two blocks took 4x as long as one serial loop on
a busy machine; the pair's helper spins at most briefly.) The per-step products run on one
BLAS thread each (both BLAS libraries get the thread count ``backprop._blas`` gives the same
product: one below ``LARGE_MACS`` multiply-adds). Measured on the benchmark LSTM (32 rows,
hidden 128, 64 steps), the compiled training step took 0.75x the time of the serial kernels,
with the weight-gradient products cut too (see ``_blas``; with the BLAS's own two threads
spinning beside the helper it took 1.26x), and 0.66x again with the per-step products through
NumPy's BLAS (``_gemm``: 28 against 41-45 µs for 16 x 128 x 512).

tanh and σ are ``_gates.py``'s, written so LLVM vectorises them.

The buffers and their layout (step order, time order) are exactly the NumPy path's, so either
path's backward can follow either path's forward; each formula keeps the NumPy path's order of
operations. Constants come from ``_consts(dtype)``: a float literal would make float32
arithmetic float64.

Needs SciPy (numba's ``np.dot``, compiled into ``_gemm.mm`` as its fall-back, binds SciPy's
BLAS); without it ``HAS_BLAS`` is False and the ops keep their NumPy loops.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from backprop import _blas, _pair
from backprop._fast import _gemm
from backprop._fast._gates import _consts, _jit, _load, _sigmoid, _tanh
from backprop._fast._gemm import mm

try:  # numba's np.dot is compiled against SciPy's BLAS (scipy.linalg.cython_blas)
    import scipy.linalg.cython_blas  # noqa: F401

    HAS_BLAS = True
except ImportError:
    HAS_BLAS = False

# --- BLAS threads, and the two halves of a batch ---

_scipy_blas = None  # threadpoolctl's controllers of the BLAS numba calls (SciPy's), once found


def _find_scipy_blas() -> list:
    try:
        from threadpoolctl import ThreadpoolController

        blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    except Exception:  # threadpoolctl missing or unable to inspect: leave the BLAS alone
        return []
    # NumPy's own BLAS (under numpy.libs or numpy/) is _blas.py's business, not ours
    return [c for c in blas if "numpy" not in os.path.dirname(c.filepath)]


@contextlib.contextmanager
def _blas_threads(macs: int):
    """NumPy's BLAS (``_gemm``'s products) and SciPy's (``np.dot``'s) on the thread count
    ``backprop._blas`` gives a product of ``macs`` multiply-adds (a size rule), for one kernel
    call; SciPy's own setting is restored after."""
    global _scipy_blas
    _blas.gemm_threads(macs)  # NumPy's BLAS (``_gemm``), through the same policy
    want = _blas.blas_threads_for(macs)
    if want is None:  # the BLAS policy is "leave it alone"
        yield
        return
    if _scipy_blas is None:
        _scipy_blas = _find_scipy_blas()
    before = [c.num_threads for c in _scipy_blas]
    for c, n in zip(_scipy_blas, before):
        if n != want:
            c.set_num_threads(want)
    try:
        yield
    finally:
        for c, n in zip(_scipy_blas, before):
            if n != want:
                c.set_num_threads(n)


PAIR_ROWS = 16
"""The fewest batch rows each half of a layer kernel's batch needs for two halves: a product
of fewer rows costs more per row (16 rows x 128 x 512: 40 µs on one thread; 32 rows: 63)."""
PAIR_MACS = 1 << 22
"""The fewest multiply-adds of a layer's recurrent products over all its steps (steps x batch x
the W_hh entries) for two halves: below, the helper's wake-up would outweigh its share."""


def _rows(steps: int, batch: int, weights: int, run) -> None:
    """run(b0, b1) over the batch rows: the rows of a recurrent layer never meet, so the whole
    time loop runs as two halves of the batch, the first here and the second on the helper
    thread (``backprop._pair``), when the layer is big enough (``PAIR_ROWS``, ``PAIR_MACS``)
    and each step's product runs on one BLAS thread; else all rows here. Each row's
    arithmetic, and each row of a product, is the same whichever half computes it: the same
    bits either way (tested)."""
    if (batch >= 2 * PAIR_ROWS and steps * batch * weights >= PAIR_MACS
            and _blas.pairs_of_products_allowed(batch * weights)):
        h = (batch // 2 + 7) // 8 * 8
        _pair.run_pair(lambda: run(0, h), lambda: run(h, batch))
    else:
        run(0, batch)


def _layer(steps: int, batch: int, w_hh, dtype, kernel) -> None:
    """One layer kernel call: the BLAS threads for its per-step product, the address of NumPy's
    gemm, and ``kernel(addr, b0, b1)`` over the batch rows (``_rows``)."""
    with _blas_threads(batch * w_hh.size):
        addr = _gemm.address(dtype)
        _rows(steps, batch, w_hh.size, lambda b0, b1: kernel(addr, b0, b1))


def _transposed(w):
    """W_hhᵀ as a C-contiguous copy: the forward's product h W_hhᵀ through NumPy's BLAS took
    28 µs with it and 50-61 µs with the transposed view (16 x 128 x 512, float32)."""
    return np.ascontiguousarray(w.T)


# --- LSTM ---
# The loops run over one batch row at a time, on 1-D views, each loop touching few arrays:
# numba cannot tell LLVM that arrays do not overlap, so LLVM vectorises a loop only behind
# runtime overlap checks, and gives up past about eight of them (one loop over all the
# gates and states stayed scalar: 3x slower). And every loop counts from 0 over a view: a
# loop over ar[2n:3n] as range(2n, 3n) stayed scalar (LLVM cannot prove the index is not
# negative, so numba's wraparound of negative indices stays in), and the forward's gate
# activations took 28-36 µs for 16 rows against 13 µs with zero-based loops (measured).


@_jit
def _lstm_forward(xg, h0, c0, w_t, reverse, acts, cs, tcs, hs, consts, addr, b0, b1):
    k = _load(consts)
    steps, _, g4 = xg.shape
    n = g4 // 4
    cs[0, b0:b1] = c0[b0:b1]
    hp = h0[b0:b1]
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        a = acts[s, b0:b1]
        mm(addr, hp, w_t, a)
        x, cp, cn, tc, h = xg[t, b0:b1], cs[s, b0:b1], cs[s + 1, b0:b1], tcs[s, b0:b1], hs[t, b0:b1]
        for b in range(b1 - b0):
            ar, xr = a[b], x[b]
            for j in range(2 * n):
                ar[j] = _sigmoid(ar[j] + xr[j], k)
            ai, af, ag, ao = ar[:n], ar[n : 2 * n], ar[2 * n : 3 * n], ar[3 * n :]
            xg_, xo = xr[2 * n : 3 * n], xr[3 * n :]  # zero-based loops: see above
            for j in range(n):
                ag[j] = _tanh(ag[j] + xg_[j])
            for j in range(n):
                ao[j] = _sigmoid(ao[j] + xo[j], k)
            cpr, cnr, tcr, hr = cp[b], cn[b], tc[b], h[b]
            for j in range(n):
                cnr[j] = af[j] * cpr[j] + ai[j] * ag[j]
            for j in range(n):
                tcr[j] = _tanh(cnr[j])
            for j in range(n):
                hr[j] = ao[j] * tcr[j]
        hp = h


def lstm_forward(xg, h0, c0, w_hh, reverse, acts, cs, tcs, hs) -> None:
    """LSTMLayer's forward into the NumPy path's buffers: acts (T, N, 4H) and tcs (T, N, H) in
    step order, cs (T+1, N, H) the cell state entering each step (cs[T] the last), hs (T, N, H)
    by time. xg (T, N, 4H), h0, c0 (N, H), w_hh (4H, H); all C-contiguous, one float dtype."""
    k, w_t = _consts(xg.dtype), _transposed(w_hh)
    _layer(xg.shape[0], h0.shape[0], w_hh, xg.dtype, lambda addr, b0, b1: _lstm_forward(
        xg, h0, c0, w_t, reverse, acts, cs, tcs, hs, k, addr, b0, b1))


@_jit
def _lstm_backward(acts, cs, tcs, w_hh, ghs, has_ghs, reverse, need_h0, dxg, dh, dc, consts,
                   addr, b0, b1):
    k = _load(consts)
    one = k[2]
    steps, _, g4 = acts.shape
    n = g4 // 4
    dhs, dcs = dh[b0:b1], dc[b0:b1]
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if reverse else s
        a, cp, tc, d = acts[s, b0:b1], cs[s, b0:b1], tcs[s, b0:b1], dxg[t, b0:b1]
        for b in range(b1 - b0):
            ar, dr = a[b], d[b]
            ai, af, ag, ao = ar[:n], ar[n : 2 * n], ar[2 * n : 3 * n], ar[3 * n :]
            di, df, dg, do = dr[:n], dr[n : 2 * n], dr[2 * n : 3 * n], dr[3 * n :]
            dhr, dcr, cpr, tcr = dhs[b], dcs[b], cp[b], tc[b]
            if has_ghs:
                ghr = ghs[t, b0 + b]
                for j in range(n):
                    dhr[j] += ghr[j]
            for j in range(n):  # dc += ∂L/∂hₜ·o·(1 - tanh²cₜ)
                dcr[j] += (one - tcr[j] * tcr[j]) * ao[j] * dhr[j]
            for j in range(n):
                i, g = ai[j], ag[j]
                di[j] = (i - i * i) * g * dcr[j]
                dg[j] = (one - g * g) * i * dcr[j]
            for j in range(n):
                f = af[j]
                df[j] = (f - f * f) * cpr[j] * dcr[j]
                dcr[j] *= f
            for j in range(n):
                o = ao[j]
                do[j] = (o - o * o) * tcr[j] * dhr[j]
        if s > 0 or need_h0:
            mm(addr, d, w_hh, dhs)


def lstm_backward(acts, cs, tcs, w_hh, grad_hs, reverse, need_h0, dxg, dh, dc) -> None:
    """LSTMLayer's first-order BPTT from the forward's buffers: writes dxg (T, N, 4H, by time),
    and turns dh, dc (N, H; on entry ∂L/∂h_T, ∂L/∂c_T) into ∂L/∂h₀ (only if ``need_h0``) and
    ∂L/∂c₀. grad_hs (T, N, H) or None."""
    has = grad_hs is not None
    ghs = grad_hs if has else dh[None]
    k = _consts(acts.dtype)
    _layer(acts.shape[0], dh.shape[0], w_hh, acts.dtype, lambda addr, b0, b1: _lstm_backward(
        acts, cs, tcs, w_hh, ghs, has, reverse, need_h0, dxg, dh, dc, k, addr, b0, b1))


# LSTMCellStep's kernels: the layer kernels above keep the same loops inline, because calling
# these from them made the layer's forward 13% slower (measured; inlined or not)


@_jit
def _lstm_step_forward(a, x, cp, cn, tc, h, k):
    """One step's gate arithmetic, in place: a (N, 4H) holds h W_hhᵀ on entry and the gates
    [i f g o] on exit; writes c' = f·c + i·g into cn, tanh(c') into tc, h' = o·tanh(c') into h.
    x: xg of the step (N, 4H); cp: c (N, H)."""
    n = cp.shape[1]
    for b in range(a.shape[0]):
        ar, xr = a[b], x[b]
        for j in range(2 * n):
            ar[j] = _sigmoid(ar[j] + xr[j], k)
        ai, af, ag, ao = ar[:n], ar[n : 2 * n], ar[2 * n : 3 * n], ar[3 * n :]
        xg_, xo = xr[2 * n : 3 * n], xr[3 * n :]  # zero-based loops: see above
        for j in range(n):
            ag[j] = _tanh(ag[j] + xg_[j])
        for j in range(n):
            ao[j] = _sigmoid(ao[j] + xo[j], k)
        cpr, cnr, tcr, hr = cp[b], cn[b], tc[b], h[b]
        for j in range(n):
            cnr[j] = af[j] * cpr[j] + ai[j] * ag[j]
        for j in range(n):
            tcr[j] = _tanh(cnr[j])
        for j in range(n):
            hr[j] = ao[j] * tcr[j]


@_jit
def _lstm_step_backward(a, cp, tc, dh, dc, d, one):
    """One step's gate gradients: with dh = ∂L/∂h' and dc = ∂L/∂c' (N, H), writes ∂L/∂pre into
    d (N, 4H) and turns dc into ∂L/∂c = (dc + dh·o·(1 - tanh²c'))·f. a: the gates (N, 4H),
    cp: c, tc: tanh(c')."""
    n = cp.shape[1]
    for b in range(a.shape[0]):
        ar, dr = a[b], d[b]
        ai, af, ag, ao = ar[:n], ar[n : 2 * n], ar[2 * n : 3 * n], ar[3 * n :]
        di, df, dg, do = dr[:n], dr[n : 2 * n], dr[2 * n : 3 * n], dr[3 * n :]
        dhr, dcr, cpr, tcr = dh[b], dc[b], cp[b], tc[b]
        for j in range(n):  # dc += ∂L/∂h'·o·(1 - tanh²c')
            dcr[j] += (one - tcr[j] * tcr[j]) * ao[j] * dhr[j]
        for j in range(n):
            i, g = ai[j], ag[j]
            di[j] = (i - i * i) * g * dcr[j]
            dg[j] = (one - g * g) * i * dcr[j]
        for j in range(n):
            f = af[j]
            df[j] = (f - f * f) * cpr[j] * dcr[j]
            dcr[j] *= f
        for j in range(n):
            o = ao[j]
            do[j] = (o - o * o) * tcr[j] * dhr[j]


@_jit
def _lstm_cell_forward(a, xg, c, c_new, tc, h_new, consts):
    _lstm_step_forward(a, xg, c, c_new, tc, h_new, _load(consts))


def lstm_cell_forward(a, xg, c, c_new, tc, h_new) -> None:
    """LSTMCellStep's gate arithmetic: a (N, 4H) = h W_hhᵀ on entry, the gates on exit;
    writes c' (c_new), tanh(c') (tc) and h' (h_new), all (N, H). xg (N, 4H), c (N, H)."""
    _lstm_cell_forward(a, xg, c, c_new, tc, h_new, _consts(a.dtype))


@_jit
def _lstm_cell_backward(a, c, tc, grad_h, dc, d_pre, consts):
    _lstm_step_backward(a, c, tc, grad_h, dc, d_pre, _load(consts)[2])


def lstm_cell_backward(a, c, tc, grad_h, dc, d_pre) -> None:
    """LSTMCellStep's gate gradients: writes ∂L/∂pre into d_pre (N, 4H) and turns dc (N, H;
    ∂L/∂c' on entry) into ∂L/∂c. a: the gates, c: the cell state in, tc: tanh(c')."""
    _lstm_cell_backward(a, c, tc, grad_h, dc, d_pre, _consts(a.dtype))


# --- GRU ---


@_jit
def _gru_forward(xg, h0, w_t, b_hh, reverse, gates, hgn, h_prev, hs, consts, addr, b0, b1):
    k = _load(consts)
    steps, _, g3 = xg.shape
    n = g3 // 3
    hg = np.empty((b1 - b0, g3), xg.dtype)
    bn = b_hh[2 * n :]
    hp = h0[b0:b1]
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        mm(addr, hp, w_t, hg)
        a, x, hn = gates[s, b0:b1], xg[t, b0:b1], hgn[s, b0:b1]
        hq, h = h_prev[s, b0:b1], hs[t, b0:b1]
        for b in range(b1 - b0):
            ar, xr, hgr, hnr = a[b], x[b], hg[b], hn[b]
            for j in range(2 * n):  # r, z
                ar[j] = _sigmoid(xr[j] + (hgr[j] + b_hh[j]), k)
            hgr_n, an, xn = hgr[2 * n :], ar[2 * n :], xr[2 * n :]
            for j in range(n):
                hnr[j] = hgr_n[j] + bn[j]
            for j in range(n):  # n = tanh(xg_n + r·hg_n)
                an[j] = _tanh(ar[j] * hnr[j] + xn[j])
            az, hpr, hqr, hr = ar[n : 2 * n], hp[b], hq[b], h[b]
            for j in range(n):
                hqr[j] = hpr[j]
            for j in range(n):  # h = n + z·(hₜ₋₁ - n)
                hr[j] = (hqr[j] - an[j]) * az[j] + an[j]
        hp = h


def gru_forward(xg, h0, w_hh, b_hh, reverse, gates, hgn, h_prev, hs) -> None:
    """GRULayer's forward into the NumPy path's buffers: gates (T, N, 3H: r, z activated, n),
    hgn (T, N, H) and h_prev (T, N, H) in step order, hs (T, N, H) by time. xg (T, N, 3H),
    h0 (N, H), w_hh (3H, H), b_hh (3H,) or None (then zeros: x + 0 is x)."""
    if b_hh is None:
        b_hh = np.zeros(w_hh.shape[0], w_hh.dtype)
    k, w_t = _consts(xg.dtype), _transposed(w_hh)
    _layer(xg.shape[0], h0.shape[0], w_hh, xg.dtype, lambda addr, b0, b1: _gru_forward(
        xg, h0, w_t, b_hh, reverse, gates, hgn, h_prev, hs, k, addr, b0, b1))


@_jit
def _gru_backward(gates, hgn, h_prev, w_hh, ghs, has_ghs, reverse, dxg, dhg, dh, consts, addr,
                  b0, b1):
    k = _load(consts)
    one = k[2]
    steps, _, g3 = gates.shape
    n = g3 // 3
    back = np.empty((b1 - b0, n), gates.dtype)
    dhs = dh[b0:b1]
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if reverse else s
        a, hn, hq = gates[s, b0:b1], hgn[s, b0:b1], h_prev[s, b0:b1]
        d, e = dxg[t, b0:b1], dhg[s, b0:b1]
        for b in range(b1 - b0):
            ar, dr_, er = a[b], d[b], e[b]
            ar_, az, an = ar[:n], ar[n : 2 * n], ar[2 * n :]
            d_r, d_z, d_n = dr_[:n], dr_[n : 2 * n], dr_[2 * n :]
            dhr, hnr, hqr = dhs[b], hn[b], hq[b]
            if has_ghs:
                ghr = ghs[t, b0 + b]
                for j in range(n):
                    dhr[j] += ghr[j]
            for j in range(n):  # dn = ∂L/∂hₜ·(1 - z)·(1 - n²)
                d_n[j] = (one - az[j]) * dhr[j] * (one - an[j] * an[j])
            for j in range(n):  # dz = ∂L/∂hₜ·(hₜ₋₁ - n)·z(1 - z)
                z = az[j]
                d_z[j] = (hqr[j] - an[j]) * dhr[j] * ((one - z) * z)
            for j in range(n):  # dr = dn·hg_n·r(1 - r)
                r = ar_[j]
                d_r[j] = d_n[j] * hnr[j] * ((one - r) * r)
            for j in range(2 * n):
                er[j] = dr_[j]
            e_n = er[2 * n :]
            for j in range(n):
                e_n[j] = d_n[j] * ar_[j]
            for j in range(n):
                dhr[j] *= az[j]
        mm(addr, e, w_hh, back)  # δhₜ₋₁ = ∂L/∂hₜ·z + ∂L/∂hg W_hh
        for b in range(b1 - b0):
            dhr, br = dhs[b], back[b]
            for j in range(n):
                dhr[j] += br[j]


def gru_backward(gates, hgn, h_prev, w_hh, grad_hs, reverse, dxg, dhg, dh) -> None:
    """GRULayer's first-order BPTT: writes dxg (T, N, 3H, by time) and dhg (T, N, 3H, ∂L/∂hg
    in step order), and turns dh (N, H; on entry ∂L/∂h_T) into ∂L/∂h₀."""
    has = grad_hs is not None
    ghs = grad_hs if has else dh[None]
    k = _consts(gates.dtype)
    _layer(gates.shape[0], dh.shape[0], w_hh, gates.dtype, lambda addr, b0, b1: _gru_backward(
        gates, hgn, h_prev, w_hh, ghs, has, reverse, dxg, dhg, dh, k, addr, b0, b1))


# --- Elman RNN ---


@_jit
def _rnn_forward(xg, h0, w_t, relu, reverse, hs, consts, addr, b0, b1):
    k = _load(consts)
    zero = k[0]
    steps, _, n = xg.shape
    hp = h0[b0:b1]
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        h, x = hs[t, b0:b1], xg[t, b0:b1]
        mm(addr, hp, w_t, h)
        for b in range(b1 - b0):
            hr, xr = h[b], x[b]
            if relu:
                for j in range(n):
                    v = hr[j] + xr[j]
                    hr[j] = zero if v < zero else v  # as np.maximum(v, 0): NaN stays NaN
            else:
                for j in range(n):
                    hr[j] = _tanh(hr[j] + xr[j])
        hp = h


def rnn_forward(xg, h0, w_hh, relu, reverse, hs) -> None:
    """RNNLayer's forward into hs (T, N, H, by time): hₜ = act(xgₜ + hₜ₋₁ W_hhᵀ), act relu if
    ``relu`` else tanh. xg (T, N, H), h0 (N, H), w_hh (H, H)."""
    k, w_t = _consts(xg.dtype), _transposed(w_hh)
    _layer(xg.shape[0], h0.shape[0], w_hh, xg.dtype, lambda addr, b0, b1: _rnn_forward(
        xg, h0, w_t, relu, reverse, hs, k, addr, b0, b1))


@_jit
def _rnn_backward(hs, w_hh, ghs, has_ghs, relu, reverse, need_h0, dxg, dh, consts, addr, b0,
                  b1):
    k = _load(consts)
    zero, one = k[0], k[2]
    steps, _, n = hs.shape
    dhs = dh[b0:b1]
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if reverse else s
        h, d = hs[t, b0:b1], dxg[t, b0:b1]
        for b in range(b1 - b0):
            dhr, hr, dr = dhs[b], h[b], d[b]
            if has_ghs:
                ghr = ghs[t, b0 + b]
                for j in range(n):
                    dhr[j] += ghr[j]
            if relu:
                for j in range(n):  # as dh * (h > 0)
                    dr[j] = dhr[j] * (one if hr[j] > zero else zero)
            else:
                for j in range(n):
                    dr[j] = (one - hr[j] * hr[j]) * dhr[j]
        if s > 0 or need_h0:
            mm(addr, d, w_hh, dhs)


def rnn_backward(hs, w_hh, grad_hs, relu, reverse, need_h0, dxg, dh) -> None:
    """RNNLayer's first-order BPTT: writes dxg (T, N, H, by time) and turns dh (N, H; on entry
    ∂L/∂h_T) into ∂L/∂h₀ (only if ``need_h0``)."""
    has = grad_hs is not None
    ghs = grad_hs if has else dh[None]
    k = _consts(hs.dtype)
    _layer(hs.shape[0], dh.shape[0], w_hh, hs.dtype, lambda addr, b0, b1: _rnn_backward(
        hs, w_hh, ghs, has, relu, reverse, need_h0, dxg, dh, k, addr, b0, b1))
