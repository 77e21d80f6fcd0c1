"""Tensor constructors with PyTorch's names and default dtypes (float32 unless stated).

Each takes PyTorch's ``device=`` too: the CPU in any spelling, or an error naming the device
this backprop lacks (see ``backprop.devices``). Random ones take ``generator=`` (a
``backprop.Generator`` or a ``numpy.random.Generator``).
"""

from __future__ import annotations

import numpy as np

from backprop import random as _random
from backprop.devices import check_device
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


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    Python floats become float32 and Python ints int64; an ndarray keeps its dtype.

    Args:
        data: a number, a nested list, an ndarray or a Tensor.
        dtype: optional dtype (``backprop.float64``, ``"float64"``, ``np.float64``, ...).
        device: ``"cpu"`` (or None); other devices raise ``DeviceUnavailableError``.
        requires_grad: record operations on it for ``backward()``.

    Example:
        >>> import backprop as bp
        >>> bp.tensor([1.0, 2.0]).dtype, bp.tensor([1, 2]).dtype
        (dtype('float32'), dtype('int64'))
    """
    check_device(device)
    return _make(_to_array(data, dtype, copy=True), requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (its dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {type(array).__name__}")
    return _wrap(array, False, None, 0)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of the given shape."""
    check_device(device)
    return _make(np.zeros(_shape(size), _dtype(dtype)), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of the given shape (fill it before use)."""
    check_device(device)
    return _make(np.empty(_shape(size), _dtype(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of the given shape."""
    check_device(device)
    return _make(np.ones(_shape(size), _dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (its dtype inferred as by ``tensor``)."""
    check_device(device)
    if dtype is None:
        dtype = _to_array(fill_value).dtype
    return _make(np.full(_shape((size,)), fill_value, _dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for integer arguments,
    float32 otherwise."""
    check_device(device)
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else np.float32
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    return _make(np.arange(start, end, step).astype(_dtype(dtype)), requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    check_device(device)
    return _make(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (square when ``m`` is None)."""
    check_device(device)
    return _make(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples from [0, 1), drawn from ``generator`` (default: the seeded global one)."""
    check_device(device)
    gen = _random.numpy_generator(generator)
    dt = _dtype(dtype)
    return _make(gen.random(_shape(size), dtype=np.float64).astype(dt, copy=False), requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples, drawn from ``generator`` (default: the seeded global one)."""
    check_device(device)
    gen = _random.numpy_generator(generator)
    dt = _dtype(dtype)
    arr = gen.standard_normal(_shape(size), dtype=np.float64).astype(dt, copy=False)
    return _make(arr, requires_grad)


def randint(*args, size=None, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high), PyTorch's ``randint(high, size)`` and
    ``randint(low, high, size)`` (int64 by default).

    Example:
        >>> import backprop as bp
        >>> x = bp.randint(10, (2, 3))
        >>> x.shape, x.dtype, bool(((0 <= x) & (x < 10)).all())
        ((2, 3), dtype('int64'), True)
        >>> bool((bp.randint(5, 7, (4,)) >= 5).all())
        True
    """
    if size is not None:
        args = (*args, size)
    if len(args) == 2:
        low, high, size = 0, args[0], args[1]
    elif len(args) == 3:
        low, high, size = args
    else:
        raise TypeError(
            f"randint: expected (high, size) or (low, high, size), got {len(args)} positional "
            "arguments; size is a tuple, e.g. randint(10, (3,))"
        )
    if isinstance(size, (int, np.integer)):
        raise TypeError(
            f"randint: size must be a tuple of ints, got {size!r}; write randint({low}, {high}, "
            f"({size},)) for a vector of {size} values"
        )
    if high <= low:
        raise RuntimeError(
            f"randint: random_ expects 'from' to be less than 'to', but got from={low} >= "
            f"to={high}"
        )
    check_device(device)
    gen = _random.numpy_generator(generator)
    arr = gen.integers(low, high, _shape((size,))).astype(_dtype(dtype, np.int64))
    return _make(arr, requires_grad)


def randperm(n: int, generator=None, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64 by default)."""
    check_device(device)
    gen = _random.numpy_generator(generator)
    return _make(gen.permutation(int(n)).astype(_dtype(dtype, np.int64)), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a Tensor, sharing memory when it already is one (or an ndarray) of
    ``dtype``; otherwise a copy, as ``tensor`` makes."""
    check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(_resolve_dtype(dtype)) ==
                                         data.dtype):
        return from_numpy(data)
    return tensor(data, dtype)


def _like(input, dtype, device=None):
    check_device(device)
    return input.data.dtype if dtype is None else _resolve_dtype(dtype)


def zeros_like(input: Tensor, dtype=None, device=None,
               requires_grad: bool = False) -> Tensor:
    """Zeros with ``input``'s shape and dtype."""
    return _make(np.zeros(input.shape, _like(input, dtype, device)), requires_grad)


def ones_like(input: Tensor, dtype=None, device=None,
              requires_grad: bool = False) -> Tensor:
    """Ones with ``input``'s shape and dtype."""
    return _make(np.ones(input.shape, _like(input, dtype, device)), requires_grad)


def full_like(input: Tensor, fill_value, dtype=None, device=None,
              requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere, with ``input``'s shape and dtype."""
    return _make(np.full(input.shape, fill_value, _like(input, dtype, device)), requires_grad)


def rand_like(input: Tensor, dtype=None, device=None,
              requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples with ``input``'s shape and dtype."""
    return rand(input.shape, dtype=_like(input, dtype, device), requires_grad=requires_grad)


def randn_like(input: Tensor, dtype=None, device=None,
               requires_grad: bool = False) -> Tensor:
    """Standard normal samples with ``input``'s shape and dtype."""
    return randn(input.shape, dtype=_like(input, dtype, device), requires_grad=requires_grad)


def empty_like(input: Tensor, dtype=None, device=None,
               requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor with ``input``'s shape and dtype (fill it before use)."""
    return _make(np.empty(input.shape, _like(input, dtype, device)), requires_grad)


# --- sampling ---


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator=None) -> Tensor:
    """Draw category indices in proportion to the non-negative weights of each row of ``input``.

    Without replacement a category is drawn at most once per row (weights need not sum to 1).
    Shapes: (K,) -> (num_samples,); (N, K) -> (N, num_samples), int64.

    Raises:
        RuntimeError: a weight is negative, infinite or NaN, a row sums to zero, or more samples
            are asked without replacement than a row has categories (as PyTorch).

    Example:
        >>> import backprop as bp
        >>> bp.multinomial(bp.tensor([0.0, 1.0, 0.0]), 2, replacement=True)
        tensor([1, 1])
    """
    w = (input.data if isinstance(input, Tensor) else np.asarray(input)).astype(np.float64)
    if w.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {w.shape}")
    rows = w.reshape(-1, w.shape[-1])
    k = rows.shape[1]
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise RuntimeError("multinomial: probability tensor contains either `inf`, `nan` or "
                           "element < 0")
    if (rows.sum(axis=1) <= 0).any():
        raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities "
                           "<= 0)")
    num_samples = int(num_samples)
    if num_samples <= 0:
        raise RuntimeError(f"multinomial: cannot sample {num_samples} <= 0 samples")
    gen = _random.numpy_generator(generator)
    if replacement:
        cdf = np.cumsum(rows / rows.sum(axis=1, keepdims=True), axis=1)
        cdf[:, -1] = 1.0  # no draw may fall past the last category through rounding
        u = gen.random((rows.shape[0], num_samples))
        # one searchsorted for every row: row r's cdf and draws shifted into [r, r + 1]
        offset = np.arange(rows.shape[0])[:, None]
        flat = np.searchsorted((cdf + offset).ravel(), (u + offset).ravel(), side="right")
        out = flat.reshape(u.shape) - offset * k
        out = np.minimum(out, k - 1)
    else:
        if num_samples > k:
            raise RuntimeError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) "
                               f"samples without replacement ({num_samples} > {k})")
        # the exponential race: each category draws E/w with E ~ Exp(1); the order in which they
        # finish is a draw without replacement in proportion to w. Zero weights finish last, in
        # index order, which is also what PyTorch returns once the non-zero ones are used up
        with np.errstate(divide="ignore"):
            keys = gen.exponential(size=rows.shape) / rows
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    return _wrap(out.reshape(w.shape[:-1] + (num_samples,)).astype(np.int64), False, None, 0)
