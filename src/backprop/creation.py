"""Tensor constructors with PyTorch's names and default dtypes (float32 unless stated)."""

from __future__ import annotations

import numpy as np

from backprop import random as _random
from backprop.tensor import Tensor, _check_can_require_grad, _resolve_dtype, _to_array, _wrap


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        shape = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"sizes must be ints, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"sizes must be non-negative, got {shape}")
    return shape


def _make(arr: np.ndarray, requires_grad: bool) -> Tensor:
    if requires_grad:
        _check_can_require_grad(arr)
    return _wrap(arr, bool(requires_grad), None, 0)


def _dtype(dtype, default=np.float32) -> np.dtype:
    return np.dtype(default) if dtype is None else _resolve_dtype(dtype)


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    Python floats become float32 and Python ints int64; an ndarray keeps its dtype.

    Args:
        data: a number, a nested list, an ndarray or a Tensor.
        dtype: optional dtype (``backprop.float64``, ``"float64"``, ``np.float64``, ...).
        requires_grad: record operations on it for ``backward()``.

    Example:
        >>> import backprop as bp
        >>> bp.tensor([1.0, 2.0]).dtype, bp.tensor([1, 2]).dtype
        (dtype('float32'), dtype('int64'))
    """
    return _make(_to_array(data, dtype, copy=True), requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (its dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {type(array).__name__}")
    return _wrap(array, False, None, 0)


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of the given shape."""
    return _make(np.zeros(_shape(size), _dtype(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of the given shape (fill it before use)."""
    return _make(np.empty(_shape(size), _dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of the given shape."""
    return _make(np.ones(_shape(size), _dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (its dtype inferred as by ``tensor``)."""
    if dtype is None:
        dtype = _to_array(fill_value).dtype
    return _make(np.full(_shape((size,)), fill_value, _dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for integer arguments,
    float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else np.float32
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    return _make(np.arange(start, end, step).astype(_dtype(dtype)), requires_grad)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    return _make(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (square when ``m`` is None)."""
    return _make(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def rand(*size, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Uniform samples from [0, 1), drawn from the seeded global generator."""
    gen = generator or _random.default_generator()
    dt = _dtype(dtype)
    return _make(gen.random(_shape(size), dtype=np.float64).astype(dt, copy=False), requires_grad)


def randn(*size, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples, drawn from the seeded global generator."""
    gen = generator or _random.default_generator()
    dt = _dtype(dtype)
    arr = gen.standard_normal(_shape(size), dtype=np.float64).astype(dt, copy=False)
    return _make(arr, requires_grad)


def randint(low, high=None, size=(), dtype=None, generator=None) -> Tensor:
    """Integers uniform in [low, high) (int64 by default)."""
    if high is None:
        low, high = 0, low
    gen = generator or _random.default_generator()
    return _wrap(gen.integers(low, high, _shape((size,))).astype(_dtype(dtype, np.int64)),
                 False, None, 0)


def _like(input, dtype):
    return input.data.dtype if dtype is None else _resolve_dtype(dtype)


def zeros_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with ``input``'s shape and dtype."""
    return _make(np.zeros(input.shape, _like(input, dtype)), requires_grad)


def ones_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with ``input``'s shape and dtype."""
    return _make(np.ones(input.shape, _like(input, dtype)), requires_grad)


def full_like(input: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere, with ``input``'s shape and dtype."""
    return _make(np.full(input.shape, fill_value, _like(input, dtype)), requires_grad)


def rand_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples with ``input``'s shape and dtype."""
    return rand(input.shape, dtype=_like(input, dtype), requires_grad=requires_grad)


def randn_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples with ``input``'s shape and dtype."""
    return randn(input.shape, dtype=_like(input, dtype), requires_grad=requires_grad)
