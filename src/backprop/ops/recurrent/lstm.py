"""The LSTM ops: ``LSTMCellStep`` (one step) and ``LSTMLayer`` (a layer's whole time loop)."""

from __future__ import annotations

import numpy as np

from backprop import _blas
from backprop._blas import gemm_threads
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _state
from backprop.errors import ShapeError
from backprop.ops._util import const
from backprop.ops.recurrent._common import Stack, Unbind, _contiguous, _kernels


def _activate_gates(a: np.ndarray, n: int) -> None:
    """In place: LSTM gate pre-activations [i f g o] (N, 4H) -> [σ σ tanh σ] of them, in one
    tanh pass over all gates: σ(x) = (1 + tanh(x/2)) / 2 (exact, never overflows)."""
    sig = (a[:, : 2 * n], a[:, 3 * n :])
    for part in sig:
        part *= 0.5
    np.tanh(a, out=a)
    for part in sig:
        part *= 0.5
        part += 0.5


def _gate_grads(a: np.ndarray, c: np.ndarray, t: np.ndarray, dc: np.ndarray, dh: np.ndarray,
                out: np.ndarray) -> np.ndarray:
    """∂L/∂pre of one LSTM step, written into ``out`` (N, 4H, C-contiguous) and returned.

    a: the activated gates [i f g o] (N, 4H); c: the cell state entering the step; t: tanh of
    the new cell state; dc: ∂L/∂c' (incl. the path through h'); dh: ∂L/∂h' (all (N, H)).
    σ' = σ(1 - σ) for i, f, o and tanh' = 1 - g² for g: out = a - a² first, then g's block is
    fixed, then each block is multiplied by its chain factor.
    """
    n = c.shape[1]
    i, g = a[:, :n], a[:, 2 * n : 3 * n]
    np.multiply(a, a, out=out)
    np.subtract(a, out, out=out)
    dg = out[:, 2 * n : 3 * n]
    np.multiply(g, g, out=dg)
    np.subtract(1, dg, out=dg)
    out[:, :n] *= g
    out[:, n : 2 * n] *= c
    dg *= i
    out.reshape(-1, 4, n)[:, :3] *= dc[:, None]
    out[:, 3 * n :] *= t
    out[:, 3 * n :] *= dh
    return out


class LSTMCellStep(Function):
    """One LSTM step from the precomputed input projection ``xg = x W_ihᵀ + b_ih + b_hh``:
    [i f g o] = [σ σ tanh σ](xg + h W_hhᵀ);  c' = f·c + i·g;  h' = o·tanh(c').

    With dc = ∂L/∂c' + ∂L/∂h'·o·(1 - tanh²c'):  ∂L/∂pre = [dc·g·i(1-i), dc·c·f(1-f),
    dc·i·(1-g²), ∂L/∂h'·tanh(c')·o(1-o)];  ∂L/∂xg = ∂L/∂pre, ∂L/∂h = ∂L/∂pre W_hh,
    ∂L/∂c = dc·f, ∂L/∂W_hh = ∂L/∂preᵀ h.
    Fused for speed: one op per time step instead of about fifteen.
    """

    label = "LSTMCell"

    @staticmethod
    def forward(ctx, xg, h, c, w_hh):
        n = h.shape[1]
        act = h @ w_hh.T
        fk = _kernels(act, xg, c)
        if fk is not None:
            c_new, tc, h_new = np.empty_like(c), np.empty_like(c), np.empty_like(c)
            fk.lstm_cell_forward(act, xg, c, c_new, tc, h_new)
        else:
            act += xg
            _activate_gates(act, n)
            i, f, g, o = act[:, :n], act[:, n : 2 * n], act[:, 2 * n : 3 * n], act[:, 3 * n :]
            c_new = f * c
            c_new += i * g
            tc = np.tanh(c_new)
            h_new = o * tc
        # act and tanh(c') serve only the first-order path; the recorded path recomputes
        ctx.save_for_backward(xg, h, c, w_hh, act, tc)
        return h_new, c_new

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        xg, h, c, w_hh, act, tc = ctx.saved_tensors
        need_xg, need_h, need_c, need_w = ctx.needs_input_grad
        if _state.grad_enabled:
            return _lstm_step_backward_recorded(xg, h, c, w_hh, grad_h, grad_c,
                                                ctx.needs_input_grad)
        n = h.shape[1]
        a, t, gh, gc = act.data, tc.data, grad_h.data, grad_c.data
        f, o = a[:, n : 2 * n], a[:, 3 * n :]
        fk = _kernels(a, c.data, t)
        d_pre = np.empty_like(a)
        if fk is not None:
            grad_c_in = np.array(gc, a.dtype)  # ∂L/∂c' in, ∂L/∂c out
            fk.lstm_cell_backward(a, c.data, t, np.ascontiguousarray(gh, a.dtype), grad_c_in,
                                  d_pre)
        else:
            dc = t * t
            np.subtract(1, dc, out=dc)
            dc *= o
            dc *= gh
            dc += gc
            _gate_grads(a, c.data, t, dc, gh, d_pre)
            grad_c_in = dc * f if need_c else None
        return (const(d_pre) if need_xg else None,
                const(d_pre @ w_hh.data) if need_h else None,
                const(grad_c_in) if need_c else None,
                const(d_pre.T @ h.data) if need_w else None)


def _lstm_step_backward_recorded(xg, h, c, w_hh, grad_h, grad_c, needs):
    """LSTMCellStep's backward in Tensor ops, recomputed from the inputs (higher order)."""
    n = h.shape[1]
    pre = xg + MatMul.apply(h, w_hh, transpose_b=True)
    i, f = sigmoid(pre[:, :n]), sigmoid(pre[:, n : 2 * n])
    g, o = tanh(pre[:, 2 * n : 3 * n]), sigmoid(pre[:, 3 * n :])
    tc = tanh(f * c + i * g)
    dc = grad_c + TanhGrad.apply(grad_h * o, tc)
    d_pre = cat([SigmoidGrad.apply(dc * g, i), SigmoidGrad.apply(dc * c, f),
                 TanhGrad.apply(dc * i, g), SigmoidGrad.apply(grad_h * tc, o)], 1)
    return (d_pre if needs[0] else None,
            MatMul.apply(d_pre, w_hh) if needs[1] else None,
            dc * f if needs[2] else None,
            MatMul.apply(d_pre, h, transpose_a=True) if needs[3] else None)


class LSTMLayer(Function):
    """One direction of one LSTM layer over a whole sequence, as a single op.

    Inputs: xg (T, N, 4H) = x W_ihᵀ + b_ih + b_hh for every step, h₀ (N, H), c₀ (N, H),
    W_hh (4H, H); keyword ``reverse``: run the steps in the order T-1, ..., 0 (the backward
    direction of a bidirectional layer; ``hs`` stays indexed by time). Outputs: hs (T, N, H),
    all hidden states, and the final h_T (N, H), c_T (N, H). Per step, as
    :class:`LSTMCellStep` (gates i, f, g, o):
    [i f g o] = [σ σ tanh σ](xgₜ + hₜ₋₁ W_hhᵀ);  cₜ = f·cₜ₋₁ + i·g;  hₜ = o·tanh(cₜ).

    Backward (BPTT), from the last step to the first, with ∂L/∂hₜ = (∂L/∂hs)ₜ + δhₜ (δh_T =
    ∂L/∂h_T) and δc_T = ∂L/∂c_T:  dc = δcₜ + ∂L/∂hₜ·o·(1 - tanh²cₜ);
    dpreₜ = [dc·g·i(1-i), dc·cₜ₋₁·f(1-f), dc·i·(1-g²), ∂L/∂hₜ·tanh(cₜ)·o(1-o)];
    δhₜ₋₁ = dpreₜ W_hh, δcₜ₋₁ = dc·f.  Then ∂L/∂xg = dpre (T, N, 4H), ∂L/∂h₀ = δh₀,
    ∂L/∂c₀ = δc₀, ∂L/∂W_hh = Σₜ dpreₜᵀ hₜ₋₁ (4H, H).

    Why one op for the layer: per-step ops cost T nodes, an Unbind and a Stack, and T small
    dW_hh products in backward; here the loop is plain NumPy on preallocated buffers and dW_hh is
    one GEMM over all steps. nn.LSTM uses it; LSTMCell keeps LSTMCellStep.
    """

    @staticmethod
    def forward(ctx, xg, h0, c0, w_hh, reverse=False):
        steps, batch, g4 = xg.shape
        if steps == 0:
            raise ShapeError(f"LSTMLayer: the input sequence is empty (shape {xg.shape})")
        n = g4 // 4
        dt = np.result_type(xg, h0, c0, w_hh)
        acts = np.empty((steps, batch, g4), dt)  # gate activations, in step order
        cs = np.empty((steps + 1, batch, n), dt)  # cs[k] = the cell state entering step k
        cs[0] = c0
        tcs = np.empty((steps, batch, n), dt)  # tanh(c) after each step
        hs = np.empty((steps, batch, n), dt)
        # step order: reversed views, so the loop below never indexes by direction
        xs, h_steps = (xg[::-1], hs[::-1]) if reverse else (xg, hs)
        fk = _kernels(xg, h0, c0, w_hh)
        if fk is not None:
            fk.lstm_forward(xg, h0, c0, w_hh, reverse, acts, cs, tcs, hs)
            h = h_steps[steps - 1]
        else:
            w_t = w_hh.T
            tmp = np.empty((batch, n), dt)
            gemm_threads(batch * w_hh.size)  # every step's product has this size
            h = h0
            for k in range(steps):
                a = acts[k]
                np.matmul(h, w_t, out=a)
                a += xs[k]
                _activate_gates(a, n)
                c = cs[k + 1]
                np.multiply(a[:, n : 2 * n], cs[k], out=c)
                np.multiply(a[:, :n], a[:, 2 * n : 3 * n], out=tmp)
                c += tmp
                np.tanh(c, out=tcs[k])
                h = h_steps[k]
                np.multiply(a[:, 3 * n :], tcs[k], out=h)
        ctx.reverse = reverse
        # acts, cs and tcs serve only the NumPy first-order path; the recorded path recomputes
        ctx.save_for_backward(xg, h0, c0, w_hh, hs, acts, cs, tcs)
        # copies: the outputs must not alias hs or a saved buffer
        return hs, h.copy(), cs[steps].copy()

    @staticmethod
    def backward(ctx, grad_hs, grad_h, grad_c):
        xg, h0, c0, w_hh, hs, acts, cs, tcs = ctx.saved_tensors
        needs = ctx.needs_input_grad
        reverse = ctx.reverse
        if _state.grad_enabled:
            return _lstm_layer_backward_recorded(xg, h0, c0, w_hh, grad_hs, grad_h, grad_c,
                                                 reverse, needs)
        a_all, c_all, t_all, w = acts.data, cs.data, tcs.data, w_hh.data
        steps, batch, g4 = a_all.shape
        n = g4 // 4
        dt = a_all.dtype
        dxg = np.empty((steps, batch, g4), dt)
        d_steps = dxg[::-1] if reverse else dxg
        gh_steps = None
        if grad_hs is not None:
            gh_steps = grad_hs.data[::-1] if reverse else grad_hs.data
        dh = np.zeros((batch, n), dt) if grad_h is None else np.array(grad_h.data, dt)
        dc = np.zeros((batch, n), dt) if grad_c is None else np.array(grad_c.data, dt)
        fk = _kernels(a_all, c_all, t_all, w)
        if fk is not None:
            fk.lstm_backward(a_all, c_all, t_all, w, _contiguous(grad_hs, dt), reverse,
                             needs[1], dxg, dh, dc)
        else:
            tmp = np.empty((batch, n), dt)
            gemm_threads(batch * w.size)
            for k in range(steps - 1, -1, -1):
                if gh_steps is not None:
                    dh += gh_steps[k]
                a, t, d = a_all[k], t_all[k], d_steps[k]  # d: a contiguous (N, 4H) row of dxg
                # dc += ∂L/∂hₜ·o·(1 - tanh²cₜ)
                np.multiply(t, t, out=tmp)
                np.subtract(1, tmp, out=tmp)
                tmp *= a[:, 3 * n :]
                tmp *= dh
                dc += tmp
                _gate_grads(a, c_all[k], t, dc, dh, d)  # d: this step's row of dxg
                dc *= a[:, n : 2 * n]
                np.matmul(d, w, out=dh)  # δhₜ₋₁ (at k = 0: ∂L/∂h₀)
        g_w = None
        if needs[3]:
            # dW_hh = Σₜ dpreₜᵀ hₜ₋₁ as one GEMM: every step but the first against hs shifted
            # by one step, plus the first step's product with h₀
            h_all = hs.data
            first, rest, prev = ((steps - 1, dxg[:-1], h_all[1:]) if reverse
                                 else (0, dxg[1:], h_all[:-1]))
            g_w = _blas.matmul(rest.reshape(-1, g4).T, prev.reshape(-1, n))
            g_w += dxg[first].T @ h0.data
        return (const(dxg) if needs[0] else None,
                const(dh) if needs[1] else None,
                const(dc) if needs[2] else None,
                const(g_w) if needs[3] else None)


def _lstm_layer_backward_recorded(xg, h0, c0, w_hh, grad_hs, grad_h, grad_c, reverse, needs):
    """LSTMLayer's backward in Tensor ops (higher order): the forward is re-run step by step
    with LSTMCellStep, so the states are functions of the inputs, and each step's recorded
    backward is chained from the last step to the first."""
    steps = xg.shape[0]
    xs = Unbind.apply(xg)
    order = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
    h_prev, c_prev = [h0], [c0]  # the states entering each step, in step order
    h, c = h0, c0
    for t in order[:-1]:
        h, c = LSTMCellStep.apply(xs[t], h, c, w_hh)
        h_prev.append(h)
        c_prev.append(c)
    gh = Unbind.apply(grad_hs) if grad_hs is not None else None
    dh, dc = grad_h, grad_c
    if dh is None:
        dh = const(np.zeros(h0.shape, h0.dtype))
    if dc is None:
        dc = const(np.zeros(c0.shape, c0.dtype))
    d_xs, g_w = [None] * steps, None
    for k in range(steps - 1, -1, -1):
        t = order[k]
        if gh is not None:
            dh = dh + gh[t]
        d_pre, dh, dc, g_wk = _lstm_step_backward_recorded(
            xs[t], h_prev[k], c_prev[k], w_hh, dh, dc, (True, True, True, needs[3]))
        d_xs[t] = d_pre
        if needs[3]:
            g_w = g_wk if g_w is None else g_w + g_wk
    return (Stack.apply(*d_xs) if needs[0] else None,
            dh if needs[1] else None,
            dc if needs[2] else None,
            g_w)


from backprop.ops.elementwise import SigmoidGrad, TanhGrad, sigmoid, tanh  # noqa: E402
from backprop.ops.linalg import MatMul  # noqa: E402
from backprop.ops.shape import cat  # noqa: E402
