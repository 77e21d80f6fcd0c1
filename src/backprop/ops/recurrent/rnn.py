"""The Elman RNN op: ``RNNLayer`` (tanh or relu), a layer's whole time loop in one op."""

from __future__ import annotations

import numpy as np

from backprop import _blas
from backprop._blas import gemm_threads
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _state
from backprop.errors import ShapeError
from backprop.ops._util import const
from backprop.ops.recurrent._common import Stack, Unbind, _contiguous, _kernels


class RNNLayer(Function):
    """One direction of one Elman RNN layer over a whole sequence, as a single op.

    Inputs: xg (T, N, H) = x W_ihᵀ + b_ih + b_hh for every step, h₀ (N, H), W_hh (H, H);
    keywords ``nonlinearity`` ("tanh" or "relu") and ``reverse`` (as :class:`LSTMLayer`'s).
    Outputs: hs (T, N, H) and the final h_T (N, H). Per step: hₜ = act(xgₜ + hₜ₋₁ W_hhᵀ).

    Backward (BPTT), last step first, with ∂L/∂hₜ = (∂L/∂hs)ₜ + δhₜ (δh_T = ∂L/∂h_T):
    dpreₜ = ∂L/∂hₜ·act'(hₜ) (tanh: 1 - hₜ², relu: [hₜ > 0]);  ∂L/∂xgₜ = dpreₜ;
    δhₜ₋₁ = dpreₜ W_hh.  Then ∂L/∂W_hh = Σₜ dpreₜᵀ hₜ₋₁ (one GEMM), ∂L/∂h₀ = δh₀.
    """

    @staticmethod
    def forward(ctx, xg, h0, w_hh, nonlinearity="tanh", reverse=False):
        steps, batch, n = xg.shape
        if steps == 0:
            raise ShapeError(f"RNNLayer: the input sequence is empty (shape {xg.shape})")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNLayer: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        dt = np.result_type(xg, h0, w_hh)
        hs = np.empty((steps, batch, n), dt)
        xs, h_steps = (xg[::-1], hs[::-1]) if reverse else (xg, hs)
        fk = _kernels(xg, h0, w_hh)
        if fk is not None:
            fk.rnn_forward(xg, h0, w_hh, nonlinearity == "relu", reverse, hs)
            h = h_steps[steps - 1]
        else:
            w_t = w_hh.T
            gemm_threads(batch * w_hh.size)
            h = h0
            for k in range(steps):
                out = h_steps[k]
                np.matmul(h, w_t, out=out)
                out += xs[k]
                if nonlinearity == "tanh":
                    np.tanh(out, out=out)
                else:
                    np.maximum(out, 0, out=out)
                h = out
        ctx.reverse, ctx.nonlinearity = reverse, nonlinearity
        # hs is an output, saved as one: the derivative comes from it
        ctx.save_for_backward(xg, h0, w_hh, hs)
        return hs, h.copy()  # a copy: the final state must not alias hs

    @staticmethod
    def backward(ctx, grad_hs, grad_h):
        xg, h0, w_hh, hs = ctx.saved_tensors
        needs, reverse, act = ctx.needs_input_grad, ctx.reverse, ctx.nonlinearity
        if _state.grad_enabled:
            return _rnn_layer_backward_recorded(xg, h0, w_hh, grad_hs, grad_h, act, reverse,
                                                needs)
        h_all, w = hs.data, w_hh.data
        steps, batch, n = h_all.shape
        dt = h_all.dtype
        dxg = np.empty((steps, batch, n), dt)
        # step order: reversed views, as in forward; h_prev[k] is the state entering step k
        d_steps, h_steps = (dxg[::-1], h_all[::-1]) if reverse else (dxg, h_all)
        gh_steps = None
        if grad_hs is not None:
            gh_steps = grad_hs.data[::-1] if reverse else grad_hs.data
        dh = np.zeros((batch, n), dt) if grad_h is None else np.array(grad_h.data, dt)
        fk = _kernels(h_all, w)
        if fk is not None:
            fk.rnn_backward(h_all, w, _contiguous(grad_hs, dt), act == "relu", reverse, needs[1],
                            dxg, dh)
        else:
            gemm_threads(batch * w.size)
            for k in range(steps - 1, -1, -1):
                if gh_steps is not None:
                    dh += gh_steps[k]
                h, d = h_steps[k], d_steps[k]
                if act == "tanh":
                    np.multiply(h, h, out=d)
                    np.subtract(1, d, out=d)
                    d *= dh
                else:
                    np.multiply(dh, h > 0, out=d)
                np.matmul(d, w, out=dh)  # δhₜ₋₁ (at k = 0: ∂L/∂h₀)
        g_w = None
        if needs[2]:
            first, rest, prev = ((steps - 1, dxg[:-1], h_all[1:]) if reverse
                                 else (0, dxg[1:], h_all[:-1]))
            g_w = _blas.matmul(rest.reshape(-1, n).T, prev.reshape(-1, n))
            g_w += dxg[first].T @ h0.data
        return (const(dxg) if needs[0] else None,
                const(dh) if needs[1] else None,
                const(g_w) if g_w is not None else None)


def _rnn_layer_backward_recorded(xg, h0, w_hh, grad_hs, grad_h, act, reverse, needs):
    """RNNLayer's backward in Tensor ops (higher order), the states recomputed from the
    inputs step by step."""
    steps = xg.shape[0]
    xs = Unbind.apply(xg)
    order = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
    f = tanh if act == "tanh" else relu
    h, h_prev, h_new = h0, [], []
    for t in order:
        h_prev.append(h)
        h = f(xs[t] + MatMul.apply(h, w_hh, transpose_b=True))
        h_new.append(h)
    gh = Unbind.apply(grad_hs) if grad_hs is not None else None
    dh = grad_h if grad_h is not None else const(np.zeros(h0.shape, h0.dtype))
    d_xs, g_w = [None] * steps, None
    for k in range(steps - 1, -1, -1):
        t = order[k]
        if gh is not None:
            dh = dh + gh[t]
        if act == "tanh":
            d = TanhGrad.apply(dh, h_new[k])
        else:
            d = dh * const((h_new[k].data > 0).astype(h_new[k].dtype))
        d_xs[t] = d
        if needs[2]:
            g_wk = MatMul.apply(d, h_prev[k], transpose_a=True)
            g_w = g_wk if g_w is None else g_w + g_wk
        dh = MatMul.apply(d, w_hh)
    return (Stack.apply(*d_xs) if needs[0] else None,
            dh if needs[1] else None,
            g_w)


from backprop.ops.activation import relu  # noqa: E402
from backprop.ops.elementwise import TanhGrad, tanh  # noqa: E402
from backprop.ops.linalg import MatMul  # noqa: E402
