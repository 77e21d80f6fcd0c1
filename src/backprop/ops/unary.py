"""Unary elementwise primitives: exponentials and logarithms, roots and absolute value, the
trigonometric and hyperbolic functions, σ and erf (forward in NumPy, backward in Tensor ops, one
class per op), with their functional forms. ``ops.elementwise`` re-exports every name.

Each class docstring gives the forward formula and the derivative: that line is the
specification the gradient checks verify.
"""

from __future__ import annotations

import math

import numpy as np

from backprop.autograd.function import Function
from backprop.ops._util import const, first_order, kernel
from backprop.tensor import Tensor

# --- exponentials and logarithms ---


class Exp(Function):
    """y = eˣ;  ∂y/∂x = y.  Saves the output: the gradient is free from it."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * y


class Log(Function):
    """y = ln x;  ∂y/∂x = 1/x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out / x


class Log1p(Function):
    """y = ln(1 + x), accurate for small x;  ∂y/∂x = 1/(1 + x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log1p(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out / (x + 1)


class Sqrt(Function):
    """y = √x;  ∂y/∂x = 1/(2y).  Saves the output."""

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out / (y * 2)


class Abs(Function):
    """y = |x|;  ∂y/∂x = sign(x) (0 at x = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * const(np.sign(x.data))


# --- trigonometric and hyperbolic ---


class Sin(Function):
    """y = sin x;  ∂y/∂x = cos x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * cos(x)


class Cos(Function):
    """y = cos x;  ∂y/∂x = -sin x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return -grad_out * sin(x)


class Tanh(Function):
    """y = tanh x;  ∂y/∂x = 1 - y².  A primitive because the gradient reuses the output."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        if first_order():  # TanhGrad's kernel on arrays (see ops._util.first_order)
            return kernel(TanhGrad, grad_out.data, y.data)
        return TanhGrad.apply(grad_out, y)


class TanhGrad(Function):
    """z = g·(1 - y²), tanh's backward as one op (3 ops composed);  ∂z/∂g = 1 - y², ∂z/∂y = -2gy.
    Fused for speed: it runs in every backward pass through tanh."""

    broadcasts = True

    @staticmethod
    def forward(ctx, g, y):
        ctx.save_for_backward(g, y)
        return g * (1 - y * y)

    @staticmethod
    def backward(ctx, grad_out):
        g, y = ctx.saved_tensors
        need_g, need_y = ctx.needs_input_grad
        grad_g = TanhGrad.apply(grad_out, y) if need_g else None
        grad_y = grad_out * g * y * -2 if need_y else None
        return grad_g, grad_y


class Sigmoid(Function):
    """y = 1/(1 + e⁻ˣ);  ∂y/∂x = y(1 - y).  A primitive: the gradient reuses the output."""

    @staticmethod
    def forward(ctx, x):
        # e^{-|x|} never overflows; both branches keep full relative precision in the tails
        e = np.exp(-np.abs(x))
        r = 1 / (1 + e)
        y = np.where(x >= 0, r, e * r)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        if first_order():  # SigmoidGrad's kernel on arrays (see ops._util.first_order)
            return kernel(SigmoidGrad, grad_out.data, y.data)
        return SigmoidGrad.apply(grad_out, y)


class SigmoidGrad(Function):
    """z = g·y(1 - y), sigmoid's backward as one op;  ∂z/∂g = y(1 - y), ∂z/∂y = g(1 - 2y).
    Fused for speed: it runs in every backward pass through sigmoid."""

    broadcasts = True

    @staticmethod
    def forward(ctx, g, y):
        ctx.save_for_backward(g, y)
        return g * (y * (1 - y))

    @staticmethod
    def backward(ctx, grad_out):
        g, y = ctx.saved_tensors
        need_g, need_y = ctx.needs_input_grad
        grad_g = SigmoidGrad.apply(grad_out, y) if need_g else None
        grad_y = grad_out * g * (1 - y * 2) if need_y else None
        return grad_g, grad_y


# erf: NumPy has none. A Taylor series (|x| < 2.5) and a continued fraction for erfc (|x| >= 2.5)
# give double precision everywhere (checked against math.erf in the tests).
_ERF_TAYLOR = np.array(
    [(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(48)][::-1]
) * (2 / math.sqrt(math.pi))


def _erf(x: np.ndarray) -> np.ndarray:
    x64 = np.asarray(x, dtype=np.float64)
    ax = np.abs(x64)
    out = np.empty_like(x64)
    small = ax < 2.5
    xs = x64[small]
    x2 = xs * xs
    acc = np.zeros_like(xs)
    for c in _ERF_TAYLOR:
        acc = acc * x2 + c
    out[small] = acc * xs
    big = ~small
    if big.any():
        xb = ax[big]
        # erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up
        frac = np.zeros_like(xb)
        for k in range(60, 0, -1):
            frac = (k / 2) / (xb + frac)
        erfc = np.exp(-xb * xb) / math.sqrt(math.pi) / (xb + frac)
        out[big] = np.sign(x64[big]) * (1 - erfc)
    dtype = np.asarray(x).dtype
    return out.astype(dtype, copy=False) if dtype.kind == "f" else out


class Erf(Function):
    """y = erf x;  ∂y/∂x = (2/√π) e^(-x²)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _erf(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * (exp(-(x * x)) * (2 / math.sqrt(math.pi)))


# --- functional wrappers ---


def exp(input) -> Tensor:
    """Elementwise eˣ. Shape: any -> same."""
    return Exp.apply(input)


def log(input) -> Tensor:
    """Elementwise natural logarithm."""
    return Log.apply(input)


def log1p(input) -> Tensor:
    """Elementwise ln(1 + x), accurate for small x."""
    return Log1p.apply(input)


def sqrt(input) -> Tensor:
    """Elementwise square root."""
    return Sqrt.apply(input)


def abs(input) -> Tensor:
    """Elementwise absolute value."""
    return Abs.apply(input)


def sin(input) -> Tensor:
    """Elementwise sine."""
    return Sin.apply(input)


def cos(input) -> Tensor:
    """Elementwise cosine."""
    return Cos.apply(input)


def tanh(input) -> Tensor:
    """Elementwise hyperbolic tangent. Shape: any -> same.

    Example:
        >>> import backprop as bp
        >>> bp.tanh(bp.tensor([0.0, 100.0]))
        tensor([0., 1.])
    """
    return Tanh.apply(input)


def sigmoid(input) -> Tensor:
    """Elementwise logistic function 1/(1 + e⁻ˣ), without overflow for any input.

    Example:
        >>> import backprop as bp
        >>> bp.sigmoid(bp.tensor([-1000.0, 0.0, 1000.0]))
        tensor([0. , 0.5, 1. ])
    """
    return Sigmoid.apply(input)


def erf(input) -> Tensor:
    """Elementwise error function."""
    return Erf.apply(input)
