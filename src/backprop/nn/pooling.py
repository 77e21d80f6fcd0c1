"""Pooling layers: MaxPool1d, MaxPool2d, AvgPool2d and AdaptiveAvgPool2d (PyTorch's names,
arguments and defaults; no parameters)."""

from __future__ import annotations

from backprop.nn import _functional_conv as F
from backprop.nn.module import Module
from backprop.tensor import Tensor

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool1d", "MaxPool2d"]


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling over (N, C, L), PyTorch's ``MaxPool1d``; see
    ``functional.max_pool1d``. ``stride`` defaults to ``kernel_size``.

    Example:
        >>> import backprop as bp
        >>> bp.nn.MaxPool1d(2)(bp.ones(1, 3, 8)).shape
        (1, 3, 4)
    """

    def forward(self, input: Tensor):
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling over (N, C, H, W), PyTorch's ``MaxPool2d``; see
    ``functional.max_pool2d``. ``stride`` defaults to ``kernel_size``; with
    ``return_indices=True`` the layer returns (output, indices).

    Example:
        >>> import backprop as bp
        >>> bp.nn.MaxPool2d(2)(bp.ones(64, 6, 24, 24)).shape
        (64, 6, 12, 12)
    """

    def forward(self, input: Tensor):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class AvgPool2d(Module):
    """2-D average pooling over (N, C, H, W), PyTorch's ``AvgPool2d``; see
    ``functional.avg_pool2d``.

    Example:
        >>> import backprop as bp
        >>> bp.nn.AvgPool2d(3, stride=2, padding=1)(bp.ones(1, 2, 8, 8)).shape
        (1, 2, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed (H', W') whatever the input size, PyTorch's
    ``AdaptiveAvgPool2d``; ``None`` in ``output_size`` keeps that input dimension.

    Example:
        >>> import backprop as bp
        >>> bp.nn.AdaptiveAvgPool2d((1, 1))(bp.ones(2, 16, 5, 7)).shape
        (2, 16, 1, 1)
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
