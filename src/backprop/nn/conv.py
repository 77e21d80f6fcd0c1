"""Convolution layers: Conv1d, Conv2d and ConvTranspose2d (PyTorch's signatures, parameter
names, shapes and default initialisation)."""

from __future__ import annotations

import math

from backprop import creation
from backprop.devices import check_device
from backprop.nn import _functional_conv as F
from backprop.nn import init
from backprop.nn.module import Module, Parameter
from backprop.tensor import Tensor

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]


def _tuple(value, n: int) -> tuple:
    return (int(value),) * n if isinstance(value, int) else tuple(int(v) for v in value)


class _ConvNd(Module):
    """Shared constructor: checks, parameters and PyTorch's initialisation."""

    _n = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding,
                 dilation, groups: int, bias: bool, padding_mode: str, dtype,
                 output_padding=0) -> None:
        super().__init__()
        name = type(self).__name__
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"{name}: in_channels and out_channels must be positive, got "
                             f"{in_channels} and {out_channels}")
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: only padding_mode='zeros' is supported, got "
                                      f"{padding_mode!r}")
        n = self._n
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, n)
        self.stride = _tuple(stride, n)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', "
                                 f"got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 "convolutions")
            self.padding = padding
        else:
            self.padding = _tuple(padding, n)
        self.dilation = _tuple(dilation, n)
        self.output_padding = _tuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(creation.empty(*shape, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise as PyTorch does: kaiming_uniform_(a=√5) for the weight (U(±1/√fan_in)),
        U(±1/√fan_in) for the bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    """1-D convolution (cross-correlation) over (N, C_in, L), PyTorch's ``Conv1d``.

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size, stride, padding (int, 'same' or 'valid'), dilation: ints or 1-tuples.
        groups: independent channel groups. bias: learn a bias. padding_mode: 'zeros' only.
        dtype: parameter dtype (float32 by default).

    Shapes: (N, C_in, L) -> (N, C_out, L'); ``weight`` (C_out, C_in/groups, k), ``bias``
    (C_out,), both U(±1/√(C_in/groups·k)) as in PyTorch.

    Example:
        >>> import backprop as bp
        >>> bp.nn.Conv1d(3, 8, 5, padding="same")(bp.ones(2, 3, 20)).shape
        (2, 8, 20)
    """

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        check_device(device, "module")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation) over (N, C_in, H, W), PyTorch's ``Conv2d``.

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size, stride, padding (int, pair, 'same' or 'valid'), dilation: int or (h, w).
        groups: independent channel groups (``groups=in_channels``: depthwise).
        bias: learn a bias. padding_mode: 'zeros' only. dtype: float32 by default.

    Shapes: (N, C_in, H, W) -> (N, C_out, H', W'),
    H' = ⌊(H + 2·padding - dilation·(kH - 1) - 1) / stride⌋ + 1. ``weight`` is
    (C_out, C_in/groups, kH, kW), ``bias`` (C_out,), both U(±1/√fan_in) as in PyTorch.

    Example:
        >>> import backprop as bp
        >>> conv = bp.nn.Conv2d(1, 6, 5)
        >>> conv(bp.ones(64, 1, 28, 28)).shape
        (64, 6, 24, 24)
        >>> list(conv.state_dict())
        ['weight', 'bias']
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        check_device(device, "module")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution, PyTorch's ``ConvTranspose2d`` (the gradient of Conv2d with
    respect to its input; upsamples with stride > 1).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as
            Conv2d (padding removes rows/columns from the output instead of adding them).
        output_padding: extra rows/columns on the bottom/right of the output, to pick one of
            the input sizes a strided Conv2d maps to the same output size.

    Shapes: (N, C_in, H, W) -> (N, C_out, H', W'),
    H' = (H - 1)·stride - 2·padding + dilation·(kH - 1) + output_padding + 1. ``weight`` is
    (C_in, C_out/groups, kH, kW), as in PyTorch.

    Example:
        >>> import backprop as bp
        >>> bp.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)(
        ...     bp.ones(1, 4, 5, 5)).shape
        (1, 2, 10, 10)
    """

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        check_device(device, "module")
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, output_padding)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:  # choose output_padding to reach the requested size
            h, w = input.shape[-2:]
            sizes = tuple(output_size)[-2:]
            output_padding = tuple(
                int(want) - ((n - 1) * s - 2 * p + d * (k - 1) + 1)
                for want, n, s, p, d, k in zip(sizes, (h, w), self.stride, self.padding,
                                               self.dilation, self.kernel_size)
            )
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation)
