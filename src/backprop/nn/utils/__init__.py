"""Gradient clipping, flattening parameters to one vector, weight penalties, and (in
``backprop.nn.utils.rnn``) packed variable-length sequences.

``clip_grad_norm_``, ``clip_grad_value_``, ``parameters_to_vector`` and ``vector_to_parameters``
are PyTorch's (``torch.nn.utils``), and so is the ``rnn`` submodule. ``l1_penalty`` and
``l2_penalty`` have no PyTorch counterpart: they are the regularisation terms one adds to the
loss by hand.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backprop.autograd.grad_mode import no_grad
from backprop.nn.module import Module
from backprop.nn.utils import rnn  # noqa: F401  (torch.nn.utils.rnn)
from backprop.ops import abs, cat, clamp, ne, norm, reshape, stack, to_dtype
from backprop.ops import sum as sum_of
from backprop.tensor import Tensor


def _tensors(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _vector_norm(x: Tensor, norm_type: float) -> Tensor:
    """‖x‖_p over all elements, in x's dtype (inf: max |x|; 0: number of non-zeros), as ops."""
    if norm_type == 0:
        return sum_of(to_dtype(ne(x, 0), x.dtype))
    return norm(x, norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients in place so that their joint norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients together, as if concatenated into
    one vector; every gradient is multiplied by ``min(1, max_norm / (total_norm + 1e-6))``.
    Parameters whose ``.grad`` is None are ignored. Everything is computed with ops (no value
    is read back into Python unless ``error_if_nonfinite``), so the op recorder sees it all.

    Args:
        parameters: a Tensor or an iterable of Tensors (``model.parameters()``).
        max_norm: the largest norm allowed.
        norm_type: p of the p-norm; ``float('inf')`` for the largest absolute value.
        error_if_nonfinite: raise RuntimeError if the total norm is NaN or infinite (otherwise
            the gradients are scaled by a NaN factor, as in PyTorch).

    Returns:
        The total norm of the gradients before clipping, a 0-d Tensor in their dtype.

    Example:
        >>> import backprop as bp
        >>> w = bp.tensor([3.0, 4.0], requires_grad=True)
        >>> (w * w).sum().backward()  # grad = [6, 8], norm 10
        >>> bp.nn.utils.clip_grad_norm_([w], max_norm=1.0)
        tensor(10.)
        >>> w.grad.data.round(4)  # scaled by 1 / (10 + 1e-6)
        array([0.6, 0.8], dtype=float32)
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    grads = [p.grad for p in _tensors(parameters) if p.grad is not None]
    if not grads:
        return Tensor(np.array(0.0, dtype=np.float32))
    dtype = np.result_type(*(g.data for g in grads))
    with no_grad():
        norms = stack([to_dtype(_vector_norm(g, norm_type), dtype) for g in grads])
        total_norm = _vector_norm(norms, norm_type)
        if error_if_nonfinite and not np.isfinite(total_norm.item()):
            raise RuntimeError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                f"{total_norm.item()}, so they cannot be clipped; set error_if_nonfinite=False "
                "to scale them by the non-finite norm anyway"
            )
        clip_coef = clamp(max_norm / (total_norm + 1e-6), max=1.0)
        for g in grads:
            g.mul_(clip_coef)
    return total_norm


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient elementwise to ``[-clip_value, clip_value]``, in place.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without ``.grad`` are ignored.
        clip_value: the largest absolute value a gradient element may keep.
    """
    clip_value = float(clip_value)
    with no_grad():
        for p in _tensors(parameters):
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and joined into one 1-D Tensor (differentiable).

    Shape: parameters of n₁, n₂, ... elements -> (n₁ + n₂ + ...,).
    """
    return cat([reshape(p, -1) for p in _tensors(parameters)])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place.

    The inverse of ``parameters_to_vector``. Unlike PyTorch, which rebinds each parameter's data
    to a view of ``vec``, the values are copied (cast to each parameter's dtype), so the
    parameters never alias ``vec``.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got {type(vec).__name__}")
    params = _tensors(parameters)
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.numel() != total:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector of {total} elements (the "
                         f"parameters' total), got shape {vec.shape}")
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec.data[offset:offset + n].reshape(p.shape))
            offset += n


def _penalised(module: Module, include_bias: bool) -> list[Tensor]:
    return [p for name, p in module.named_parameters()
            if include_bias or not name.rpartition(".")[2].startswith("bias")]


def _total(terms: list[Tensor]) -> Tensor:
    if not terms:
        return Tensor(np.array(0.0, dtype=np.float32))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def l1_penalty(module: Module, include_bias: bool = False) -> Tensor:
    """Σ |w| over the module's weights: add ``λ * l1_penalty(model)`` to the loss for L1
    regularisation (it drives weights to exactly zero). Differentiable; gradient sign(w).

    Biases (parameters whose own name starts with ``bias``) are left out unless
    ``include_bias=True``: a bias only shifts a unit's output and does not multiply an input,
    so penalising it adds bias (towards zero output) without curbing overfitting; the usual
    recipe (Goodfellow et al., *Deep Learning*, §7.1) regularises weights only. PyTorch has no
    such function (its optimizers' ``weight_decay`` decays every parameter in the group).

    Returns:
        A 0-d Tensor (0.0 when the module has no penalised parameters).
    """
    return _total([abs(p).sum() for p in _penalised(module, include_bias)])


def l2_penalty(module: Module, include_bias: bool = False) -> Tensor:
    """Σ w² over the module's weights (no ½): add ``λ * l2_penalty(model)`` to the loss for L2
    regularisation. Differentiable; gradient 2w, so SGD's ``weight_decay=λ`` equals adding
    ``λ/2 * l2_penalty`` (over the same parameters).

    Biases are left out unless ``include_bias=True``, for the reasons given in ``l1_penalty``.

    Returns:
        A 0-d Tensor (0.0 when the module has no penalised parameters).
    """
    return _total([(p * p).sum() for p in _penalised(module, include_bias)])
