"""Recurrent kernels: the fused LSTM time step and the split of a sequence into its steps.

Both exist for speed: a recurrent layer runs them once per time step, so every op saved there is
saved T times in forward and again in backward (STYLE §10: per-op overhead is the enemy).

Their backward is differentiable: while a graph is being recorded (``create_graph=True``) it is
written in Tensor ops; otherwise (first order, nothing is recorded) the very same formulas run
in NumPy, which is only faster, never different.
"""

from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _state
from backprop.ops._util import const
from backprop.tensor import Tensor


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
        act += xg
        # one tanh pass over all gates: σ(x) = (1 + tanh(x/2)) / 2 (exact, never overflows)
        sig = (act[:, : 2 * n], act[:, 3 * n :])
        for part in sig:
            part *= 0.5
        np.tanh(act, out=act)
        for part in sig:
            part *= 0.5
            part += 0.5
        i, f, g, o = act[:, :n], act[:, n : 2 * n], act[:, 2 * n : 3 * n], act[:, 3 * n :]
        c_new = f * c
        c_new += i * g
        tc = np.tanh(c_new)
        # act and tanh(c') serve only the NumPy first-order path; the recorded path recomputes
        ctx.save_for_backward(xg, h, c, w_hh, act, tc)
        return o * tc, c_new

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        xg, h, c, w_hh, act, tc = ctx.saved_tensors
        need_xg, need_h, need_c, need_w = ctx.needs_input_grad
        if _state.grad_enabled:
            return _lstm_step_backward_recorded(xg, h, c, w_hh, grad_h, grad_c,
                                                ctx.needs_input_grad)
        n = h.shape[1]
        a, t, gh, gc = act.data, tc.data, grad_h.data, grad_c.data
        i, f, g, o = a[:, :n], a[:, n : 2 * n], a[:, 2 * n : 3 * n], a[:, 3 * n :]
        dc = t * t
        np.subtract(1, dc, out=dc)
        dc *= o
        dc *= gh
        dc += gc
        # σ' = σ(1 - σ) for i, f, o and tanh' = 1 - g² for g, in one pass: d_pre = a - a² there
        d_pre = a * a
        np.subtract(a, d_pre, out=d_pre)
        dg = d_pre[:, 2 * n : 3 * n]
        np.subtract(1, g * g, out=dg)
        d_pre[:, :n] *= g
        d_pre[:, n : 2 * n] *= c.data
        dg *= i
        d_pre.reshape(-1, 4, n)[:, :3] *= dc[:, None]  # a view: d_pre is contiguous
        d_pre[:, 3 * n :] *= t
        d_pre[:, 3 * n :] *= gh
        return (const(d_pre) if need_xg else None,
                const(d_pre @ w_hh.data) if need_h else None,
                const(dc * f) if need_c else None,
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


class Unbind(Function):
    """(y₀, ..., y_{T-1}) = (x[0], ..., x[T-1]);  ∂L/∂x = stack(∂L/∂y₀, ..., ∂L/∂y_{T-1}).
    One op for the whole sequence: T getitems would each scatter into a full-size zero array."""

    @staticmethod
    def forward(ctx, x):
        return tuple(x[t] for t in range(x.shape[0]))

    @staticmethod
    def backward(ctx, *grads):
        if _state.grad_enabled:
            return Stack.apply(*grads)
        return const(np.stack([g.data for g in grads]))


class Stack(Function):
    """y = stack(x₀, ..., x_{T-1}) along a new first dimension;  ∂L/∂xₜ = (∂L/∂y)[t].
    Unbind's adjoint, one op: the composite is T unsqueezes and a cat, each with a backward."""

    @staticmethod
    def forward(ctx, *xs):
        return np.stack(xs)

    @staticmethod
    def backward(ctx, grad_out):
        if _state.grad_enabled:
            return Unbind.apply(grad_out)
        g = grad_out.data
        return tuple(const(g[t]) for t in range(g.shape[0]))


def unbind(input: Tensor, dim: int = 0) -> tuple:
    """The slices of ``input`` along ``dim`` (PyTorch's ``unbind``); one op for all of them.

    Shapes: (T, *rest) -> T tensors of shape rest (for dim=0).

    Example:
        >>> import backprop as bp
        >>> [t.shape for t in bp.ops.recurrent.unbind(bp.zeros(3, 2))]
        [(2,), (2,), (2,)]
    """
    if dim != 0:
        input = movedim0(input, dim)
    return Unbind.apply(input)


def movedim0(input: Tensor, dim: int) -> Tensor:
    d = dim % input.ndim
    order = (d,) + tuple(k for k in range(input.ndim) if k != d)
    return permute(input, order)


from backprop.ops.elementwise import SigmoidGrad, TanhGrad, sigmoid, tanh  # noqa: E402
from backprop.ops.linalg import MatMul  # noqa: E402
from backprop.ops.shape import cat, permute  # noqa: E402
