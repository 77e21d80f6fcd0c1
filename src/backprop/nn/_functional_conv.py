"""Convolution and pooling in ``backprop.nn.functional`` (PyTorch's names, arguments and
defaults). The wrappers check shapes and normalise arguments; the maths is in ``ops.conv``."""

from __future__ import annotations

import numpy as np

from backprop.errors import ShapeError, check_same_dtype
from backprop.ops._util import const
from backprop.ops.conv import AvgPool, Conv, ConvTranspose, MaxPool
from backprop.ops.linalg import matmul
from backprop.ops.shape import squeeze, unsqueeze
from backprop.tensor import Tensor

__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "conv1d", "conv2d", "conv_transpose2d", "max_pool1d",
    "max_pool2d",
]


def _pair(op: str, name: str, value, n: int = 2) -> tuple:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{op}: {name} must be an int or {n} ints, got {value}")
    return value


def _positive(op: str, **params) -> None:
    for name, value in params.items():
        if any(v <= 0 for v in value):
            raise ValueError(f"{op}: {name} must be positive, got {value}")


def _batched(op: str, input: Tensor, ndim: int) -> tuple[Tensor, bool]:
    """Accept an unbatched input (one dimension fewer) as PyTorch does."""
    if input.ndim == ndim - 1:
        return unsqueeze(input, 0), True
    if input.ndim != ndim:
        raise ShapeError(
            f"{op}: expected a {ndim}-D (batched) or {ndim - 1}-D (unbatched) input, got shape "
            f"{input.shape}"
        )
    return input, False


def _check_fits(op: str, x_shape, kernel, padding, dilation, what="kernel") -> None:
    for ax, (size, k, d, p) in enumerate(zip(x_shape[2:], kernel, dilation,
                                             (padding[0] + padding[1], padding[2] + padding[3]))):
        if size + p < d * (k - 1) + 1:
            raise ShapeError(
                f"{op}: input of shape {tuple(x_shape)} (padded size {size + p} on spatial axis "
                f"{ax}) is smaller than the {what} (effective size {d * (k - 1) + 1} with "
                f"dilation {d}); expected a spatial size of at least {d * (k - 1) + 1 - p}"
            )


# --- convolution ---


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    Args:
        input: (N, C_in, H, W), or (C_in, H, W) unbatched.
        weight: (C_out, C_in / groups, kH, kW).
        bias: (C_out,) or None.
        stride, dilation: an int or an (h, w) pair.
        padding: an int, an (h, w) pair, ``'valid'`` (0) or ``'same'`` (output size = input
            size; stride must be 1; an even effective kernel pads one more at the bottom/right).
        groups: split the channels into this many independent convolutions.

    Shapes: (N, C_in, H, W) -> (N, C_out, H', W'),
    H' = ⌊(H + 2·padding - dilation·(kH - 1) - 1) / stride⌋ + 1.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.conv2d(bp.ones(1, 3, 8, 8), bp.ones(4, 3, 3, 3), padding=1).shape
        (1, 4, 8, 8)
    """
    op = "conv2d"
    x, unbatched = _batched(op, input, 4)
    check_same_dtype(op, x, weight, layer=True)
    if weight.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D weight (C_out, C_in/groups, kH, kW), got shape "
                         f"{weight.shape}")
    stride = _pair(op, "stride", stride)
    dilation = _pair(op, "dilation", dilation)
    _positive(op, stride=stride, dilation=dilation)
    kernel = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            pads = ()
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += (total // 2, total - total // 2)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got "
                             f"{padding!r}")
    else:
        ph, pw = _pair(op, "padding", padding)
        if ph < 0 or pw < 0:
            raise ValueError(f"{op}: padding must be non-negative, got {(ph, pw)}")
        pads = (ph, ph, pw, pw)
    c_out, c_in_g = weight.shape[:2]
    if groups <= 0 or c_out % groups:
        raise ValueError(f"{op}: groups={groups} must be positive and divide out_channels "
                         f"{c_out} (weight of shape {weight.shape})")
    if x.shape[1] != c_in_g * groups:
        raise ShapeError(
            f"{op}: weight of shape {weight.shape} with groups={groups} expects input of shape "
            f"(N, {c_in_g * groups}, H, W), got {input.shape}: {x.shape[1]} channels instead "
            f"of {c_in_g * groups}"
        )
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ShapeError(f"{op}: expected a bias of shape ({c_out},), got {bias.shape}")
    _check_fits(op, x.shape, kernel, pads, dilation)
    y = Conv.apply(x, weight, bias, stride=stride, padding=pads, dilation=dilation,
                   groups=groups)
    return squeeze(y, 0) if unbatched else y


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D cross-correlation, as ``torch.nn.functional.conv1d``: conv2d on a height-1 view.

    Shapes: input (N, C_in, L) or (C_in, L), weight (C_out, C_in / groups, k) ->
    (N, C_out, L').

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.conv1d(bp.ones(2, 3, 10), bp.ones(4, 3, 3)).shape
        (2, 4, 8)
    """
    op = "conv1d"
    x, unbatched = _batched(op, input, 3)
    check_same_dtype(op, x, weight, layer=True)
    if weight.ndim != 3:
        raise ShapeError(f"{op}: expected a 3-D weight (C_out, C_in/groups, k), got shape "
                         f"{weight.shape}")
    if x.shape[1] != weight.shape[1] * groups:
        raise ShapeError(
            f"{op}: weight of shape {weight.shape} with groups={groups} expects input of shape "
            f"(N, {weight.shape[1] * groups}, L), got {input.shape}"
        )
    if not isinstance(padding, str):
        padding = (0, _pair(op, "padding", padding, 1)[0])
    y = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias,
               stride=(1, _pair(op, "stride", stride, 1)[0]), padding=padding,
               dilation=(1, _pair(op, "dilation", dilation, 1)[0]), groups=groups)
    y = squeeze(y, 2)
    return squeeze(y, 0) if unbatched else y


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed convolution (the gradient of conv2d with respect to its input), as
    ``torch.nn.functional.conv_transpose2d`` (note PyTorch's argument order: groups before
    dilation).

    Shapes: input (N, C_in, H, W), weight (C_in, C_out / groups, kH, kW) -> (N, C_out, H', W'),
    H' = (H - 1)·stride - 2·padding + dilation·(kH - 1) + output_padding + 1.

    Example:
        >>> import backprop as bp
        >>> f = bp.nn.functional
        >>> f.conv_transpose2d(bp.ones(1, 4, 5, 5), bp.ones(4, 2, 3, 3), stride=2).shape
        (1, 2, 11, 11)
    """
    op = "conv_transpose2d"
    x, unbatched = _batched(op, input, 4)
    check_same_dtype(op, x, weight, layer=True)
    if weight.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D weight (C_in, C_out/groups, kH, kW), got shape "
                         f"{weight.shape}")
    stride = _pair(op, "stride", stride)
    dilation = _pair(op, "dilation", dilation)
    ph, pw = _pair(op, "padding", padding)
    out_pad = _pair(op, "output_padding", output_padding)
    _positive(op, stride=stride, dilation=dilation)
    if any(op_ >= max(s, d) for op_, s, d in zip(out_pad, stride, dilation)):
        raise ValueError(f"{op}: output_padding {out_pad} must be smaller than stride {stride} "
                         f"or dilation {dilation}")
    c_in, c_out_g = weight.shape[:2]
    if groups <= 0 or c_in % groups:
        raise ValueError(f"{op}: groups={groups} must be positive and divide in_channels "
                         f"{c_in} (weight of shape {weight.shape})")
    if x.shape[1] != c_in:
        raise ShapeError(f"{op}: weight of shape {weight.shape} expects input of shape "
                         f"(N, {c_in}, H, W), got {input.shape}")
    if bias is not None and tuple(bias.shape) != (c_out_g * groups,):
        raise ShapeError(f"{op}: expected a bias of shape ({c_out_g * groups},), got "
                         f"{bias.shape}")
    n, _, h, w = x.shape
    kh, kw = weight.shape[2:]
    h_out = (h - 1) * stride[0] - 2 * ph + dilation[0] * (kh - 1) + out_pad[0] + 1
    w_out = (w - 1) * stride[1] - 2 * pw + dilation[1] * (kw - 1) + out_pad[1] + 1
    if h_out <= 0 or w_out <= 0:
        raise ShapeError(f"{op}: input of shape {input.shape} gives a non-positive output size "
                         f"({h_out}, {w_out}) with padding {(ph, pw)}")
    x_shape = (n, c_out_g * groups, h_out, w_out)
    y = ConvTranspose.apply(x, weight, x_shape=x_shape, stride=stride, padding=(ph, ph, pw, pw),
                            dilation=dilation, groups=groups)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return squeeze(y, 0) if unbatched else y


# --- pooling ---


def _pool_args(op, kernel_size, stride, padding, dilation, ceil_mode, n=2):
    kernel = _pair(op, "kernel_size", kernel_size, n)
    stride = kernel if stride is None or stride == () or stride == [] else _pair(
        op, "stride", stride, n)
    pad = _pair(op, "padding", padding, n)
    dilation = _pair(op, "dilation", dilation, n)
    _positive(op, kernel_size=kernel, stride=stride, dilation=dilation)
    if any(p < 0 or p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(f"{op}: padding {pad} must be non-negative and at most half the "
                         f"kernel size {kernel}")
    return kernel, stride, pad, dilation


def _pool_pads(x_shape, kernel, stride, pad, dilation, ceil_mode) -> tuple:
    """(top, bottom, left, right): the symmetric padding, plus for ceil_mode the rows/columns
    the last, partial window needs on the bottom/right (PyTorch's rule: it must start inside
    the input or the left padding)."""
    out = []
    for size, k, s, p, d in zip(x_shape[2:], kernel, stride, pad, dilation):
        extra = 0
        if ceil_mode:
            span = size + 2 * p - d * (k - 1) - 1
            n = -(-span // s) + 1
            if (n - 1) * s >= size + p:
                n -= 1
            extra = max(0, (n - 1) * s - span)
        out += [p, p + extra]
    return tuple(out)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Args:
        kernel_size, stride (defaults to kernel_size), padding (implicit -inf, at most half the
            kernel), dilation: an int or an (h, w) pair.
        ceil_mode: round the output size up (a last, partial window), as PyTorch.
        return_indices: also return the flat index h·W + w of each maximum in its input plane
            (an int64 tensor, as PyTorch's, usable with max_unpool2d).

    Shapes: (N, C, H, W) -> (N, C, H', W'), H' = ⌊(H + 2·padding - dilation·(k - 1) - 1) /
    stride⌋ + 1 (⌈…⌉ with ceil_mode).

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.max_pool2d(bp.ones(1, 2, 28, 28), 2).shape
        (1, 2, 14, 14)
    """
    op = "max_pool2d"
    x, unbatched = _batched(op, input, 4)
    kernel, stride, pad, dilation = _pool_args(op, kernel_size, stride, padding, dilation,
                                               ceil_mode)
    _check_fits(op, x.shape, kernel, (pad[0], pad[0], pad[1], pad[1]), dilation)
    pads = _pool_pads(x.shape, kernel, stride, pad, dilation, ceil_mode)
    y, index = MaxPool.apply(x, kernel=kernel, stride=stride, padding=pads, dilation=dilation)
    if unbatched:
        y, index = squeeze(y, 0), squeeze(index, 0)
    return (y, index) if return_indices else y


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """1-D max pooling, as ``torch.nn.functional.max_pool1d``: max_pool2d on a height-1 view.

    Shapes: (N, C, L) or (C, L) -> (N, C, L'); indices are positions along L.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.max_pool1d(bp.ones(2, 3, 10), 3, stride=2).shape
        (2, 3, 4)
    """
    op = "max_pool1d"
    x, unbatched = _batched(op, input, 3)
    kernel, stride, (pad,), (dil,) = _pool_args(op, kernel_size, stride, padding, dilation,
                                                ceil_mode, n=1)
    y, index = max_pool2d(unsqueeze(x, 2), (1, kernel[0]), (1, stride[0]), (0, pad), (1, dil),
                          ceil_mode, return_indices=True)
    y, index = squeeze(y, 2), squeeze(index, 2)
    if unbatched:
        y, index = squeeze(y, 0), squeeze(index, 0)
    return (y, index) if return_indices else y


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    ``count_include_pad=False`` divides each window by the number of real (unpadded) pixels in
    it; ``divisor_override`` replaces the divisor altogether; ``ceil_mode`` rounds the output
    size up, the last partial window divided by its size within the padded input (PyTorch's
    rule).

    Shapes: (N, C, H, W) -> (N, C, H', W'), H' = ⌊(H + 2·padding - k) / stride⌋ + 1.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.avg_pool2d(bp.ones(1, 1, 4, 4), 2)
        tensor([[[[1., 1.],
                  [1., 1.]]]])
    """
    op = "avg_pool2d"
    x, unbatched = _batched(op, input, 4)
    kernel, stride, pad, _ = _pool_args(op, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override <= 0:
        raise ValueError(f"{op}: divisor_override must be positive, got {divisor_override}")
    _check_fits(op, x.shape, kernel, (pad[0], pad[0], pad[1], pad[1]), (1, 1))
    pads = _pool_pads(x.shape, kernel, stride, pad, (1, 1), ceil_mode)
    y = AvgPool.apply(x, kernel=kernel, stride=stride, padding=pads,
                      count_include_pad=bool(count_include_pad),
                      divisor_override=divisor_override)
    return squeeze(y, 0) if unbatched else y


def _adaptive_matrix(size: int, out: int, dtype) -> np.ndarray:
    """(out, size) averaging matrix of PyTorch's adaptive bins [⌊i·size/out⌋, ⌈(i+1)·size/out⌉)."""
    m = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output size, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output cell (i, j) averages rows ⌊i·H/H'⌋ to ⌈(i+1)·H/H'⌉ (and likewise columns). The mean
    over a rectangle is separable, so this is a composite: Pₕ · x · P_wᵀ with two constant
    averaging matrices, differentiable to any order through matmul.

    Args:
        output_size: an int, or an (H', W') pair where None keeps that input size.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.adaptive_avg_pool2d(bp.ones(2, 3, 7, 9), (1, 1)).shape
        (2, 3, 1, 1)
    """
    op = "adaptive_avg_pool2d"
    x, unbatched = _batched(op, input, 4)
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size, output_size)
    oh, ow = (x.shape[2 + k] if s is None else int(s) for k, s in enumerate(output_size))
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{op}: output_size must be positive, got {output_size}")
    h, w = x.shape[2:]
    dtype = x.dtype if x.dtype.kind == "f" else np.float32
    y = matmul(const(_adaptive_matrix(h, oh, dtype)), x)
    y = matmul(y, const(_adaptive_matrix(w, ow, dtype).T))
    return squeeze(y, 0) if unbatched else y
