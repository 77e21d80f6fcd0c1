"""``backprop.nn.functional``: PyTorch's functional names, built from the core ops.

Layers call these; they never reimplement the maths. Losses live here too (see ``nn.loss``).
"""

from __future__ import annotations

import backprop as _bp
from backprop.errors import check_same_dtype
from backprop.nn._functional_conv import (
    adaptive_avg_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose2d,
    max_pool1d,
    max_pool2d,
)
from backprop.nn._functional_layers import (
    batch_norm,
    bilinear,
    dropout,
    dropout2d,
    embedding,
    layer_norm,
)
from backprop.nn.attention import multi_head_attention_forward, scaled_dot_product_attention
from backprop.nn.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    hinge_embedding_loss,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    multi_margin_loss,
    nll_loss,
    smooth_l1_loss,
    triplet_margin_loss,
)
from backprop.ops import activation as _act
from backprop.ops import inplace as _inplace
from backprop.ops.activation import gelu, softplus
from backprop.ops.elementwise import sigmoid, tanh
from backprop.ops.linalg import Addmm, MatMul
from backprop.ops.logical import one_hot
from backprop.ops.nn_ops import log_softmax, softmax
from backprop.ops.shape import pad
from backprop.tensor import Tensor

__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "conv1d", "conv2d", "conv_transpose2d",
    "max_pool1d", "max_pool2d",
    "batch_norm", "bilinear", "dropout", "dropout2d", "embedding", "layer_norm",
    "elu", "gelu", "leaky_relu", "linear", "log_softmax", "relu", "sigmoid", "silu", "softmax",
    "softplus", "tanh",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "l1_loss",
    "mse_loss", "nll_loss",
    "cosine_embedding_loss", "hinge_embedding_loss", "huber_loss", "kl_div", "multi_margin_loss",
    "smooth_l1_loss", "triplet_margin_loss",
    "multi_head_attention_forward", "one_hot", "pad", "scaled_dot_product_attention",
]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b. Shapes: input (*, in_features), weight (out_features, in_features),
    bias (out_features,) -> (*, out_features).

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.linear(bp.ones(2, 3), bp.ones(4, 3), bp.zeros(4)).shape
        (2, 4)
    """
    # (the arrays' attributes, not the Tensor properties: this runs for every layer of every step)
    x = input.data if isinstance(input, Tensor) else input
    w = weight.data if isinstance(weight, Tensor) else weight
    shape = x.shape
    if not shape or shape[-1] != w.shape[-1]:
        raise _bp.ShapeError(
            f"linear: input of shape {input.shape} does not fit a weight of shape "
            f"{weight.shape}: the input's last dimension must be in_features={weight.shape[-1]}"
        )
    if x.dtype is not w.dtype:
        check_same_dtype("linear", input, weight, layer=True)
    if len(shape) == 2 and isinstance(bias, Tensor) and bias.data.shape == w.shape[:1] \
            and bias.data.dtype is x.dtype and len(w.shape) == 2:
        return Addmm.apply(input, weight, bias)  # one op, as PyTorch's addmm
    if len(shape) == 1:
        out = _bp.matmul(input, weight.T)
    else:  # one op: the product with Wᵀ without materialising the transpose
        out = MatMul.apply(input, weight, transpose_b=True)
    return out if bias is None else out + bias


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0), elementwise; ``inplace=True`` writes it into ``input`` and returns it (as
    PyTorch's, with its rules: not on a leaf that requires grad while grad is recorded)."""
    return _inplace.relu_(input) if inplace else _act.relu(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope·x, elementwise (``inplace``: as ``relu``)."""
    if inplace:
        return _inplace.leaky_relu_(input, negative_slope)
    return _act.leaky_relu(input, negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha·(eˣ - 1), elementwise (``inplace``: as ``relu``)."""
    return _inplace.elu_(input, alpha) if inplace else _act.elu(input, alpha)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x·σ(x) (the swish activation; ``inplace``: as ``relu``)."""
    return _inplace.silu_(input) if inplace else input * sigmoid(input)
