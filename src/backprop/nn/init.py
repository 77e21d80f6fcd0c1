"""``backprop.nn.init``: in-place parameter initialisers with PyTorch's names and formulas.

Every initialiser writes into ``tensor.data`` in place, keeps the tensor's dtype, bumps
``tensor._version``, records no graph and returns the tensor. Random ones draw from
``backprop.random.default_generator()`` (so ``backprop.manual_seed(n)`` makes them reproducible)
unless a ``backprop.Generator`` or a ``numpy.random.Generator`` is passed as ``generator``.
Samples are drawn in float64 and then cast, so a float32 weight stays float32.

Example:
    >>> import backprop as bp
    >>> _ = bp.manual_seed(0)
    >>> w = bp.nn.init.kaiming_uniform_(bp.empty(256, 128), nonlinearity="relu")
    >>> w.dtype, bool(abs(w.data).max() <= bp.nn.init.calculate_gain("relu") * (3 / 128) ** 0.5)
    (dtype('float32'), True)
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from backprop import random as _random
from backprop.autograd.grad_mode import no_grad
from backprop.tensor import Tensor

__all__ = [
    "calculate_fan_in_and_fan_out", "calculate_gain", "constant_", "dirac_", "eye_",
    "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_", "orthogonal_", "sparse_",
    "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]

_LINEAR_GAIN_NAMES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                      "conv_transpose2d", "conv_transpose3d", "sigmoid")
_GAIN_NAMES = (*_LINEAR_GAIN_NAMES, "tanh", "relu", "leaky_relu", "selu")
_FAN_MODES = ("fan_in", "fan_out")


# --- helpers ---
def _check_tensor(tensor, name: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a backprop Tensor, got {type(tensor).__name__}")


def _check_floating(tensor: Tensor, name: str) -> None:
    # Casting float samples into an integer tensor would silently truncate them (torch refuses too).
    _check_tensor(tensor, name)
    if tensor.dtype.kind != "f":
        raise TypeError(
            f"{name}: random initialisation needs a floating-point tensor, got {tensor.dtype} "
            f"with shape {tensor.shape}"
        )


def _generator(generator, name: str) -> np.random.Generator:
    # Looked up at call time: manual_seed replaces the global generator object.
    try:
        return _random.numpy_generator(generator)
    except TypeError:
        raise TypeError(
            f"{name}: generator must be a backprop.Generator, a numpy.random.Generator (e.g. "
            f"np.random.default_rng(0)) or None, got {type(generator).__name__}"
        ) from None


def _fill(tensor: Tensor, values) -> Tensor:
    # An in-place copy under no_grad (torch's way): no graph; the version bump lets a graph that
    # saved this tensor detect the overwrite at backward time; the op recorder sees it
    with no_grad():
        tensor.copy_(values)
    return tensor


# --- gain and fans ---
def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity: the factor that keeps activations' variance stable.

    ================================================  =================================
    nonlinearity                                      gain
    ================================================  =================================
    linear, conv{1,2,3}d, conv_transpose{1,2,3}d      1
    sigmoid                                           1
    tanh                                              5/3
    relu                                              √2
    leaky_relu                                        √(2 / (1 + negative_slope²))
    selu                                              3/4
    ================================================  =================================

    Args:
        nonlinearity: the ``nn.functional`` name of the nonlinearity.
        param: ``negative_slope`` for ``'leaky_relu'`` (default 0.01); ignored by the others.

    Returns:
        The gain, a float.

    Raises:
        ValueError: for an unknown nonlinearity (the message lists the valid names) or a
            ``param`` that is not a number.

    Example:
        >>> import backprop as bp
        >>> bp.nn.init.calculate_gain("tanh")
        1.6666666666666667
        >>> round(bp.nn.init.calculate_gain("leaky_relu", 0.2), 6)
        1.38675
    """
    if nonlinearity in _LINEAR_GAIN_NAMES:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        # bool is an int subclass, but True as a slope is surely a mistake (torch rejects it too).
        elif isinstance(param, bool) or not isinstance(param, (int, float, np.integer,
                                                               np.floating)):
            raise ValueError(
                f"calculate_gain: negative_slope {param!r} is not a valid number"
            )
        else:
            negative_slope = float(param)
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        # Found empirically (pytorch/pytorch#50664). For self-normalising nets use 'linear'.
        return 3.0 / 4
    raise ValueError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; choose one of "
        f"{', '.join(_GAIN_NAMES)}"
    )


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """The fans of a weight: ``fan_in = size(1)·r`` and ``fan_out = size(0)·r``.

    ``r`` is the receptive field, the product of the trailing dimensions (1 for a ``Linear``
    weight). The weight is laid out as PyTorch's: ``(out_features, in_features)`` for ``Linear``,
    ``(C_out, C_in / groups, *kernel_size)`` for convolutions.

    Args:
        tensor: a tensor of at least 2 dimensions.

    Returns:
        ``(fan_in, fan_out)``.

    Raises:
        ValueError: for a tensor of fewer than 2 dimensions.

    Example:
        >>> import backprop as bp
        >>> bp.nn.init.calculate_fan_in_and_fan_out(bp.empty(16, 3, 5, 5))
        (75, 400)
    """
    _check_tensor(tensor, "calculate_fan_in_and_fan_out")
    if tensor.ndim < 2:
        raise ValueError(
            "fan in and fan out need a tensor of at least 2 dimensions (out, in, *kernel), got "
            f"shape {tensor.shape}"
        )
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


# PyTorch's private name, kept so code written against torch.nn.init works unchanged.
_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    lowered = mode.lower() if isinstance(mode, str) else mode
    if lowered not in _FAN_MODES:
        raise ValueError(f"mode {mode!r} not supported; use one of {', '.join(_FAN_MODES)}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if lowered == "fan_in" else fan_out


# --- constants ---
def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill the tensor with ``val``.

    Args:
        tensor: any tensor; its dtype is kept.
        val: the value.

    Returns:
        ``tensor``, filled in place.
    """
    _check_tensor(tensor, "constant_")
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill the tensor with 0.

    Args:
        tensor: any tensor; its dtype is kept.

    Returns:
        ``tensor``, filled in place.
    """
    _check_tensor(tensor, "zeros_")
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill the tensor with 1.

    Args:
        tensor: any tensor; its dtype is kept.

    Returns:
        ``tensor``, filled in place.
    """
    _check_tensor(tensor, "ones_")
    return _fill(tensor, 1)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity: ``W[i, j] = 1 if i == j else 0``.

    In a ``Linear`` layer this passes through as many inputs as the shape allows.

    Args:
        tensor: a 2-D tensor, shape (n, m); need not be square.

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: if ``tensor`` is not 2-D.

    Example:
        >>> import backprop as bp
        >>> bp.nn.init.eye_(bp.empty(2, 3))
        tensor([[1., 0., 0.],
                [0., 1., 0.]])
    """
    _check_tensor(tensor, "eye_")
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tensor.shape}")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a convolution weight with the Dirac delta, so the convolution is the identity.

    ``W[g·(C_out/groups) + d, d, centre] = 1`` for every group ``g`` and
    ``d < min(C_out/groups, C_in)``, where ``centre`` is ``k // 2`` in each kernel dimension;
    all else is 0. As many input channels as possible are preserved (per group).

    Args:
        tensor: a 3-, 4- or 5-D tensor, shape (C_out, C_in, *kernel_size).
        groups: number of groups of the convolution; must divide C_out.

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: for another number of dimensions, or ``groups`` not dividing C_out.
    """
    _check_tensor(tensor, "dirac_")
    shape = tensor.shape
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3-, 4- or 5-D tensors are supported, got shape {shape}")
    if groups < 1 or shape[0] % groups:
        raise ValueError(
            f"dirac_: groups must be a positive divisor of dim 0 ({shape[0]}), got {groups}"
        )
    out_per_group = shape[0] // groups
    min_dim = min(out_per_group, shape[1])
    group, channel = np.meshgrid(np.arange(groups), np.arange(min_dim), indexing="ij")
    centre = tuple(size // 2 for size in shape[2:])
    values = np.zeros(shape)
    values[((group * out_per_group + channel).ravel(), channel.ravel(), *centre)] = 1
    return _fill(tensor, values)


# --- distributions ---
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             generator: np.random.Generator | None = None) -> Tensor:
    """Fill the tensor with samples from the uniform distribution U(a, b).

    Mean ``(a + b) / 2``, standard deviation ``(b - a) / √12``.

    Args:
        tensor: a floating-point tensor of any shape.
        a: lower bound.
        b: upper bound (``a <= b``).
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: if ``a > b``.
    """
    _check_floating(tensor, "uniform_")
    if a > b:
        raise ValueError(f"uniform_: expected a <= b, got a={a} and b={b}")
    gen = _generator(generator, "uniform_")
    return _fill(tensor, gen.uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: np.random.Generator | None = None) -> Tensor:
    """Fill the tensor with samples from the normal distribution N(mean, std²).

    Args:
        tensor: a floating-point tensor of any shape.
        mean: the mean.
        std: the standard deviation (``>= 0``).
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: if ``std < 0``.
    """
    _check_floating(tensor, "normal_")
    if std < 0:
        raise ValueError(f"normal_: expected std >= 0, got {std}")
    gen = _generator(generator, "normal_")
    return _fill(tensor, gen.normal(mean, std, tensor.shape))


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: np.random.Generator | None = None) -> Tensor:
    """Fill the tensor with samples from N(mean, std²) truncated to [a, b].

    Values are drawn from the normal distribution and those outside [a, b] redrawn until they
    fall inside, i.e. the density is ``φ((x - mean)/std) / (std·p)`` on [a, b] with
    ``p = Φ((b - mean)/std) - Φ((a - mean)/std)``. Note that ``a`` and ``b`` are absolute
    bounds, not multiples of ``std``. Works best when ``a <= mean <= b``.

    Args:
        tensor: a floating-point tensor of any shape.
        mean: mean of the underlying normal distribution.
        std: standard deviation of the underlying normal distribution (``> 0``).
        a: lower cutoff.
        b: upper cutoff (``a <= b``).
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: if ``std <= 0`` or ``a > b``.
    """
    _check_floating(tensor, "trunc_normal_")
    if not std > 0:
        raise ValueError(f"trunc_normal_: expected std > 0, got {std}")
    if a > b:
        raise ValueError(f"trunc_normal_: expected a <= b, got a={a} and b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "trunc_normal_: mean is more than 2 std from [a, b]; the distribution of values may "
            "be incorrect", stacklevel=2,
        )
    gen = _generator(generator, "trunc_normal_")
    n = tensor.data.size
    out = np.empty(n)
    p = _norm_cdf((b - mean) / std) - _norm_cdf((a - mean) / std)
    if p > 0.3:
        # Most normal draws land inside, so redraw only the rejects (expected rounds ~ 1/p).
        out[:] = gen.normal(mean, std, n)
        pending = np.flatnonzero((out < a) | (out > b))
        while pending.size:
            out[pending] = gen.normal(mean, std, pending.size)
            pending = pending[(out[pending] < a) | (out[pending] > b)]
    else:
        # Little mass inside [a, b]: plain rejection would loop ~1/p times. Propose uniformly on
        # [a, b] and accept with probability pdf(x) / pdf(mode), the density's peak on [a, b].
        mode = max(a, min(mean, b))
        pending = np.arange(n)
        while pending.size:
            x = gen.uniform(a, b, pending.size)
            ratio = np.exp(-0.5 * (((x - mean) / std) ** 2 - ((mode - mean) / std) ** 2))
            accept = gen.random(pending.size) < ratio
            out[pending[accept]] = x[accept]
            pending = pending[~accept]
    # Rounding to a narrower dtype is monotonic, so the cast values stay within [a, b] as
    # represented in that dtype (torch casts its bounds the same way).
    return _fill(tensor, out.reshape(tensor.shape))


# --- variance-scaling initialisers ---
def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    generator: np.random.Generator | None = None) -> Tensor:
    """Glorot / Xavier uniform initialisation (Glorot & Bengio, 2010).

    Samples U(-bound, bound) with ``bound = gain · √(6 / (fan_in + fan_out))``, i.e. standard
    deviation ``gain · √(2 / (fan_in + fan_out))``.

    Args:
        tensor: a floating-point tensor of at least 2 dimensions (fans as in
            ``calculate_fan_in_and_fan_out``).
        gain: scaling factor, e.g. ``calculate_gain('tanh')``.
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place.
    """
    _check_floating(tensor, "xavier_uniform_")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if tensor.data.size == 0:  # nothing to fill, and a (0, 0) shape would divide by zero
        return tensor
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-b, b) has standard deviation b / √3
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   generator: np.random.Generator | None = None) -> Tensor:
    """Glorot / Xavier normal initialisation (Glorot & Bengio, 2010).

    Samples N(0, std²) with ``std = gain · √(2 / (fan_in + fan_out))``.

    Args:
        tensor: a floating-point tensor of at least 2 dimensions.
        gain: scaling factor, e.g. ``calculate_gain('tanh')``.
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place.
    """
    _check_floating(tensor, "xavier_normal_")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if tensor.data.size == 0:
        return tensor
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str, name: str):
    _check_floating(tensor, name)
    fan = _calculate_correct_fan(tensor, mode)  # validates mode and ndim even for empty tensors
    gain = calculate_gain(nonlinearity, a)
    if tensor.data.size == 0:
        warnings.warn(f"{name}: initialising a zero-element tensor is a no-op", stacklevel=3)
        return None
    return gain / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: np.random.Generator | None = None) -> Tensor:
    """He / Kaiming uniform initialisation (He et al., 2015).

    Samples U(-bound, bound) with ``bound = gain · √(3 / fan_mode)``, i.e. standard deviation
    ``gain / √fan_mode``, where ``gain = calculate_gain(nonlinearity, a)``.

    ``Linear`` and the convolutions use ``a=√5``: gain ``√(1/3)``, so ``bound = 1 / √fan_in``.

    Args:
        tensor: a floating-point tensor of at least 2 dimensions, laid out (out, in, *kernel).
        a: negative slope of the rectifier that follows (used only with ``'leaky_relu'``).
        mode: ``'fan_in'`` (keeps the forward pass's variance) or ``'fan_out'`` (the backward
            pass's).
        nonlinearity: the ``nn.functional`` name, best ``'relu'`` or ``'leaky_relu'``.
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place (a zero-element tensor is left alone, with a warning).

    Raises:
        ValueError: for a tensor of fewer than 2 dimensions, an unknown ``mode`` or
            ``nonlinearity``.

    Example:
        >>> import backprop as bp
        >>> w = bp.nn.init.kaiming_uniform_(bp.empty(64, 100), a=5 ** 0.5)
        >>> bool(abs(w.data).max() <= 1 / 100 ** 0.5)
        True
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std  # U(-b, b) has standard deviation b / √3
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: np.random.Generator | None = None) -> Tensor:
    """He / Kaiming normal initialisation (He et al., 2015).

    Samples N(0, std²) with ``std = gain / √fan_mode``, where
    ``gain = calculate_gain(nonlinearity, a)``.

    Args:
        tensor: a floating-point tensor of at least 2 dimensions, laid out (out, in, *kernel).
        a: negative slope of the rectifier that follows (used only with ``'leaky_relu'``).
        mode: ``'fan_in'`` (keeps the forward pass's variance) or ``'fan_out'`` (the backward
            pass's).
        nonlinearity: the ``nn.functional`` name, best ``'relu'`` or ``'leaky_relu'``.
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place (a zero-element tensor is left alone, with a warning).

    Raises:
        ValueError: for a tensor of fewer than 2 dimensions, an unknown ``mode`` or
            ``nonlinearity``.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


# --- structured ---
def orthogonal_(tensor: Tensor, gain: float = 1.0,
                generator: np.random.Generator | None = None) -> Tensor:
    """Fill the tensor with a (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2013).

    The tensor is viewed as (rows, cols) with ``rows = size(0)`` and the trailing dimensions
    flattened into ``cols``. A standard-normal matrix (transposed if wide) is factored as
    ``QR``, and ``Q``'s columns are multiplied by ``sign(diag(R))`` so that Q is uniformly
    (Haar) distributed. The result satisfies ``WᵀW = gain²·I`` if tall, ``WWᵀ = gain²·I`` if wide.

    Args:
        tensor: a floating-point tensor of at least 2 dimensions.
        gain: scaling factor.
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: for a tensor of fewer than 2 dimensions.
    """
    _check_floating(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(
            f"orthogonal_: only tensors of 2 or more dimensions are supported, got shape "
            f"{tensor.shape}"
        )
    if tensor.data.size == 0:
        return tensor
    gen = _generator(generator, "orthogonal_")
    rows = tensor.shape[0]
    cols = tensor.data.size // rows
    flat = gen.standard_normal((rows, cols))
    if rows < cols:  # QR needs a tall matrix; the transpose of a wide one is tall
        flat = flat.T
    q, r = np.linalg.qr(flat)
    # QR is unique only up to column signs, and LAPACK's choice biases Q; fixing diag(R) > 0
    # makes Q Haar-distributed (Mezzadri, 2007). torch uses sign(d), which agrees except at the
    # measure-zero d = 0, where sign would zero a column instead of keeping it.
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01,
            generator: np.random.Generator | None = None) -> Tensor:
    """Fill a 2-D tensor as a sparse matrix (Martens, 2010).

    Every entry is drawn from N(0, std²), then in each column ``ceil(sparsity · rows)`` entries,
    chosen at random, are set to 0.

    Args:
        tensor: a 2-D floating-point tensor, shape (rows, cols).
        sparsity: fraction of each column set to zero, in [0, 1].
        std: standard deviation of the non-zero values.
        generator: a ``numpy.random.Generator``; the global one when None.

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: if ``tensor`` is not 2-D or ``sparsity`` is outside [0, 1].
    """
    _check_floating(tensor, "sparse_")
    if tensor.ndim != 2:
        raise ValueError(f"sparse_: only 2-D tensors are supported, got shape {tensor.shape}")
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparse_: sparsity must be in [0, 1], got {sparsity}")
    gen = _generator(generator, "sparse_")
    rows, cols = tensor.shape
    num_zeros = math.ceil(sparsity * rows)
    values = gen.normal(0.0, std, (rows, cols))
    # argsort of uniform noise is an independent random permutation per column: torch's
    # per-column randperm loop in one call.
    zero_rows = gen.random((rows, cols)).argsort(axis=0)[:num_zeros]
    values[zero_rows, np.arange(cols)] = 0.0
    return _fill(tensor, values)
