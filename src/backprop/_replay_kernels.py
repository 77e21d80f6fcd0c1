"""First-order backward kernels on plain arrays, for ``backprop.compile``'s replayed tape.

A replayed step runs each node's own ``backward`` rule. For the ops that dominate small steps
(a dense layer, its activation, the loss) the rule's Tensor code costs more in Python than in
arithmetic, so here each has the same computation on arrays: the very ``Function.forward``
kernels the rule would apply, in the same order, on the same operands, so the results are equal
bit for bit (the compile tests compare every gradient with eager's byte for byte). A kernel is
used only when every input and output of the node has one floating dtype (no promotion rules to
repeat); any other case runs the rule.

``KERNELS[op class](ctx, needs, grad_out) -> tuple of gradient arrays (None where not needed)``.
"""

from __future__ import annotations

from math import prod

import numpy as np

from backprop.ops import activation as _act
from backprop.ops import elementwise as _ew
from backprop.ops import inplace as _inplace
from backprop.ops import linalg as _linalg
from backprop.ops import nn_ops as _nn
from backprop.ops import reduction as _red
from backprop.ops import shape as _shape
from backprop.ops._util import _SCRATCH, keepdim_shape


def _saved(ctx) -> tuple:
    return ctx._to_save


def _add(ctx, needs, g):
    return g, g


def _sub(ctx, needs, g):
    return g, (-g if needs[1] else None)


def _mul(ctx, needs, g):
    a, b = _saved(ctx)
    return (g * b if needs[0] else None), (g * a if needs[1] else None)


def _div(ctx, needs, g):
    a, b = _saved(ctx)
    return (g / b if needs[0] else None), ((-g) * a / (b * b) if needs[1] else None)


def _tanh(ctx, needs, g):
    (y,) = _saved(ctx)
    return (_ew.TanhGrad.forward(_SCRATCH, g, y),)


def _sigmoid(ctx, needs, g):
    (y,) = _saved(ctx)
    return (_ew.SigmoidGrad.forward(_SCRATCH, g, y),)


def _relu(ctx, needs, g):
    (y,) = _saved(ctx)
    return (_act.relu_grad_array(g, y),)


def _sum(ctx, needs, g):
    shape = ctx.x_shape
    if not ctx.keepdim:
        g = np.reshape(g, keepdim_shape(shape, ctx.dims))
    if prod(shape) > 4096:
        return (np.broadcast_to(g, shape),)
    # a small input: a filled copy costs less than broadcast_to's Python (the same values)
    out = np.empty(shape, g.dtype)
    np.copyto(out, g)
    return (out,)


def _mean(ctx, needs, g):
    g = g / ctx.n  # Mean.backward's Div, then Sum's broadcast
    if not ctx.keepdim:
        g = np.reshape(g, keepdim_shape(ctx.x_shape, ctx.dims))
    return (np.broadcast_to(g, ctx.x_shape),)


def _reshape(ctx, needs, g):
    return (g.reshape(ctx.x_shape),)


def _matmul(ctx, needs, g):
    a, b = _saved(ctx)
    if a.ndim < 2 or b.ndim < 2:
        return None  # the 1-D cases: run the rule
    return _linalg.matmul_grads(a, b, g, ctx.ta, ctx.tb, needs[0], needs[1])


def _addmm(ctx, needs, g):
    x, w = _saved(ctx)
    return _linalg.addmm_grads(x, w, g, *needs)


def _mse(ctx, needs, g):
    gx = _nn.mse_grad(ctx.d, g, ctx.scale)  # MseLoss.backward's first-order path
    return (gx if needs[0] else None), (-gx if needs[1] else None)


def _cross_entropy(ctx, needs, g):
    p = _nn.fast_cross_entropy_grad(ctx, g)
    return None if p is None else (p,)  # None: the NumPy rule's case, run by the rule


def _log_softmax(ctx, needs, g):
    (y,) = _saved(ctx)
    return (g - np.exp(y) * np.sum(g, axis=(ctx.dim,), keepdims=True),)


KERNELS = {
    _ew.Add: _add,
    _ew.Sub: _sub,
    _ew.Mul: _mul,
    _ew.Div: _div,
    _ew.Tanh: _tanh,
    _ew.Sigmoid: _sigmoid,
    _act.Relu: _relu,
    _inplace.ReluInplace: _relu,  # relu_ saves its result, as Relu does
    _red.Sum: _sum,
    _red.Mean: _mean,
    _linalg.MatMul: _matmul,
    _linalg.Addmm: _addmm,
    _nn.LogSoftmax: _log_softmax,
    _nn.MseLoss: _mse,
    _nn.CrossEntropy: _cross_entropy,
    _shape.Reshape: _reshape,
}
