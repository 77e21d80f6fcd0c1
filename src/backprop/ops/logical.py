"""Comparisons, logical and bitwise ops, ``any``/``all``, ``argmax``/``argmin`` and ``one_hot``.

None of them has a gradient (their outputs are bool or integer), but each is a ``Function``:
every op goes through ``Function.apply``, the one dispatch point, so the op recorder sees them
(ONNX export and ``backprop.compile`` replay comparisons and argmax like any other op).
"""

from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.ops._util import norm_dims
from backprop.tensor import Tensor


class _Compare(Function):
    """Elementwise comparison; bool result, no gradient."""

    broadcasts = True
    ufunc = None

    @classmethod
    def forward(cls, ctx, a, b):
        return np.asarray(cls.ufunc(a, b))


class Eq(_Compare):
    """y = (a == b), elementwise."""

    ufunc = np.equal


class Ne(_Compare):
    """y = (a != b), elementwise."""

    ufunc = np.not_equal


class Lt(_Compare):
    """y = (a < b), elementwise."""

    ufunc = np.less


class Le(_Compare):
    """y = (a <= b), elementwise."""

    ufunc = np.less_equal


class Gt(_Compare):
    """y = (a > b), elementwise."""

    ufunc = np.greater


class Ge(_Compare):
    """y = (a >= b), elementwise."""

    ufunc = np.greater_equal


class BitwiseAnd(_Compare):
    """y = a & b (logical and for bool tensors)."""

    ufunc = np.bitwise_and


class BitwiseOr(_Compare):
    """y = a | b (logical or for bool tensors)."""

    ufunc = np.bitwise_or


class LogicalNot(Function):
    """y = not x, elementwise; bool result."""

    @staticmethod
    def forward(ctx, x):
        return np.logical_not(x)


class BitwiseNot(Function):
    """y = ~x (bitwise not of an integer tensor)."""

    @staticmethod
    def forward(ctx, x):
        return np.invert(x)


class AnyAll(Function):
    """y = any(x) or all(x) over ``dims`` (None: everything); bool result."""

    @staticmethod
    def forward(ctx, x, dims=None, keepdim=False, kind="any"):
        fn = np.any if kind == "any" else np.all
        return np.asarray(fn(x, axis=dims, keepdims=keepdim))


class ArgExtreme(Function):
    """y = the index of the maximum (``largest``) or minimum along ``dim`` (None: of the
    flattened tensor); int64, no gradient."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, largest=True):
        fn = np.argmax if largest else np.argmin
        if dim is None:
            out = fn(x)
            if keepdim:
                out = np.reshape(out, (1,) * x.ndim)
        else:
            out = fn(x, axis=dim, keepdims=keepdim)
        return np.asarray(out, dtype=np.int64)


class OneHot(Function):
    """y[..., c] = 1 where labels == c, else 0; int64 of shape (*labels.shape, num_classes)."""

    @staticmethod
    def forward(ctx, labels, num_classes=0):
        return (labels[..., None] == np.arange(num_classes)).astype(np.int64)


def eq(input, other) -> Tensor:
    """``input == other`` elementwise (bool)."""
    return Eq.apply(input, other)


def ne(input, other) -> Tensor:
    """``input != other`` elementwise (bool)."""
    return Ne.apply(input, other)


def lt(input, other) -> Tensor:
    """``input < other`` elementwise (bool)."""
    return Lt.apply(input, other)


def le(input, other) -> Tensor:
    """``input <= other`` elementwise (bool)."""
    return Le.apply(input, other)


def gt(input, other) -> Tensor:
    """``input > other`` elementwise (bool)."""
    return Gt.apply(input, other)


def ge(input, other) -> Tensor:
    """``input >= other`` elementwise (bool)."""
    return Ge.apply(input, other)


def bitwise_and(input, other) -> Tensor:
    """``input & other`` (logical and for bool tensors)."""
    return BitwiseAnd.apply(input, other)


def bitwise_or(input, other) -> Tensor:
    """``input | other`` (logical or for bool tensors)."""
    return BitwiseOr.apply(input, other)


def logical_not(input) -> Tensor:
    """Elementwise not (bool)."""
    return LogicalNot.apply(input)


def bitwise_not(input) -> Tensor:
    """``~input`` for integer tensors (logical not for bool)."""
    return BitwiseNot.apply(input)


def any(input, dim=None, keepdim: bool = False) -> Tensor:
    """True where any element (along ``dim``, or anywhere) is nonzero."""
    return AnyAll.apply(input, dims=norm_dims("any", dim, input.ndim), keepdim=keepdim,
                        kind="any")


def all(input, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element (along ``dim``, or everywhere) is nonzero."""
    return AnyAll.apply(input, dims=norm_dims("all", dim, input.ndim), keepdim=keepdim,
                        kind="all")


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """Integer class labels of shape (*) to int64 one-hot rows of shape (*, num_classes)."""
    if not isinstance(tensor, Tensor):
        tensor = Tensor(np.asarray(tensor))
    labels = tensor.data
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expects integer class labels, got dtype {labels.dtype}")
    if num_classes < 0:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"one_hot: labels must lie in [0, {num_classes}), found values from {labels.min()} "
            f"to {labels.max()}"
        )
    return OneHot.apply(tensor, num_classes=num_classes)
