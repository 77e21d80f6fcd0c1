"""The functional forms of the dropout, normalisation, embedding and bilinear layers.

All but one are composites of existing ops (STYLE: none of them needs its own gradient rule),
so their gradients, and gradients of gradients, follow automatically. The exception is batch
normalisation with batch statistics: the fused op ``backprop.ops.nn_ops.BatchNorm`` (for speed),
whose backward is differentiable too. ``backprop.nn.functional`` re-exports them under PyTorch's
names.
"""

from __future__ import annotations

import warnings

import numpy as np

from backprop.autograd.grad_mode import no_grad
from backprop.errors import ShapeError
from backprop.ops.elementwise import where
from backprop.ops.linalg import einsum
from backprop.ops.nn_ops import batch_norm_train, dropout_mask
from backprop.ops.reduction import mean
from backprop.ops.shape import index_select, reshape
from backprop.tensor import Tensor

__all__ = ["batch_norm", "bilinear", "dropout", "dropout2d", "embedding", "layer_norm"]


# --- dropout ---


def _check_p(op: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def _apply_mask(input: Tensor, mask_shape: tuple, p: float, inplace: bool) -> Tensor:
    # Inverted dropout: keep with probability 1 - p and scale by 1/(1 - p), so the expectation
    # is unchanged and evaluation needs no rescaling
    mask = dropout_mask(mask_shape, p, input.dtype)
    return input.mul_(mask) if inplace else input * mask


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1 - p) (inverted
    dropout); the identity when ``training`` is False. Shape: any -> same.

    The mask is drawn from ``backprop.random.default_generator()``, so ``backprop.manual_seed``
    makes it reproducible.

    Example:
        >>> import backprop as bp
        >>> bp.nn.functional.dropout(bp.ones(4), p=0.5, training=False)
        tensor([1., 1., 1., 1.])
    """
    _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    return _apply_mask(input, input.shape, p, inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels with probability ``p`` (the same for every position of a channel)
    and scale the rest by 1/(1 - p); the identity when ``training`` is False.

    Shapes: (N, C, H, W) -> same, or (N, C, L) -> same (channel-wise 1-D dropout, as PyTorch
    does for 3-D input). Other ranks behave as in PyTorch: a warning, then one mask entry per
    (N, C) pair, so a 2-D (N, C) input is dropped element-wise; 1-D input raises.
    """
    _check_p("dropout2d", p)
    if input.ndim < 2:
        raise ShapeError(
            f"dropout2d: feature dropout requires at least 2 dimensions in the input, got shape "
            f"{tuple(input.shape)}"
        )
    if input.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: received a {input.ndim}-D input of shape {tuple(input.shape)}; "
            "dropout2d drops whole channels of (N, C, H, W) or (N, C, L) inputs, so here each "
            "(N, C) entry is dropped with its trailing dimensions (element-wise for 2-D input). "
            "Use dropout for element-wise dropout (PyTorch warns the same and will raise in a "
            "future release)", stacklevel=2,
        )
    if not training or p == 0.0:
        return input
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return _apply_mask(input, mask_shape, p, inplace)


# --- normalisation ---


def _check_channel_vector(op: str, name: str, t, c: int) -> None:
    if t is not None and tuple(t.shape) != (c,):
        raise ShapeError(
            f"{op}: {name} must have shape ({c},) (one entry per channel of the input), "
            f"got shape {tuple(t.shape)}"
        )


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over every dimension but the channel dimension 1.

    y = (x - μ) / √(σ² + eps) · weight + bias. In training (or without running statistics), μ
    and σ² are the batch mean and *biased* variance per channel, and ``running_mean`` /
    ``running_var`` (if given) are updated in place as
    ``running = (1 - momentum)·running + momentum·batch`` with the *unbiased* batch variance,
    exactly as PyTorch. Otherwise the running statistics are used.

    Shapes: input (N, C), (N, C, L) or (N, C, H, W) (any (N, C, *)) -> same; running_mean,
    running_var, weight, bias (C,).
    """
    if input.ndim < 2:
        raise ShapeError(
            f"batch_norm: expected an input of shape (N, C, *), got shape {tuple(input.shape)}"
        )
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_channel_vector("batch_norm", name, t, c)
    if training or running_mean is None or running_var is None:
        n = input.numel() // c
        if training and n <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input "
                f"of shape {tuple(input.shape)}"
            )
        # one fused op (normalise, scale, shift) instead of about nine elementwise ones
        out, mu, var = batch_norm_train(input, weight, bias, eps)
        if training:
            with no_grad():
                _update_running(running_mean, mu, momentum)
                if running_var is not None:
                    _update_running(running_var, var * (n / (n - 1)), momentum)
        return out
    # running statistics: the per-channel scale γ/√(σ² + eps) is computed on (C,) vectors, so
    # the full-size work is one subtraction, one multiplication and one addition
    stat_shape = (1, c) + (1,) * (input.ndim - 2)
    scale = (running_var + eps) ** -0.5
    if weight is not None:
        scale = scale * weight
    out = (input - reshape(running_mean, stat_shape)) * reshape(scale, stat_shape)
    if bias is not None:
        out = out + reshape(bias, stat_shape)
    return out


def _update_running(running: Tensor | None, batch: Tensor, momentum: float) -> None:
    if running is None:
        return
    # in-place ops under the caller's no_grad: versioned, and seen by the op recorder
    running.mul_(1.0 - momentum).add_(batch, alpha=momentum)


def _normalized_shape(normalized_shape) -> tuple:
    if isinstance(normalized_shape, (int, np.integer)):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` dimensions:
    y = (x - μ) / √(σ² + eps) · weight + bias with the biased variance, as PyTorch.

    Shapes: input (*, *normalized_shape) -> same; weight, bias ``normalized_shape``.

    Example:
        >>> import backprop as bp
        >>> y = bp.nn.functional.layer_norm(bp.tensor([[1.0, 3.0]]), (2,))
        >>> y.shape
        (1, 2)
    """
    shape = _normalized_shape(normalized_shape)
    k = len(shape)
    if k == 0 or tuple(input.shape[input.ndim - k:]) != shape or input.ndim < k:
        raise ShapeError(
            f"layer_norm: input of shape {tuple(input.shape)} does not end in normalized_shape "
            f"{shape}: expected an input of shape (*, {', '.join(map(str, shape))})"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ShapeError(
                f"layer_norm: {name} must have shape normalized_shape={shape}, got shape "
                f"{tuple(t.shape)}"
            )
    dims = tuple(range(input.ndim - k, input.ndim))
    centred = input - mean(input, dims, keepdim=True)
    var = mean(centred * centred, dims, keepdim=True)
    out = centred / (var + eps) ** 0.5
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


# --- embedding ---


def embedding(input, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Look up rows of ``weight``: ``weight[input]``. Entries equal to ``padding_idx`` pass no
    gradient to that row, as in PyTorch.

    Shapes: input (*) integer indices in [0, num_embeddings), weight
    (num_embeddings, embedding_dim) -> (*, embedding_dim).

    Example:
        >>> import backprop as bp
        >>> w = bp.arange(6.0).reshape(3, 2)
        >>> bp.nn.functional.embedding(bp.tensor([2, 0]), w)
        tensor([[4., 5.],
                [0., 1.]])
    """
    idx = input.data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(
            f"embedding: indices must be an integer tensor (int32 or int64), got dtype {idx.dtype}"
        )
    if weight.ndim != 2:
        raise ShapeError(
            f"embedding: weight must have shape (num_embeddings, embedding_dim), got shape "
            f"{tuple(weight.shape)}"
        )
    num = weight.shape[0]
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= num:
            bad = lo if lo < 0 else hi
            raise IndexError(
                f"embedding: index {bad} is out of range for a table of {num} rows (indices must "
                f"be in [0, {num - 1}])"
            )
    flat = idx.reshape(-1)
    out = reshape(index_select(weight, 0, flat), idx.shape + (weight.shape[1],))
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += num
        pad = (idx == padding_idx)[..., None]
        if pad.any():
            out = where(pad, out.detach(), out)  # the padding row receives no gradient
    return out


# --- bilinear ---


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None):
    """yₖ = x₁ᵀ Wₖ x₂ + bₖ for every output feature k.

    Shapes: input1 (*, in1_features), input2 (*, in2_features) with the same leading
    dimensions, weight (out_features, in1_features, in2_features), bias (out_features,)
    -> (*, out_features).
    """
    if weight.ndim != 3:
        raise ShapeError(
            f"bilinear: weight must have shape (out_features, in1_features, in2_features), got "
            f"shape {tuple(weight.shape)}"
        )
    _, in1, in2 = weight.shape
    if (input1.ndim == 0 or input2.ndim == 0 or input1.shape[-1] != in1
            or input2.shape[-1] != in2 or input1.shape[:-1] != input2.shape[:-1]):
        raise ShapeError(
            f"bilinear: inputs of shapes {tuple(input1.shape)} and {tuple(input2.shape)} do not "
            f"fit a weight of shape {tuple(weight.shape)}: expected (*, {in1}) and (*, {in2}) "
            "with the same leading dimensions"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(
            f"bilinear: bias must have shape ({weight.shape[0]},), got shape {tuple(bias.shape)}"
        )
    out = einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias

