"""Activation functions: ReLU, LeakyReLU, ELU, GELU and Softplus (σ and tanh, which are also
functions of their own, stay in ``elementwise``). Each a primitive whose gradient reuses the
output or a mask; the functional forms at the end."""

from __future__ import annotations

import math

import numpy as np

from backprop import _fast
from backprop.autograd.function import Function
from backprop.ops._util import const, first_order
from backprop.ops.elementwise import _erf, erf, exp, sigmoid, tanh, where
from backprop.tensor import Tensor

_FAST_MIN = 4096
"""Elements from which ReLU takes the fast path's kernels (below, numba's dispatch costs about
what the kernel saves)."""


def _dense(*arrays):
    """1-D views of the arrays' memory when each is one dense block laid out alike (C order, or
    one permutation of the axes, as a convolution's channel-major output), of one float dtype
    the kernels take (``_fast.suits``); else None. Elementwise kernels then run over memory in
    order, whatever the axis order."""
    strides = arrays[0].strides
    if any(getattr(x, "strides", None) != strides for x in arrays):
        return None
    if not arrays[0].flags.c_contiguous:
        order = sorted(range(arrays[0].ndim), key=lambda d: -strides[d])
        arrays = [x.transpose(order) for x in arrays]
    if not _fast.suits(*arrays):  # gaps, negative strides, or another dtype
        return None
    return [x.reshape(-1) for x in arrays]


def relu_array(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0) on an array (into ``out`` if given, which may be x itself), in x's memory
    layout: the fast path's one-pass kernel when it applies (the same bits as
    ``np.maximum(x, 0)``), else NumPy."""
    if x.size >= _FAST_MIN:
        fk = _fast.kernels("activation")
        if fk is not None:
            target = np.empty_like(x) if out is None else out
            flat = _dense(x, target)
            if flat is not None:
                fk.relu(flat[0], flat[1])
                return target
    return np.maximum(x, 0, out=out)


def relu_grad_array(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g · (y > 0) on arrays (ReLU's backward from its saved output y): the fast path's
    one-pass kernel when it applies (the same bits), else NumPy's two passes."""
    if g.size >= _FAST_MIN and g.shape == y.shape:
        fk = _fast.kernels("activation")
        if fk is not None:
            out = np.empty_like(g)
            flat = _dense(g, y, out)
            if flat is not None:
                fk.relu_grad(flat[0], flat[1], flat[2])
                return out
    return g * (y > 0)


class Relu(Function):
    """y = max(x, 0);  ∂y/∂x = 1 where x > 0, else 0.  Saves the output (its sign is the mask).
    One pass each way with the fast path (``relu_array``, ``relu_grad_array``)."""

    label = "ReLU"

    @staticmethod
    def forward(ctx, x):
        y = relu_array(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        if first_order():  # on arrays (see ops._util.first_order)
            return const(relu_grad_array(grad_out.data, y.data))
        return grad_out * const(y.data > 0)


class LeakyRelu(Function):
    """y = x if x > 0 else s·x;  ∂y/∂x = 1 if x > 0 else s (s = negative_slope)."""

    label = "LeakyReLU"

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return np.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        slope = np.where(x.data > 0, 1, ctx.slope).astype(x.dtype)
        return grad_out * const(slope)


class Elu(Function):
    """y = x if x > 0 else α(eˣ - 1);  ∂y/∂x = 1 if x > 0 else y + α.  Saves the output."""

    label = "ELU"

    @staticmethod
    def forward(ctx, x, alpha=1.0):
        y = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
        ctx.alpha = alpha
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * where(const(y.data > 0), 1.0, y + ctx.alpha)


class Gelu(Function):
    """y = x·Φ(x), Φ the standard normal CDF;  ∂y/∂x = Φ(x) + x·φ(x)."""

    label = "GELU"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * (0.5 * (1 + _erf(x * (1 / math.sqrt(2)))))

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        cdf = (erf(x * (1 / math.sqrt(2))) + 1) * 0.5
        pdf = exp(x * x * -0.5) * (1 / math.sqrt(2 * math.pi))
        return grad_out * (cdf + x * pdf)


class Softplus(Function):
    """y = (1/β)·ln(1 + e^(βx)), and y = x where βx > threshold;  ∂y/∂x = σ(βx) (1 there)."""

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        bx = x * beta
        # log1p(e^{-|bx|}) + max(bx, 0): the same value as ln(1 + e^{bx}), without overflow
        y = (np.log1p(np.exp(-np.abs(bx))) + np.maximum(bx, 0)) / beta
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        return np.where(bx > threshold, x, y)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        linear = const(x.data * ctx.beta > ctx.threshold)
        return grad_out * where(linear, 1.0, sigmoid(x * ctx.beta))


# --- functional wrappers ---


def relu(input) -> Tensor:
    """Elementwise max(x, 0)."""
    return Relu.apply(input)


def leaky_relu(input, negative_slope: float = 0.01) -> Tensor:
    """Elementwise x if x > 0 else negative_slope·x."""
    return LeakyRelu.apply(input, negative_slope=negative_slope)


def elu(input, alpha: float = 1.0) -> Tensor:
    """Elementwise x if x > 0 else alpha·(eˣ - 1)."""
    return Elu.apply(input, alpha=alpha)


def gelu(input, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit x·Φ(x); ``approximate='tanh'`` uses the tanh formula."""
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2 / math.pi)
        return input * (tanh(inner) + 1) * 0.5
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(input)


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """Elementwise (1/β)·ln(1 + e^(βx)), linear where βx > threshold (PyTorch's definition)."""
    return Softplus.apply(input, beta=beta, threshold=threshold)
