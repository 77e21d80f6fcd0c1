"""Dropout layers: ``Dropout`` (elements) and ``Dropout2d`` (whole channels)."""

from __future__ import annotations

from backprop.nn import _functional_layers as FL
from backprop.nn.module import Module
from backprop.tensor import Tensor


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        FL._check_p(type(self).__name__, p)
        self.p, self.inplace = p, inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1 - p)
    (inverted dropout); the identity in eval mode. PyTorch's ``Dropout``.

    Args:
        p: probability of zeroing an element, in [0, 1].
        inplace: multiply the input in place.

    Shape: any -> same. Randomness comes from ``backprop.random.default_generator()``.

    Example:
        >>> import backprop as bp
        >>> bp.nn.Dropout(0.5).eval()(bp.ones(3))
        tensor([1., 1., 1.])
    """

    def forward(self, input: Tensor) -> Tensor:
        return FL.dropout(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels with probability ``p`` in training (scaling the rest by 1/(1 - p));
    the identity in eval mode. PyTorch's ``Dropout2d``.

    Shapes: (N, C, H, W) -> same, or (N, C, L) -> same.
    """

    def forward(self, input: Tensor) -> Tensor:
        return FL.dropout2d(input, self.p, self.training, self.inplace)
