"""The numba kernels of the recurrent layers (``_fast/recurrent.py``) against the NumPy loops of
``ops.recurrent``: the same forward outputs and gradients to float rounding, float32 kept
float32, gradcheck on the kernel path, and proof that the kernels actually ran."""

import numpy as np
import pytest

import backprop as bp
from backprop import _fast
from backprop.backends import fast
from backprop.ops.recurrent import GRULayer, LSTMCellStep, LSTMLayer, RNNLayer
from tests.fast.conftest import helper_forced, spy_calls

# float32: the kernels' tanh is within 6 ulp of NumPy's, and BPTT carries the difference
# through every step; float64: within 3 ulp. Absolute tolerances are relative to each
# array's largest entry (a gradient entry near 0 has no relative precision to speak of).
TOL = {np.float32: 2e-5, np.float64: 1e-12}
T, N, H = 5, 3, 4


@pytest.fixture
def kernel_calls(needs_numba, monkeypatch):
    """Counts the calls of each kernel entry point (numba on), so a test can tell the kernel
    path from a silent fall-back to NumPy."""
    fk = _fast.kernels("recurrent")
    if not fk.HAS_BLAS:
        pytest.skip("the recurrent kernels need SciPy (numba's np.dot binds its BLAS)")
    return spy_calls(monkeypatch, fk, ("lstm_forward", "lstm_backward", "gru_forward",
                                       "gru_backward", "rnn_forward", "rnn_backward",
                                       "lstm_cell_forward", "lstm_cell_backward"))


def _inputs(kind, dtype, bias, seed=0, scale=1.5):
    """The op's positional inputs as arrays: (xg, h0[, c0], w_hh[, b_hh])."""
    rng = np.random.default_rng(seed)
    gates = {"lstm": 4, "gru": 3}.get(kind, 1)
    arrays = [scale * rng.standard_normal((T, N, gates * H)), rng.standard_normal((N, H))]
    if kind == "lstm":
        arrays.append(rng.standard_normal((N, H)))
    arrays.append(0.5 * rng.standard_normal((gates * H, H)))
    if kind == "gru":
        arrays.append(rng.standard_normal(gates * H) if bias else None)
    return [None if a is None else a.astype(dtype) for a in arrays]


def _apply(kind, tensors, reverse, act):
    if kind == "lstm":
        return LSTMLayer.apply(*tensors, reverse=reverse)
    if kind == "gru":
        return GRULayer.apply(*tensors, reverse=reverse)
    return RNNLayer.apply(*tensors, nonlinearity=act, reverse=reverse)


def _run(kind, arrays, reverse, act, weights, on: bool):
    """Forward outputs and every input gradient, with the fast path ``on`` or off. The loss
    weighs each output by fixed random arrays (``weights``; None: that output is unused)."""
    with fast.flags(enabled=on):
        ts = [None if a is None else bp.tensor(a.copy(), requires_grad=True) for a in arrays]
        outs = _apply(kind, ts, reverse, act)
        loss = None
        for out, w in zip(outs, weights):
            if w is not None:
                term = (out * bp.tensor(w.astype(out.dtype))).sum()
                loss = term if loss is None else loss + term
        loss.backward()
    return [o.data for o in outs], [t.grad.data for t in ts if t is not None]


CASES = [(kind, bias, act) for kind in ("lstm", "gru") for bias in (True, False)
         for act in ("tanh",)] + [("rnn", True, "tanh"), ("rnn", True, "relu")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("used", ["all_outputs", "last_state_only"])
@pytest.mark.parametrize("kind,bias,act", CASES)
def test_kernels_match_the_numpy_path(kernel_calls, kind, bias, act, used, reverse, dtype):
    arrays = _inputs(kind, dtype, bias)
    rng = np.random.default_rng(1)
    n_out = 3 if kind == "lstm" else 2
    weights = [rng.standard_normal((T, N, H)) if used == "all_outputs" else None]
    weights += [rng.standard_normal((N, H)) for _ in range(n_out - 1)]
    want_out, want_grad = _run(kind, arrays, reverse, act, weights, on=False)
    assert not kernel_calls  # the NumPy run never touched a kernel
    got_out, got_grad = _run(kind, arrays, reverse, act, weights, on=True)
    assert kernel_calls == {f"{kind}_forward": 1, f"{kind}_backward": 1}
    tol = TOL[dtype]
    for got, want in zip(got_out + got_grad, want_out + want_grad):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
def test_nn_modules_take_the_kernels(kernel_calls, mode):
    """nn.LSTM/GRU/RNN, two layers, bidirectional, float32, with initial states: every layer
    and direction goes through the kernels and matches the NumPy path."""
    bp.manual_seed(0)
    cls = {"LSTM": bp.nn.LSTM, "GRU": bp.nn.GRU, "RNN_RELU": bp.nn.RNN}[mode]
    extra = {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}
    net = cls(3, H, num_layers=2, bidirectional=True, **extra)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, N, 3)).astype(np.float32)
    h0 = rng.standard_normal((4, N, H)).astype(np.float32)
    results = []
    for on in (False, True):
        with fast.flags(enabled=on):
            net.zero_grad()
            xt, ht = bp.tensor(x, requires_grad=True), bp.tensor(h0, requires_grad=True)
            state = (ht, bp.tensor(h0 * 0.5)) if mode == "LSTM" else ht
            out, _ = net(xt, state)
            (out * out).sum().backward()
            results.append([out.data, xt.grad.data, ht.grad.data]
                           + [p.grad.data for p in net.parameters()])
    assert kernel_calls[f"{mode.split('_')[0].lower()}_forward"] == 4  # 2 layers x 2 ways
    assert kernel_calls[f"{mode.split('_')[0].lower()}_backward"] == 4
    for got, want in zip(*results[::-1]):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("kind,bias,act", [("lstm", True, "tanh"), ("gru", True, "tanh"),
                                           ("gru", False, "tanh"), ("rnn", True, "tanh")])
def test_gradcheck_on_the_kernel_path(kernel_calls, kind, bias, act):
    arrays = _inputs(kind, np.float64, bias, scale=1.0)
    tensors = tuple(bp.tensor(a, requires_grad=True) for a in arrays if a is not None)
    if kind == "gru" and not bias:
        tensors = tensors + (None,)

    def fn(*ts):
        return _apply(kind, list(ts), True, act)

    assert bp.gradcheck(fn, tensors)
    assert kernel_calls.get(f"{kind}_backward", 0) > 0


def test_tanh_kernel_is_accurate_and_saturates(kernel_calls):
    """RNNLayer with W_hh = 0 and h₀ = 0 is tanh(xg), step by step, through the kernel's own
    tanh: within a few ulp of NumPy's over the whole range, exactly ±1 far out, and 0 at 0."""
    x = np.concatenate([np.linspace(-25, 25, 4001), np.geomspace(1e-10, 1, 301),
                        -np.geomspace(1e-10, 1, 301), [0.0, 1e30, -1e30, 8.0, -8.0]])
    for dtype, ulps in ((np.float32, 8), (np.float64, 4)):
        xg = x.astype(dtype).reshape(1, 1, -1)
        with fast.flags(enabled=True), bp.no_grad():
            hs, _ = RNNLayer.apply(bp.tensor(xg), bp.zeros(1, x.size, dtype=dtype),
                                   bp.zeros(x.size, x.size, dtype=dtype))
        got = hs.data.ravel()
        assert got.dtype == dtype
        want = np.tanh(xg.ravel().astype(np.float64))
        err = np.abs(got - want) / np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
        assert err.max() <= ulps, (dtype, x[np.argmax(err)], err.max())
        assert got[-4] == 1 and got[-3] == -1 and got[-5] == 0
    assert kernel_calls["rnn_forward"] == 2


def test_saturated_gates_stay_finite(kernel_calls):
    """Pre-activations of ±1e4 (σ and tanh saturated): finite, and as the NumPy path."""
    arrays = _inputs("lstm", np.float32, True, scale=1e4)
    weights = [np.ones((T, N, H)), np.ones((N, H)), np.ones((N, H))]
    want_out, want_grad = _run("lstm", arrays, False, "tanh", weights, on=False)
    got_out, got_grad = _run("lstm", arrays, False, "tanh", weights, on=True)
    for got, want in zip(got_out + got_grad, want_out + want_grad):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(np.abs(want).max(), 1))


def test_unsuitable_arrays_take_the_numpy_path(kernel_calls):
    """A non-contiguous input is not what the kernels are compiled for: NumPy loops run."""
    xg, h0, c0, w = _inputs("lstm", np.float32, True)
    w_f = np.asfortranarray(w)
    with fast.flags(enabled=True):
        hs, _, _ = LSTMLayer.apply(bp.tensor(xg), bp.tensor(h0), bp.tensor(c0), bp.tensor(w_f))
    assert "lstm_forward" not in kernel_calls
    with fast.flags(enabled=False):
        want, _, _ = LSTMLayer.apply(bp.tensor(xg), bp.tensor(h0), bp.tensor(c0), bp.tensor(w))
    np.testing.assert_array_equal(hs.data, want.data)


def test_without_scipy_the_layers_keep_the_numpy_loops(kernel_calls, monkeypatch):
    """numba's np.dot needs SciPy's BLAS: with HAS_BLAS false no kernel runs, results stand."""
    monkeypatch.setattr(_fast.kernels("recurrent"), "HAS_BLAS", False)
    arrays = _inputs("gru", np.float64, True)
    weights = [np.ones((T, N, H)), np.ones((N, H))]
    got_out, got_grad = _run("gru", arrays, False, "tanh", weights, on=True)
    assert not kernel_calls
    want_out, want_grad = _run("gru", arrays, False, "tanh", weights, on=False)
    for got, want in zip(got_out + got_grad, want_out + want_grad):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_cell_step_kernels_match_the_numpy_path(kernel_calls, dtype):
    """LSTMCellStep (nn.LSTMCell, packed sequences): three chained steps, every gradient."""
    rng = np.random.default_rng(3)
    xgs = [1.5 * rng.standard_normal((N, 4 * H)).astype(dtype) for _ in range(3)]
    h0, c0 = (rng.standard_normal((N, H)).astype(dtype) for _ in range(2))
    w = (0.5 * rng.standard_normal((4 * H, H))).astype(dtype)
    wh, wc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    results = []
    for on in (False, True):
        with fast.flags(enabled=on):
            ts = [bp.tensor(a, requires_grad=True) for a in xgs + [h0, c0, w]]
            h, c = ts[3], ts[4]
            for xg in ts[:3]:
                h, c = LSTMCellStep.apply(xg, h, c, ts[5])
            ((h * bp.tensor(wh.astype(dtype))).sum() + (c * bp.tensor(wc.astype(dtype))).sum()
             ).backward()
            results.append([h.data, c.data] + [t.grad.data for t in ts])
    assert kernel_calls == {"lstm_cell_forward": 3, "lstm_cell_backward": 3}
    tol = TOL[dtype]
    for got, want in zip(*results[::-1]):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def _halves_forced(monkeypatch, helper_names):
    """Make every layer kernel run as two halves of the batch, the second on the helper thread
    for certain (``helper_forced``)."""
    from backprop import _pair

    fk = _fast.kernels("recurrent")
    monkeypatch.setattr(fk, "PAIR_ROWS", 1)
    monkeypatch.setattr(fk, "PAIR_MACS", 0)
    monkeypatch.setattr(fk._pair, "run_pair", helper_forced(_pair.run_pair, helper_names))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("kind,bias,act", CASES)
def test_two_halves_of_the_batch_give_the_same_bits(kernel_calls, monkeypatch, kind, bias, act,
                                                    reverse, dtype):
    """A layer's batch in two halves on two threads (``_fast.recurrent._rows``): the rows never
    meet, and each row's products and gate arithmetic are the same whichever thread computes
    them, so outputs and every gradient equal the one-thread run bit for bit. 11 rows: halves
    of 8 and 3."""
    from backprop import _blas, _pair

    if not _pair.available() or _blas.blas_threads_for(1) != 1:
        pytest.skip("needs two cores and a BLAS whose threads backprop controls")
    rng = np.random.default_rng(4)
    gates = {"lstm": 4, "gru": 3}.get(kind, 1)
    batch = 11
    arrays = [1.5 * rng.standard_normal((T, batch, gates * H)), rng.standard_normal((batch, H))]
    if kind == "lstm":
        arrays.append(rng.standard_normal((batch, H)))
    arrays.append(0.5 * rng.standard_normal((gates * H, H)))
    if kind == "gru":
        arrays.append(rng.standard_normal(gates * H) if bias else None)
    arrays = [None if a is None else a.astype(dtype) for a in arrays]
    n_out = 3 if kind == "lstm" else 2
    weights = [rng.standard_normal((T, batch, H))]
    weights += [rng.standard_normal((batch, H)) for _ in range(n_out - 1)]
    _blas.set_blas_threads(1)  # everything on the calling thread
    try:
        want_out, want_grad = _run(kind, arrays, reverse, act, weights, on=True)
    finally:
        _blas.set_blas_threads("auto")
    names = []
    _halves_forced(monkeypatch, names)
    got_out, got_grad = _run(kind, arrays, reverse, act, weights, on=True)
    assert names == [_pair.HELPER_NAME] * 2  # forward and backward each sent a half
    assert kernel_calls == {f"{kind}_forward": 2, f"{kind}_backward": 2}
    for got, want in zip(got_out + got_grad, want_out + want_grad):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)


def test_small_layers_and_one_thread_keep_the_whole_batch_here(kernel_calls, monkeypatch):
    """Below PAIR_ROWS rows a half or PAIR_MACS multiply-adds a layer, with the BLAS setting 1
    (everything on one thread), or with BLAS threads in each step's product (a setting of 2,
    or the BLAS left alone), no half goes to the helper."""
    from backprop import _blas

    fk = _fast.kernels("recurrent")
    seen = []
    monkeypatch.setattr(fk._pair, "run_pair", lambda a, b: seen.append(1))
    ran = []
    fk._rows(64, 2 * fk.PAIR_ROWS - 1, 1 << 20, lambda b0, b1: ran.append((b0, b1)))
    fk._rows(1, 2 * fk.PAIR_ROWS, 16, lambda b0, b1: ran.append((b0, b1)))
    try:
        for setting in (1, 2, "default"):  # one thread, or BLAS threads in each half
            _blas.set_blas_threads(setting)
            fk._rows(64, 64, 1 << 16, lambda b0, b1: ran.append((b0, b1)))
    finally:
        _blas.set_blas_threads("auto")
    assert not seen
    assert ran == [(0, 2 * fk.PAIR_ROWS - 1), (0, 2 * fk.PAIR_ROWS)] + [(0, 64)] * 3
    from backprop import _pair

    if _pair.available() and _blas.blas_threads_for(1) == 1:  # a big one splits: 32 + 32
        fk._rows(64, 64, 1 << 16, lambda b0, b1: ran.append((b0, b1)))
        assert seen == [1]
