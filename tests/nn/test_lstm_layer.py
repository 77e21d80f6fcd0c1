"""nn.LSTM runs each layer and direction as one ``LSTMLayer`` op; these tests hold it to the
per-step path it replaced (``Unbind``, one ``LSTMCellStep`` per step, ``Stack``), written out
here as the reference: outputs, final states and every gradient agree in float64 to ~1e-12,
first and second order, for stacked, bidirectional, batch-first and dropout configurations."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import nn
from backprop.nn import _functional_layers as FL
from backprop.ops.linalg import MatMul
from backprop.ops.recurrent import LSTMCellStep, Stack, Unbind
from backprop.ops.shape import cat, stack, transpose


def _step_loop_lstm(m: nn.LSTM, x: bp.Tensor, hx=None):
    """nn.LSTM's forward as it was before LSTMLayer: per layer and direction, the input
    projection in one GEMM, then one LSTMCellStep per time step (reverse: from T-1 down)."""
    if m.batch_first:
        x = transpose(x, 0, 1)
    seq, batch = x.shape[0], x.shape[1]
    dirs = 2 if m.bidirectional else 1
    if hx is None:
        h0 = c0 = bp.zeros(m.num_layers * dirs, batch, m.hidden_size, dtype=x.dtype)
    else:
        h0, c0 = hx
    h_n, c_n = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(dirs):
            w_ih, w_hh, b_ih, b_hh = m._weights(layer, d)
            k = layer * dirs + d
            h, c = h0[k], c0[k]
            xg = MatMul.apply(bp.reshape(x, (seq * batch, x.shape[2])), w_ih, transpose_b=True)
            xg = xg + (b_ih + b_hh)
            steps = Unbind.apply(bp.reshape(xg, (seq, batch, xg.shape[1])))
            hs = [None] * seq
            for t in (range(seq - 1, -1, -1) if d else range(seq)):
                h, c = LSTMCellStep.apply(steps[t], h, c, w_hh)
                hs[t] = h
            outs.append(Stack.apply(*hs))
            h_n.append(h)
            c_n.append(c)
        x = outs[0] if dirs == 1 else cat(outs, 2)
        if m.dropout and m.training and layer < m.num_layers - 1:
            x = FL.dropout(x, m.dropout, True)
    if m.batch_first:
        x = transpose(x, 0, 1)
    return x, (stack(h_n, 0), stack(c_n, 0))


CONFIGS = {
    "one_layer": dict(kw={}, state=False),
    "one_layer_state": dict(kw={}, state=True),
    "reverse_only_bidirectional": dict(kw=dict(bidirectional=True), state=False),
    "bidirectional_two_layer_state": dict(kw=dict(num_layers=2, bidirectional=True), state=True),
    "three_layer_batch_first_state": dict(kw=dict(num_layers=3, batch_first=True), state=True),
    "bidirectional_two_layer_dropout": dict(
        kw=dict(num_layers=2, bidirectional=True, dropout=0.4), state=True),
}


def _setup(name: str):
    cfg = CONFIGS[name]
    bp.manual_seed(3)
    m = nn.LSTM(3, 4, **cfg["kw"]).double()
    dirs = 2 if m.bidirectional else 1
    rng = np.random.default_rng(11)
    shape = (2, 5, 3) if m.batch_first else (5, 2, 3)
    x = rng.standard_normal(shape)
    states = [rng.standard_normal((m.num_layers * dirs, 2, 4)) for _ in range(2)]
    return m, x, (states if cfg["state"] else None)


def _run(m, forward, x, states, seed=7):
    """Forward with fresh leaves, backward of a loss using every output; returns the outputs
    and the gradients of the input, the initial states and every parameter."""
    m.zero_grad()
    xb = bp.tensor(x, requires_grad=True)
    sb = None if states is None else tuple(bp.tensor(s, requires_grad=True) for s in states)
    bp.manual_seed(seed)  # the same dropout masks for both paths
    out, (h_n, c_n) = forward(xb, sb)
    w = [np.random.default_rng(k).standard_normal(t.shape) for k, t in
         enumerate((out, h_n, c_n))]
    loss = sum(((t * bp.tensor(wk)) ** 2).sum() for t, wk in zip((out, h_n, c_n), w))
    loss.backward()
    grads = {"x": xb.grad.data.copy()}
    if sb is not None:
        grads["h0"], grads["c0"] = sb[0].grad.data.copy(), sb[1].grad.data.copy()
    for k, p in m.named_parameters():
        grads[k] = p.grad.data.copy()
    return [t.data.copy() for t in (out, h_n, c_n)], grads


@pytest.mark.parametrize("name", list(CONFIGS))
def test_layer_op_equals_step_loop(name):
    m, x, states = _setup(name)
    outs, grads = _run(m, lambda xb, sb: m(xb, sb), x, states)
    ref_outs, ref_grads = _run(m, lambda xb, sb: _step_loop_lstm(m, xb, sb), x, states)
    for what, a, b in zip(("output", "h_n", "c_n"), outs, ref_outs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=what)
    assert grads.keys() == ref_grads.keys()
    for k in grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-12, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("name", ["one_layer_state", "bidirectional_two_layer_state"])
def test_layer_op_double_backward_equals_step_loop(name):
    """create_graph=True takes LSTMLayer's recorded backward: second order as the step loop."""
    m, x, states = _setup(name)

    def second_order(forward):
        m.zero_grad()
        xb = bp.tensor(x, requires_grad=True)
        sb = tuple(bp.tensor(s, requires_grad=True) for s in states)
        out, (h_n, c_n) = forward(xb, sb)
        loss = (out ** 2).sum() + (h_n * c_n).sum()
        gx, gh, gw = bp.autograd.grad([loss], [xb, sb[0], m.weight_hh_l0], create_graph=True)
        ((gx ** 2).sum() + (gh ** 2).sum() + (gw ** 2).sum()).backward()
        return [gx.data, gh.data, gw.data, xb.grad.data, sb[1].grad.data] + [
            p.grad.data.copy() for p in m.parameters()]

    got = second_order(lambda xb, sb: m(xb, sb))
    want = second_order(lambda xb, sb: _step_loop_lstm(m, xb, sb))
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"item {k}")


def test_layer_op_gradgradcheck_bidirectional():
    """Second order against finite differences, through both directions and the states."""
    bp.manual_seed(4)
    m = nn.LSTM(2, 2, bidirectional=True).double()
    rng = np.random.default_rng(12)
    x = bp.tensor(rng.standard_normal((3, 1, 2)), requires_grad=True)
    h0, c0 = (bp.tensor(rng.standard_normal((2, 1, 2)), requires_grad=True) for _ in range(2))

    def fn(x, h0, c0):
        out, (h_n, c_n) = m(x, (h0, c0))
        return out, h_n, c_n

    assert bp.gradgradcheck(fn, (x, h0, c0))


def test_layer_op_float32_and_no_grad():
    bp.manual_seed(5)
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    x = bp.tensor(np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32))
    out, (h_n, c_n) = m(x)
    assert out.dtype == h_n.dtype == c_n.dtype == np.float32
    out.sum().backward()
    assert all(p.grad.dtype == np.float32 for p in m.parameters())
    with bp.no_grad():
        out2, _ = m(x)
    assert out2.grad_fn is None
    np.testing.assert_array_equal(out2.data, out.data)
