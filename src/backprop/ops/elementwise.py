"""Elementwise primitives: forward in NumPy, backward in Tensor ops, one class per op. Here the
arithmetic, comparisons, selection and copies; the unary functions (exp, log, tanh, σ, ...) live
in ``ops.unary`` and are re-exported.

Each class docstring gives the forward formula and every partial derivative: that line is the
specification the gradient checks verify.
"""

from __future__ import annotations

import math

import numpy as np

from backprop.autograd.function import Function
from backprop.ops._util import const
from backprop.ops.unary import (  # noqa: F401 -- the unary ops, one import path with the rest
    Abs,
    Cos,
    Erf,
    Exp,
    Log,
    Log1p,
    Sigmoid,
    SigmoidGrad,
    Sin,
    Sqrt,
    Tanh,
    TanhGrad,
    _erf,
    abs,
    cos,
    erf,
    exp,
    log,
    log1p,
    sigmoid,
    sin,
    sqrt,
    tanh,
)
from backprop.tensor import Tensor, _raw, _resolve_dtype

# --- arithmetic ---


class Add(Function):
    """y = a + b;  ∂y/∂a = 1, ∂y/∂b = 1."""

    broadcasts = True

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, grad_out


class Sub(Function):
    """y = a - b;  ∂y/∂a = 1, ∂y/∂b = -1."""

    broadcasts = True

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, (-grad_out if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """y = a · b;  ∂y/∂a = b, ∂y/∂b = a."""

    broadcasts = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (grad_out * b if need_a else None), (grad_out * a if need_b else None)


class Div(Function):
    """y = a / b;  ∂y/∂a = 1/b, ∂y/∂b = -a/b²."""

    broadcasts = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_out / b if need_a else None
        grad_b = -grad_out * a / (b * b) if need_b else None
        return grad_a, grad_b


class Neg(Function):
    """y = -x;  ∂y/∂x = -1."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad_out):
        return -grad_out


class Pow(Function):
    """y = a ** b;  ∂y/∂a = b · a^(b-1) (0 where a = b = 0), ∂y/∂b = y · ln(a) (0 where a = 0)."""

    broadcasts = True

    @staticmethod
    def forward(ctx, a, b):
        y = a**b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        a, b, y = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            # at a = b = 0, b·a^(b-1) is 0·∞ = NaN, but y = a⁰ = 1 is constant in a: use the
            # exponent 0 there, giving 0·1 = 0 with no infinity in the graph at any order
            if isinstance(b, Tensor):
                zero = (b.data == 0) & (_raw(a) == 0)
                e = where(const(zero), 0.0, b - 1) if zero.any() else b - 1
            else:
                e = 0 if b == 0 else b - 1
            if isinstance(e, Tensor) or e != 1:
                grad_a = grad_out * b * a**e
            else:
                grad_a = grad_out * (a * b)  # x²: skip computing a ** 1
        if need_b:
            if isinstance(a, Tensor):
                log_a = where(const(a.data == 0), 0.0, log(where(const(a.data == 0), 1.0, a)))
            else:
                log_a = math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
            grad_b = grad_out * y * log_a
        return grad_a, grad_b


# --- comparisons and selection ---


class Clamp(Function):
    """y = min(max(x, lo), hi);  ∂y/∂x = 1 where lo ≤ x ≤ hi, else 0."""

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = min, max
        return np.clip(x, min, max)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        inside = np.ones(x.shape, dtype=bool)
        if ctx.lo is not None:
            inside &= x.data >= ctx.lo
        if ctx.hi is not None:
            inside &= x.data <= ctx.hi
        return grad_out * const(inside)


class Maximum(Function):
    """y = max(a, b);  ∂y/∂a = 1 where a > b, ½ where a = b, else 0 (and symmetrically for b)."""

    broadcasts = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        return _select_grads(ctx, grad_out, _raw(a) > _raw(b), _raw(a) == _raw(b))


class Minimum(Function):
    """y = min(a, b);  ∂y/∂a = 1 where a < b, ½ where a = b, else 0 (and symmetrically for b)."""

    broadcasts = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        return _select_grads(ctx, grad_out, _raw(a) < _raw(b), _raw(a) == _raw(b))


def _select_grads(ctx, grad_out, a_wins, tie):
    dtype = grad_out.dtype
    weight_a = np.asarray(a_wins, dtype=dtype) + np.asarray(tie, dtype=dtype) * 0.5
    need_a, need_b = ctx.needs_input_grad
    grad_a = grad_out * const(weight_a) if need_a else None
    grad_b = grad_out * const(1 - weight_a) if need_b else None
    return grad_a, grad_b


class Where(Function):
    """y = a where cond else b;  ∂y/∂a = cond, ∂y/∂b = not cond (cond gets no gradient)."""

    broadcasts = True

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = np.asarray(cond, dtype=bool)
        return np.where(ctx.cond, a, b)

    @staticmethod
    def backward(ctx, grad_out):
        _, need_a, need_b = ctx.needs_input_grad
        grad_a = where(ctx.cond, grad_out, 0.0) if need_a else None
        grad_b = where(ctx.cond, 0.0, grad_out) if need_b else None
        return None, grad_a, grad_b


# --- copies and casts ---


class Clone(Function):
    """y = x (a copy with its own memory);  ∂y/∂x = 1."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out


class ToDtype(Function):
    """y = x cast to a dtype;  ∂y/∂x = 1, cast back to x's dtype (no gradient to integers)."""

    label = "ToCopy"
    sets_dtype = True

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.x_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad_out):
        return to_dtype(grad_out, ctx.x_dtype)


# --- functional wrappers ---


def add(input, other, *, alpha=1) -> Tensor:
    """Elementwise ``input + alpha * other`` with broadcasting. Shapes: broadcast(a, b)."""
    return Add.apply(input, other if alpha == 1 else mul(other, alpha))


def sub(input, other, *, alpha=1) -> Tensor:
    """Elementwise ``input - alpha * other`` with broadcasting."""
    return Sub.apply(input, other if alpha == 1 else mul(other, alpha))


def mul(input, other) -> Tensor:
    """Elementwise product with broadcasting."""
    return Mul.apply(input, other)


def div(input, other) -> Tensor:
    """Elementwise true division with broadcasting."""
    return Div.apply(input, other)


def neg(input) -> Tensor:
    """Elementwise negation."""
    return Neg.apply(input)


def pow(input, exponent) -> Tensor:
    """Elementwise ``input ** exponent``; either may be a Tensor or a number."""
    return Pow.apply(input, exponent)


def clamp(input, min=None, max=None) -> Tensor:
    """Clamp to [min, max]; either bound may be None, a number or a Tensor."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    return Clamp.apply(input, min=min, max=max)


clip = clamp


def maximum(input, other) -> Tensor:
    """Elementwise maximum with broadcasting (ties split the gradient evenly)."""
    return Maximum.apply(input, other)


def minimum(input, other) -> Tensor:
    """Elementwise minimum with broadcasting (ties split the gradient evenly)."""
    return Minimum.apply(input, other)


def where(condition, input, other) -> Tensor:
    """Elementwise ``input`` where ``condition`` is true, else ``other`` (all broadcast)."""
    return Where.apply(condition, input, other)


def masked_fill(input, mask, value) -> Tensor:
    """``input`` with ``value`` wherever ``mask`` (broadcast to input's shape) is true."""
    return where(mask, value, input)


def clone(input) -> Tensor:
    """A differentiable copy with its own memory."""
    return Clone.apply(input)


def to_dtype(input, dtype) -> Tensor:
    """Cast to ``dtype``; differentiable between floating dtypes."""
    dtype = _resolve_dtype(dtype)
    if input.data.dtype == dtype:
        return input
    return ToDtype.apply(input, dtype=dtype)
