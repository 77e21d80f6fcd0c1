"""Recurrent layers and cells: a loop-based NumPy LSTM reference, torch in value and gradient
(torch's weights loaded through state_dict), gradcheck / gradgradcheck on tiny shapes, truncated
BPTT, dropout between layers, dtypes and shape errors."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import nn


def _leaf(a, dtype=np.float64) -> bp.Tensor:
    return bp.tensor(np.asarray(a, dtype=dtype), requires_grad=True)


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _lstm_loops(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM layer by the definition: every sample, every step, every unit, one at a time."""
    seq, batch, _ = x.shape
    hidden = h.shape[1]
    out = np.zeros((seq, batch, hidden))
    h, c = h.copy(), c.copy()
    for t in range(seq):
        for n in range(batch):
            gates = np.zeros(4 * hidden)
            for k in range(4 * hidden):
                gates[k] = b_ih[k] + b_hh[k] + sum(w_ih[k, j] * x[t, n, j]
                                                   for j in range(x.shape[2]))
                gates[k] += sum(w_hh[k, j] * h[n, j] for j in range(hidden))
            c_row, h_row = np.zeros(hidden), np.zeros(hidden)
            for u in range(hidden):
                i, f = _sig(gates[u]), _sig(gates[hidden + u])
                g, o = np.tanh(gates[2 * hidden + u]), _sig(gates[3 * hidden + u])
                c_row[u] = f * c[n, u] + i * g
                h_row[u] = o * np.tanh(c_row[u])
            h[n], c[n] = h_row, c_row
            out[t, n] = h_row
    return out, h, c


def test_lstm_matches_loop_reference():
    rng = np.random.default_rng(0)
    bp.manual_seed(0)
    lstm = nn.LSTM(3, 4).double()
    x, h0, c0 = rng.standard_normal((5, 2, 3)), rng.standard_normal((1, 2, 4)), \
        rng.standard_normal((1, 2, 4))
    out, (h_n, c_n) = lstm(bp.tensor(x), (bp.tensor(h0), bp.tensor(c0)))
    p = {k: v.data for k, v in lstm.state_dict().items()}
    ref, h_ref, c_ref = _lstm_loops(x, h0[0], c0[0], p["weight_ih_l0"], p["weight_hh_l0"],
                                    p["bias_ih_l0"], p["bias_hh_l0"])
    np.testing.assert_allclose(out.data, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h_n.data[0], h_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c_n.data[0], c_ref, rtol=1e-12, atol=1e-13)


def test_parameter_names_shapes_and_init():
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    shapes = {k: v.shape for k, v in lstm.state_dict().items()}
    assert list(shapes) == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
        "bias_hh_l0_reverse",
        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
        "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse",
        "bias_hh_l1_reverse",
    ]
    assert shapes["weight_ih_l0"] == (20, 3) and shapes["weight_ih_l1"] == (20, 10)
    assert shapes["weight_hh_l1_reverse"] == (20, 5) and shapes["bias_hh_l1"] == (20,)
    assert list(nn.GRU(3, 5, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    assert nn.GRU(3, 5).weight_ih_l0.shape == (15, 3)
    assert list(nn.LSTMCell(3, 5).state_dict()) == ["weight_ih", "weight_hh", "bias_ih",
                                                     "bias_hh"]
    bound = 1 / np.sqrt(200)
    big = nn.RNN(7, 200)
    for p in big.parameters():
        assert p.dtype == np.float32
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound


# --- against torch ---

LAYER_CONFIGS = [
    ("LSTM", {}), ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("LSTM", dict(num_layers=2, bias=False)), ("LSTM", dict(bidirectional=True)),
    ("GRU", {}), ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(bias=False, bidirectional=True)),
    ("RNN", {}), ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("RNN", dict(nonlinearity="relu", batch_first=True, bias=False)),
]


def _load_from_torch(module, tmodule):
    module.load_state_dict({k: bp.tensor(v.detach().numpy().copy())
                            for k, v in tmodule.state_dict().items()})


def _compare_grads(pairs, rtol=1e-9, atol=1e-11):
    for name, ours, theirs in pairs:
        assert ours is not None, f"no gradient for {name}"
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("kind,kw", LAYER_CONFIGS,
                         ids=[f"{k}-{'-'.join(f'{a}={b}' for a, b in kw.items()) or 'default'}"
                              for k, kw in LAYER_CONFIGS])
def test_layer_matches_torch(kind, kw, with_state):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    tm = getattr(torch.nn, kind)(3, 4, **kw).double()
    m = getattr(nn, kind)(3, 4, **kw).double()
    _load_from_torch(m, tm)
    d = 2 if kw.get("bidirectional") else 1
    layers = kw.get("num_layers", 1)
    x = rng.standard_normal((2, 5, 3))
    states = [rng.standard_normal((layers * d, 2, 4))
              for _ in range(2 if kind == "LSTM" else 1)]
    if not kw.get("batch_first"):
        x = x.transpose(1, 0, 2).copy()  # (L=5, N=2, 3)
    xb, xt = _leaf(x), torch.tensor(x, requires_grad=True)
    sb = [_leaf(s) for s in states]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    if with_state:
        hb = (sb[0], sb[1]) if kind == "LSTM" else sb[0]
        ht = (st[0], st[1]) if kind == "LSTM" else st[0]
        out, hn = m(xb, hb)
        tout, thn = tm(xt, ht)
    else:
        out, hn = m(xb)
        tout, thn = tm(xt)
    finals = list(hn) if kind == "LSTM" else [hn]
    tfinals = list(thn) if kind == "LSTM" else [thn]
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(finals, tfinals):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    # a loss that uses every output: the sequence and each final state
    wo = rng.standard_normal(out.shape)
    wf = [rng.standard_normal(f.shape) for f in finals]
    loss = (out * bp.tensor(wo)).sum()
    tloss = (tout * torch.tensor(wo)).sum()
    for f, tf, w in zip(finals, tfinals, wf):
        loss = loss + (f * f * bp.tensor(w)).sum()
        tloss = tloss + (tf * tf * torch.tensor(w)).sum()
    loss.backward()
    tloss.backward()
    pairs = [("input", xb.grad, xt.grad)]
    if with_state:
        pairs += [(f"state{k}", a.grad, b.grad) for k, (a, b) in enumerate(zip(sb, st))]
    tparams = dict(tm.named_parameters())
    pairs += [(n, p.grad, tparams[n].grad) for n, p in m.named_parameters()]
    _compare_grads(pairs)


CELL_CONFIGS = [("LSTMCell", {}), ("LSTMCell", dict(bias=False)), ("GRUCell", {}),
                ("GRUCell", dict(bias=False)), ("RNNCell", {}),
                ("RNNCell", dict(nonlinearity="relu"))]


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("kind,kw", CELL_CONFIGS,
                         ids=[f"{k}-{'-'.join(f'{a}={b}' for a, b in kw.items()) or 'default'}"
                              for k, kw in CELL_CONFIGS])
def test_cell_matches_torch(kind, kw, with_state):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    tm = getattr(torch.nn, kind)(3, 4, **kw).double()
    m = getattr(nn, kind)(3, 4, **kw).double()
    _load_from_torch(m, tm)
    lstm = kind == "LSTMCell"
    x = rng.standard_normal((2, 3))
    states = [rng.standard_normal((2, 4)) for _ in range(2 if lstm else 1)]
    xb, xt = _leaf(x), torch.tensor(x, requires_grad=True)
    sb = [_leaf(s) for s in states]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    args_b = (xb,) + (((tuple(sb) if lstm else sb[0]),) if with_state else ())
    args_t = (xt,) + (((tuple(st) if lstm else st[0]),) if with_state else ())
    outs = m(*args_b)
    touts = tm(*args_t)
    outs, touts = (outs, touts) if lstm else ((outs,), (touts,))
    loss, tloss = 0, 0
    for o, to in zip(outs, touts):
        np.testing.assert_allclose(o.data, to.detach().numpy(), rtol=1e-10, atol=1e-12)
        w = rng.standard_normal(o.shape)
        loss = loss + (o * o * bp.tensor(w)).sum()
        tloss = tloss + (to * to * torch.tensor(w)).sum()
    loss.backward()
    tloss.backward()
    pairs = [("input", xb.grad, xt.grad)]
    if with_state:
        pairs += [(f"state{k}", a.grad, b.grad) for k, (a, b) in enumerate(zip(sb, st))]
    tparams = dict(tm.named_parameters())
    pairs += [(n, p.grad, tparams[n].grad) for n, p in m.named_parameters()]
    _compare_grads(pairs)


def test_unbatched_input_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.LSTM(3, 4, num_layers=2).double()
    m = nn.LSTM(3, 4, num_layers=2).double()
    _load_from_torch(m, tm)
    x = np.random.default_rng(3).standard_normal((5, 3))
    h0 = np.random.default_rng(4).standard_normal((2, 4))
    out, (h, c) = m(bp.tensor(x), (bp.tensor(h0), bp.tensor(h0)))
    tout, (th, tc) = tm(torch.tensor(x), (torch.tensor(h0), torch.tensor(h0)))
    assert out.shape == (5, 4) and h.shape == (2, 4) and c.shape == (2, 4)
    for a, b in ((out, tout), (h, th), (c, tc)):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    cell = nn.GRUCell(3, 4)
    assert cell(bp.ones(3)).shape == (4,)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_one_step_sequence_matches_torch(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True).double()
    m = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True).double()
    _load_from_torch(m, tm)
    x = np.random.default_rng(11).standard_normal((1, 2, 3))
    xb, xt = _leaf(x), torch.tensor(x, requires_grad=True)
    out, tout = m(xb)[0], tm(xt)[0]
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xb.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


# --- gradcheck ---


def _param_fn(module, call):
    """fn(x, *state, *params) running ``module`` with the given parameter tensors."""
    names = [n for n, _ in module.named_parameters()]

    def fn(*args):
        n_p = len(names)
        module._parameters.update(zip(names, args[len(args) - n_p:]))
        return call(*args[: len(args) - n_p])

    return fn, [p for _, p in module.named_parameters()]


def _outputs(result):
    out, state = result
    return (out,) + (tuple(state) if isinstance(state, tuple) else (state,))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_gradcheck_bidirectional_two_layer(kind):
    bp.manual_seed(0)
    m = getattr(nn, kind)(2, 2, num_layers=2, bidirectional=True).double()
    rng = np.random.default_rng(5)
    x = _leaf(rng.standard_normal((3, 1, 2)))
    states = [_leaf(rng.standard_normal((4, 1, 2))) for _ in range(2 if kind == "LSTM" else 1)]

    def call(x, *s):
        return _outputs(m(x, tuple(s) if kind == "LSTM" else s[0]))

    fn, params = _param_fn(m, call)
    inputs = (x, *states, *[_leaf(p.data) for p in params])
    assert bp.gradcheck(fn, inputs)


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_gradcheck_cells(kind):
    bp.manual_seed(1)
    m = getattr(nn, kind)(3, 2).double()
    rng = np.random.default_rng(6)
    x = _leaf(rng.standard_normal((2, 3)))
    states = [_leaf(rng.standard_normal((2, 2))) for _ in range(2 if kind == "LSTMCell" else 1)]

    def call(x, *s):
        return m(x, tuple(s) if kind == "LSTMCell" else s[0])

    fn, params = _param_fn(m, call)
    assert bp.gradcheck(fn, (x, *states, *[_leaf(p.data) for p in params]))


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
def test_gradgradcheck_cells(kind):
    bp.manual_seed(2)
    m = getattr(nn, kind)(2, 2).double()
    rng = np.random.default_rng(7)
    x = _leaf(rng.standard_normal((1, 2)))
    states = [_leaf(rng.standard_normal((1, 2))) for _ in range(2 if kind == "LSTMCell" else 1)]

    def call(x, *s):
        return m(x, tuple(s) if kind == "LSTMCell" else s[0])

    fn, params = _param_fn(m, call)
    assert bp.gradgradcheck(fn, (x, *states, *[_leaf(p.data) for p in params]))


def test_lstm_double_backward_matches_torch():
    """Second order through a whole layer (the recorded backward path of the fused step)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.LSTM(2, 3).double()
    m = nn.LSTM(2, 3).double()
    _load_from_torch(m, tm)
    x = np.random.default_rng(8).standard_normal((4, 2, 2))
    xb, xt = _leaf(x), torch.tensor(x, requires_grad=True)
    (gb,) = bp.autograd.grad([(m(xb)[0] ** 2).sum()], [xb], create_graph=True)
    (gt,) = torch.autograd.grad((tm(xt)[0] ** 2).sum(), xt, create_graph=True)
    (gb * gb).sum().backward()
    (gt * gt).sum().backward()
    np.testing.assert_allclose(xb.grad.data, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(m.weight_hh_l0.grad.data, tm.weight_hh_l0.grad.numpy(),
                               rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind, kw", [
    ("GRU", dict()), ("GRU", dict(bias=False, bidirectional=True)),
    ("RNN", dict()), ("RNN", dict(bidirectional=True)),
])
def test_gru_and_rnn_double_backward_match_torch(kind, kw):
    """Second order through whole GRU and RNN layers (GRULayer's and RNNLayer's recorded
    backward), and their first order (create_graph=True) equal to the NumPy path's."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(2, 3, **kw).double()
    m = getattr(nn, kind)(2, 3, **kw).double()
    _load_from_torch(m, tm)
    x = np.random.default_rng(9).standard_normal((4, 2, 2))
    xb, xt = _leaf(x), torch.tensor(x, requires_grad=True)
    params = list(m.parameters())
    first = bp.autograd.grad([(m(xb)[0] ** 2).sum()], [xb, *params])
    (gb, *gps) = bp.autograd.grad([(m(xb)[0] ** 2).sum()], [xb, *params], create_graph=True)
    for a, b in zip(first, [gb, *gps]):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-12, atol=1e-14)
    (gt,) = torch.autograd.grad((tm(xt)[0] ** 2).sum(), xt, create_graph=True)
    (gb * gb).sum().backward()
    (gt * gt).sum().backward()
    np.testing.assert_allclose(xb.grad.data, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.data, getattr(tm, name).grad.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)


# --- truncated BPTT ---


def test_detach_state():
    h = bp.ones(2, requires_grad=True) * 2
    h2, c2 = nn.detach_state((h, h))
    assert not h2.requires_grad and h2.grad_fn is None
    np.testing.assert_array_equal(h2.data, h.data)
    assert nn.detach_state(None) is None
    assert isinstance(nn.detach_state([h]), list)
    with pytest.raises(TypeError):
        nn.detach_state(3)


def _tbptt_grads(k: int, seq: int = 6):
    bp.manual_seed(3)
    lstm, head = nn.LSTM(2, 3).double(), nn.Linear(3, 1).double()
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((seq, 2, 2)), rng.standard_normal((seq, 2, 1))
    state = None
    for t in range(0, seq, k):
        out, state = lstm(bp.tensor(x[t : t + k]), state)
        loss = ((head(out) - bp.tensor(y[t : t + k])) ** 2).sum()
        loss.backward()
        state = nn.detach_state(state)
    return [p.grad.data.copy() for p in list(lstm.parameters()) + list(head.parameters())]


def test_truncated_bptt_with_k_equal_seq_is_full_bptt():
    full = _tbptt_grads(6)
    # the reference: one forward, one backward, no helper involved
    bp.manual_seed(3)
    lstm, head = nn.LSTM(2, 3).double(), nn.Linear(3, 1).double()
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((6, 2, 2)), rng.standard_normal((6, 2, 1))
    out, _ = lstm(bp.tensor(x))
    ((head(out) - bp.tensor(y)) ** 2).sum().backward()
    for a, p in zip(full, list(lstm.parameters()) + list(head.parameters())):
        np.testing.assert_allclose(a, p.grad.data, rtol=1e-12, atol=1e-14)
    # a shorter k cuts gradient paths: the result must differ (the test can fail)
    short = _tbptt_grads(2)
    assert not np.allclose(short[1], full[1])


# --- dropout, dtypes, errors ---


def test_dropout_between_layers_only_in_training():
    bp.manual_seed(4)
    m = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = bp.tensor(np.random.default_rng(10).standard_normal((5, 2, 3)).astype(np.float32))
    a, b = m(x)[0], m(x)[0]
    assert not np.allclose(a.data, b.data)  # a new dropout mask per call
    m.eval()
    a, b = m(x)[0], m(x)[0]
    np.testing.assert_array_equal(a.data, b.data)
    # one layer: nothing between layers, so no dropout even in training
    one = nn.GRU(3, 4, num_layers=1, dropout=0.5)
    np.testing.assert_array_equal(one(x)[0].data, one(x)[0].data)
    with pytest.raises(ValueError):
        nn.LSTM(3, 4, dropout=1.5)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_float32_stays_float32(kind):
    m = getattr(nn, kind)(3, 4)
    cell = kind.endswith("Cell")
    x = _leaf(np.ones((2, 3) if cell else (5, 2, 3)), np.float32)
    result = m(x)
    outs = result if isinstance(result, tuple) else (result,)
    flat = []
    for o in outs:
        flat += list(o) if isinstance(o, tuple) else [o]
    total = 0
    for o in flat:
        assert o.dtype == np.float32
        total = total + o.sum()
    total.backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


def test_shape_errors_name_expected_and_actual():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(bp.ShapeError, match=r"input_size=3.*\(5, 2, 7\)|\(5, 2, 7\).*input_size=3"):
        lstm(bp.zeros(5, 2, 7))
    with pytest.raises(bp.ShapeError, match=r"\(2, 5, 3, 1\)"):
        lstm(bp.zeros(2, 5, 3, 1))
    # batch-first data fed to a sequence-first layer: the feature dimension does not fit
    with pytest.raises(bp.ShapeError, match=r"\(L, N, H_in\)"):
        nn.GRU(7, 4)(bp.zeros(2, 7, 5))
    with pytest.raises(bp.ShapeError, match=r"expected h_0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
        lstm(bp.zeros(5, 2, 3), (bp.zeros(1, 2, 4), bp.zeros(2, 2, 4)))
    with pytest.raises(bp.ShapeError, match=r"expected c_0 of shape \(2, 2, 4\), got \(2, 3, 4\)"):
        lstm(bp.zeros(5, 2, 3), (bp.zeros(2, 2, 4), bp.zeros(2, 3, 4)))
    with pytest.raises(bp.ShapeError, match=r"expected h_0 of shape \(1, 2, 4\), got \(1, 4\)"):
        nn.RNN(3, 4)(bp.zeros(5, 2, 3), bp.zeros(1, 4))
    with pytest.raises(bp.ShapeError, match=r"\(N, 3\).*\(2, 5\)"):
        nn.LSTMCell(3, 4)(bp.zeros(2, 5))
    with pytest.raises(bp.ShapeError, match=r"expected h_0 of shape \(2, 4\), got \(2, 3\)"):
        nn.GRUCell(3, 4)(bp.zeros(2, 3), bp.zeros(2, 3))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")


def test_extra_repr_and_state_dict_round_trip():
    m = nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)
    assert repr(m) == "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"
    other = nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)
    other.load_state_dict(m.state_dict())
    x = bp.ones(2, 5, 3)
    np.testing.assert_array_equal(other(x)[0].data, m(x)[0].data)
