"""Linear layers and the shape helpers Identity, Flatten and Unflatten."""

from __future__ import annotations

import math

from backprop import creation
from backprop.devices import check_device
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.module import Module, Parameter
from backprop.ops.shape import flatten, reshape
from backprop.tensor import Tensor


class Linear(Module):
    """y = x Wᵀ + b, PyTorch's ``Linear``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: whether to learn an additive bias.
        dtype: parameter dtype (float32 by default).

    Shapes: (*, in_features) -> (*, out_features). ``weight`` is (out_features, in_features),
    initialised as PyTorch does: kaiming_uniform_(a=√5), i.e. U(-1/√in, 1/√in), as is ``bias``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=None, device=None) -> None:
        super().__init__()
        check_device(device, "module")
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"Linear: in_features and out_features must be positive, got {in_features} and "
                f"{out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(creation.empty(out_features, in_features, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise as PyTorch does."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim``: (N, C, H, W) -> (N, C·H·W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size``: (N, 12) -> (N, 3, 4)."""

    def __init__(self, dim: int, unflattened_size) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        shape = list(input.shape)
        d = self.dim % input.ndim
        return reshape(input, tuple(shape[:d]) + self.unflattened_size + tuple(shape[d + 1 :]))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Bilinear(Module):
    """yₖ = x₁ᵀ Wₖ x₂ + bₖ: PyTorch's ``Bilinear``.

    Args:
        in1_features: size of each first input sample.
        in2_features: size of each second input sample.
        out_features: size of each output sample.
        bias: whether to learn an additive bias.
        dtype: parameter dtype (float32 by default).

    Shapes: (*, in1_features), (*, in2_features) -> (*, out_features). ``weight`` is
    (out_features, in1_features, in2_features); weight and bias are initialised as PyTorch
    does: U(-1/√in1_features, 1/√in1_features).

    Example:
        >>> import backprop as bp
        >>> bp.nn.Bilinear(3, 4, 5)(bp.ones(2, 3), bp.ones(2, 4)).shape
        (2, 5)
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, dtype=None,
                 device=None) -> None:
        super().__init__()
        check_device(device, "module")
        if min(in1_features, in2_features, out_features) <= 0:
            raise ValueError(
                f"Bilinear: in1_features, in2_features and out_features must be positive, got "
                f"{in1_features}, {in2_features} and {out_features}"
            )
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        self.weight = Parameter(
            creation.empty(out_features, in1_features, in2_features, dtype=dtype)
        )
        if bias:
            self.bias = Parameter(creation.empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise as PyTorch does."""
        bound = 1 / math.sqrt(self.in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
