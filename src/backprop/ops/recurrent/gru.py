"""The GRU op: ``GRULayer``, a layer's whole time loop in one op."""

from __future__ import annotations

import numpy as np

from backprop import _blas
from backprop._blas import gemm_threads
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _state
from backprop.errors import ShapeError
from backprop.ops._util import const
from backprop.ops.recurrent._common import Stack, Unbind, _contiguous, _kernels


class GRULayer(Function):
    """One direction of one GRU layer over a whole sequence, as a single op (PyTorch's gates
    r, z, n in that order).

    Inputs: xg (T, N, 3H) = x W_ihᵀ + b_ih for every step, h₀ (N, H), W_hh (3H, H), b_hh (3H,)
    or None; keyword ``reverse`` as :class:`LSTMLayer`'s. Outputs: hs (T, N, H), all hidden
    states, and the final h_T (N, H). Per step, with hg = hₜ₋₁ W_hhᵀ + b_hh = [hg_r hg_z hg_n]:
    r = σ(xg_r + hg_r);  z = σ(xg_z + hg_z);  n = tanh(xg_n + r·hg_n);  hₜ = (1 - z)·n + z·hₜ₋₁.

    Backward (BPTT), last step first, with ∂L/∂hₜ = (∂L/∂hs)ₜ + δhₜ (δh_T = ∂L/∂h_T):
    dn = ∂L/∂hₜ·(1 - z)·(1 - n²);  dz = ∂L/∂hₜ·(hₜ₋₁ - n)·z(1 - z);  dr = dn·hg_n·r(1 - r);
    ∂L/∂xgₜ = [dr dz dn];  ∂L/∂hgₜ = [dr dz dn·r];  δhₜ₋₁ = ∂L/∂hₜ·z + ∂L/∂hgₜ W_hh.
    Then ∂L/∂W_hh = Σₜ ∂L/∂hgₜᵀ hₜ₋₁ (one GEMM), ∂L/∂b_hh = Σₜ Σₙ ∂L/∂hgₜ, ∂L/∂h₀ = δh₀.

    Why one op: as LSTMLayer, a GRU step is about fifteen ops, T times over, and again in
    backward; here the loop is plain NumPy on preallocated buffers.
    """

    @staticmethod
    def forward(ctx, xg, h0, w_hh, b_hh=None, reverse=False):
        steps, batch, g3 = xg.shape
        if steps == 0:
            raise ShapeError(f"GRULayer: the input sequence is empty (shape {xg.shape})")
        n = g3 // 3
        dt = np.result_type(xg, h0, w_hh)
        gates = np.empty((steps, batch, g3), dt)  # r, z (activated) and n, in step order
        hgn = np.empty((steps, batch, n), dt)  # hₜ₋₁ W_hnᵀ + b_hn of each step
        h_prev = np.empty((steps, batch, n), dt)  # the state entering each step
        hs = np.empty((steps, batch, n), dt)
        xs, h_steps = (xg[::-1], hs[::-1]) if reverse else (xg, hs)
        fk = _kernels(xg, h0, w_hh, *(() if b_hh is None else (b_hh,)))
        if fk is not None:
            fk.gru_forward(xg, h0, w_hh, b_hh, reverse, gates, hgn, h_prev, hs)
            h = h_steps[steps - 1]
        else:
            w_t = w_hh.T
            hg = np.empty((batch, g3), dt)
            gemm_threads(batch * w_hh.size)  # every step's product has this size
            h = h0
            for k in range(steps):
                h_prev[k] = h
                np.matmul(h, w_t, out=hg)
                if b_hh is not None:
                    hg += b_hh
                a, x = gates[k], xs[k]
                rz = a[:, : 2 * n]
                np.add(x[:, : 2 * n], hg[:, : 2 * n], out=rz)
                rz *= 0.5  # σ(v) = (1 + tanh(v/2)) / 2: one tanh pass, never overflows
                np.tanh(rz, out=rz)
                rz *= 0.5
                rz += 0.5
                hgn[k] = hg[:, 2 * n :]
                cand = a[:, 2 * n :]
                np.multiply(a[:, :n], hgn[k], out=cand)
                cand += x[:, 2 * n :]
                np.tanh(cand, out=cand)
                h = h_steps[k]
                np.subtract(h_prev[k], cand, out=h)  # h = n + z·(hₜ₋₁ - n)
                h *= a[:, n : 2 * n]
                h += cand
        ctx.reverse = reverse
        ctx.has_bias = b_hh is not None
        # gates, hgn and h_prev serve only the NumPy first-order path; the recorded path
        # recomputes them from the inputs
        ctx.save_for_backward(xg, h0, w_hh, gates, hgn, h_prev,
                              *(() if b_hh is None else (b_hh,)))
        return hs, h.copy()  # a copy: the final state must not alias hs

    @staticmethod
    def backward(ctx, grad_hs, grad_h):
        saved = ctx.saved_tensors
        xg, h0, w_hh, gates, hgn, h_prev = saved[:6]
        b_hh = saved[6] if ctx.has_bias else None
        needs = ctx.needs_input_grad
        if _state.grad_enabled:
            return _gru_layer_backward_recorded(xg, h0, w_hh, b_hh, grad_hs, grad_h,
                                                ctx.reverse, needs)
        a_all, hn_all, hp_all, w = gates.data, hgn.data, h_prev.data, w_hh.data
        steps, batch, g3 = a_all.shape
        n = g3 // 3
        dt = a_all.dtype
        dxg = np.empty((steps, batch, g3), dt)
        dhg = np.empty((steps, batch, g3), dt)  # ∂L/∂hg, in step order (as h_prev)
        d_steps = dxg[::-1] if ctx.reverse else dxg
        gh_steps = None
        if grad_hs is not None:
            gh_steps = grad_hs.data[::-1] if ctx.reverse else grad_hs.data
        dh = np.zeros((batch, n), dt) if grad_h is None else np.array(grad_h.data, dt)
        fk = _kernels(a_all, hn_all, hp_all, w)
        if fk is not None:
            fk.gru_backward(a_all, hn_all, hp_all, w, _contiguous(grad_hs, dt), ctx.reverse, dxg,
                            dhg, dh)
        else:
            tmp = np.empty((batch, n), dt)
            back = np.empty((batch, n), dt)
            gemm_threads(batch * w.size)
            for k in range(steps - 1, -1, -1):
                if gh_steps is not None:
                    dh += gh_steps[k]
                a, d, e = a_all[k], d_steps[k], dhg[k]
                r, z, cand = a[:, :n], a[:, n : 2 * n], a[:, 2 * n :]
                dr, dz, dn = d[:, :n], d[:, n : 2 * n], d[:, 2 * n :]
                np.subtract(1, z, out=dn)  # dn = ∂L/∂hₜ·(1 - z)·(1 - n²)
                dn *= dh
                np.multiply(cand, cand, out=tmp)
                np.subtract(1, tmp, out=tmp)
                dn *= tmp
                np.subtract(hp_all[k], cand, out=dz)  # dz = ∂L/∂hₜ·(hₜ₋₁ - n)·z(1 - z)
                dz *= dh
                np.subtract(1, z, out=tmp)
                tmp *= z
                dz *= tmp
                np.multiply(dn, hn_all[k], out=dr)  # dr = dn·hg_n·r(1 - r)
                np.subtract(1, r, out=tmp)
                tmp *= r
                dr *= tmp
                e[:, : 2 * n] = d[:, : 2 * n]
                np.multiply(dn, r, out=e[:, 2 * n :])
                dh *= z  # δhₜ₋₁ = ∂L/∂hₜ·z + ∂L/∂hg W_hh
                np.matmul(e, w, out=back)
                dh += back
        g_w = g_b = None
        flat = dhg.reshape(-1, g3)
        if needs[2]:
            g_w = _blas.matmul(flat.T, hp_all.reshape(-1, n))
        if b_hh is not None and needs[3]:
            g_b = flat.sum(0)
        return (const(dxg) if needs[0] else None,
                const(dh) if needs[1] else None,
                const(g_w) if g_w is not None else None,
                const(g_b) if g_b is not None else None)


def _gru_layer_backward_recorded(xg, h0, w_hh, b_hh, grad_hs, grad_h, reverse, needs):
    """GRULayer's backward in Tensor ops (higher order): the forward is re-run step by step
    from the inputs, so every quantity is a function of them, then the formulas of the class
    docstring are applied from the last step to the first."""
    steps, n = xg.shape[0], h0.shape[1]
    xs = Unbind.apply(xg)
    order = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
    h, cache = h0, []
    for t in order:
        hg = MatMul.apply(h, w_hh, transpose_b=True)
        if b_hh is not None:
            hg = hg + b_hh
        x = xs[t]
        r = sigmoid(x[:, :n] + hg[:, :n])
        z = sigmoid(x[:, n : 2 * n] + hg[:, n : 2 * n])
        hg_n = hg[:, 2 * n :]
        cand = tanh(x[:, 2 * n :] + r * hg_n)
        cache.append((h, r, z, cand, hg_n))
        h = cand + z * (h - cand)
    gh = Unbind.apply(grad_hs) if grad_hs is not None else None
    dh = grad_h if grad_h is not None else const(np.zeros(h0.shape, h0.dtype))
    d_xs, g_w, g_b = [None] * steps, None, None
    for k in range(steps - 1, -1, -1):
        t = order[k]
        if gh is not None:
            dh = dh + gh[t]
        h_prev, r, z, cand, hg_n = cache[k]
        dn = TanhGrad.apply(dh * (1 - z), cand)
        dz = SigmoidGrad.apply(dh * (h_prev - cand), z)
        dr = SigmoidGrad.apply(dn * hg_n, r)
        d_xs[t] = cat([dr, dz, dn], 1)
        dhg = cat([dr, dz, dn * r], 1)
        if needs[2]:
            g_wk = MatMul.apply(dhg, h_prev, transpose_a=True)
            g_w = g_wk if g_w is None else g_w + g_wk
        if b_hh is not None and needs[3]:
            g_bk = dhg.sum(0)
            g_b = g_bk if g_b is None else g_b + g_bk
        dh = dh * z + MatMul.apply(dhg, w_hh)
    return (Stack.apply(*d_xs) if needs[0] else None,
            dh if needs[1] else None,
            g_w,
            g_b)


from backprop.ops.elementwise import SigmoidGrad, TanhGrad, sigmoid, tanh  # noqa: E402
from backprop.ops.linalg import MatMul  # noqa: E402
from backprop.ops.shape import cat  # noqa: E402
