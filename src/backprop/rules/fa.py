"""Feedback alignment (Lillicrap et al. 2016): the backward pass through a layer uses a fixed
random matrix ``B`` instead of the transposed forward weight.

In backprop a layer y = x Wᵀ + b sends the error back as ∂L/∂x = G W (column form δₓ = Wᵀ δ_y).
Feedback alignment sends δₓ = B δ_y with a fixed random B: the forward weights are never needed
on the way back (no "weight transport"). The weight's own update is unchanged, ∂L/∂W = Gᵀ x, so
W slowly comes to agree with Bᵀ and the random feedback becomes useful ("alignment").

Each rule is a ``Function`` whose backward returns the feedback-alignment gradient for the input
and the usual gradients for the weight and bias; the layers are ``nn.Linear`` / ``nn.Conv2d``
subclasses holding B as a buffer (saved in ``state_dict``, never trained).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from backprop import creation
from backprop.autograd.engine import grad as _autograd_grad
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from backprop.errors import ShapeError
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.conv import Conv2d
from backprop.nn.linear import Linear
from backprop.nn.module import Module
from backprop.tensor import Tensor

__all__ = ["FAConv2d", "FALinear", "fa_conv2d", "fa_linear", "feedback_alignment"]


# --- functions ---


class FALinearFunction(Function):
    """y = x Wᵀ + b;  ∂L/∂x = G Bᵀ (B: fixed, (in, out), used where backprop uses Wᵀ),
    ∂L/∂W = Gᵀ x, ∂L/∂b = Σₙ G. With B = Wᵀ this is exactly backprop's Linear.

    Inputs (*, in) are treated as (N, in) with N the product of the leading dimensions.
    """

    label = "FALinear"

    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, feedback)
        y = np.matmul(x, weight.swapaxes(-1, -2))
        if bias is not None:
            y += bias
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, feedback = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = grad_out @ feedback.mT
        if need_w or need_b:
            g2 = grad_out.reshape(-1, grad_out.shape[-1])
            if need_w:
                grad_w = g2.mT @ x.reshape(-1, x.shape[-1])
            if need_b:
                grad_b = g2.sum(0)
        return grad_x, grad_w, grad_b, None


def fa_linear(input: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor) -> Tensor:
    """A linear map whose backward uses ``feedback`` in place of Wᵀ (feedback alignment).

    Args:
        input: (*, in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
        feedback: B, (in_features, out_features): the error reaching the input is G Bᵀ.

    Returns:
        (*, out_features), equal to ``nn.functional.linear(input, weight, bias)``.
    """
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"fa_linear: input of shape {input.shape} does not fit a weight of "
                         f"shape {weight.shape}: the input's last dimension must be "
                         f"in_features={weight.shape[-1]}")
    if tuple(feedback.shape) != tuple(weight.shape)[::-1]:
        raise ShapeError(f"fa_linear: the feedback matrix must have the transposed weight's "
                         f"shape {tuple(weight.shape)[::-1]}, got {feedback.shape}")
    return FALinearFunction.apply(input, weight, bias, feedback)


class FAConv2dFunction(Function):
    """y = conv2d(x, W, b);  ∂L/∂x = conv_transpose(G, B) (B: fixed, W's shape, used where
    backprop uses W), ∂L/∂W and ∂L/∂b as for conv2d. With B = W this is exactly backprop's.

    The backward differentiates two small graphs with ``autograd.grad`` (conv2d(x, B) for the
    input, conv2d(x, W) for the weight and bias), so every padding mode conv2d accepts works
    unchanged; it recomputes those two forward convolutions (a cost paid for simplicity).
    """

    label = "FAConv2d"

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, conv_args=None):
        ctx.conv_args = conv_args
        ctx.save_for_backward(x, weight, feedback)
        with no_grad():
            b = None if bias is None else Tensor(bias)
            return F.conv2d(Tensor(x), Tensor(weight), b, **conv_args).data

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, feedback = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        create = is_grad_enabled()  # on only under create_graph=True
        args = ctx.conv_args
        grad_x = grad_w = grad_b = None
        with enable_grad():
            if need_x:
                x_leaf = x if create else x.detach().requires_grad_()
                (grad_x,) = _autograd_grad(F.conv2d(x_leaf, feedback.detach(), None, **args),
                                           x_leaf, grad_out, create_graph=create)
            if need_w or need_b:
                w_leaf = weight if create else weight.detach().requires_grad_()
                b_leaf = None
                if need_b:
                    b_leaf = creation.zeros(weight.shape[0], dtype=weight.dtype,
                                            requires_grad=True)
                y = F.conv2d(x.detach(), w_leaf, b_leaf, **args)
                wanted = [t for t, need in ((w_leaf, need_w), (b_leaf, need_b)) if need]
                grads = list(_autograd_grad(y, wanted, grad_out, create_graph=create))
                grad_w = grads.pop(0) if need_w else None
                grad_b = grads.pop(0) if need_b else None
        return grad_x, grad_w, grad_b, None


def fa_conv2d(input: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor, stride=1,
              padding=0, dilation=1, groups: int = 1) -> Tensor:
    """A 2-D convolution whose backward uses ``feedback`` in place of the kernel.

    Args:
        input: (N, C_in, H, W).
        weight, feedback: (C_out, C_in / groups, kH, kW) each.
        bias: (C_out,) or None.
        stride, padding, dilation, groups: as ``nn.functional.conv2d``.

    Returns:
        (N, C_out, H', W'), equal to ``nn.functional.conv2d(input, weight, bias, ...)``.
    """
    if tuple(feedback.shape) != tuple(weight.shape):
        raise ShapeError(f"fa_conv2d: the feedback kernel must have the weight's shape "
                         f"{tuple(weight.shape)}, got {feedback.shape}")
    args = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return FAConv2dFunction.apply(input, weight, bias, feedback, conv_args=args)


# --- layers ---


def _random_feedback(shape: tuple, fan_in: int, dtype) -> Tensor:
    """A fixed random matrix with the forward weight's initial scale, U(±1/√fan_in)."""
    b = creation.empty(*shape, dtype=dtype)
    bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
    init.uniform_(b, -bound, bound)
    return b


class FALinear(Linear):
    """``nn.Linear`` trained by feedback alignment: y = x Wᵀ + b, but the error sent back to
    the input is G Bᵀ with a fixed random B instead of G W.

    Args:
        in_features, out_features, bias, dtype: as ``nn.Linear``.

    Attributes:
        weight, bias: as ``nn.Linear`` (trained as usual).
        feedback_weight: the buffer B, (in_features, out_features), U(±1/√in_features) (the
            forward weight's initial scale); in ``state_dict``, never trained.

    Shapes: (*, in_features) -> (*, out_features).

    Example:
        >>> import backprop as bp
        >>> layer = bp.rules.FALinear(4, 3)
        >>> layer.feedback_weight.shape
        (4, 3)
        >>> layer(bp.ones(2, 4)).shape
        (2, 3)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=None) -> None:
        super().__init__(in_features, out_features, bias=bias, dtype=dtype)
        self.register_buffer("feedback_weight", _random_feedback(
            (in_features, out_features), in_features, self.weight.dtype))

    def reset_feedback(self) -> None:
        """Draw a new B (from backprop's global generator)."""
        self.feedback_weight = _random_feedback(tuple(self.feedback_weight.shape),
                                                self.in_features, self.weight.dtype)

    def forward(self, input: Tensor) -> Tensor:
        if getattr(self, "_exact_gradient", False):  # inside rules.exact_gradients()
            return F.linear(input, self.weight, self.bias)
        return fa_linear(input, self.weight, self.bias, self.feedback_weight)


class FAConv2d(Conv2d):
    """``nn.Conv2d`` trained by feedback alignment: the error sent back to the input is the
    transposed convolution of G with a fixed random kernel B instead of the weight.

    Args:
        as ``nn.Conv2d`` (padding_mode 'zeros').

    Attributes:
        feedback_weight: the buffer B, the weight's shape (C_out, C_in / groups, kH, kW),
            U(±1/√fan_in); in ``state_dict``, never trained.

    Shapes: (N, C_in, H, W) -> (N, C_out, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)
        self.register_buffer("feedback_weight", None)
        self.reset_feedback()

    def reset_feedback(self) -> None:
        """Draw a new B (from backprop's global generator)."""
        fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
        self.feedback_weight = _random_feedback(tuple(self.weight.shape), fan_in,
                                                self.weight.dtype)

    def forward(self, input: Tensor) -> Tensor:
        if getattr(self, "_exact_gradient", False):
            return super().forward(input)
        return fa_conv2d(input, self.weight, self.bias, self.feedback_weight, self.stride,
                         self.padding, self.dilation, self.groups)


# --- conversion ---


def _convert(layer: Module) -> Module | None:
    """The feedback-alignment twin of a plain Linear/Conv2d, sharing copies of its weights."""
    if type(layer) is Linear:
        new = FALinear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                       dtype=layer.weight.dtype)
    elif type(layer) is Conv2d:
        if layer.padding_mode != "zeros":
            raise ValueError(f"feedback_alignment: {layer!r} has padding_mode "
                             f"{layer.padding_mode!r}; only 'zeros' is supported")
        new = FAConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                       layer.padding, layer.dilation, layer.groups, bias=layer.bias is not None,
                       dtype=layer.weight.dtype)
    else:
        return None
    new.weight = layer.weight
    new.bias = layer.bias
    new.train(layer.training)
    return new


def feedback_alignment(model: Module) -> Module:
    """A copy of ``model`` with every ``nn.Linear`` and ``nn.Conv2d`` replaced by its
    feedback-alignment twin (``FALinear``, ``FAConv2d``): same forward weights (copied), a new
    fixed random B per layer drawn from backprop's global generator. ``model`` is unchanged.

    Layers that are already FA layers, and every other module, are kept as they are.

    Example:
        >>> import backprop as bp
        >>> _ = bp.manual_seed(0)
        >>> net = bp.nn.Sequential(bp.nn.Linear(4, 8), bp.nn.ReLU(), bp.nn.Linear(8, 2))
        >>> fa = bp.rules.feedback_alignment(net)
        >>> [type(m).__name__ for m in fa]
        ['FALinear', 'ReLU', 'FALinear']
        >>> bool((fa[0].weight.data == net[0].weight.data).all())
        True
    """
    if not isinstance(model, Module):
        raise TypeError(f"feedback_alignment: expected an nn.Module, got "
                        f"{type(model).__name__}")
    model = copy.deepcopy(model)
    root = _convert(model)
    if root is not None:
        return root
    stack = [model]
    while stack:  # iterative: deep models must not hit the recursion limit
        parent = stack.pop()
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            new = _convert(child)
            if new is not None:
                parent._modules[name] = new  # in place: setattr would move it to the end
            else:
                stack.append(child)
    return model
