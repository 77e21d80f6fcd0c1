"""How far a learning rule's updates are from backprop's: the angle between the two gradients.

``exact_gradients(model)`` makes every feedback-alignment layer and ``DFA`` wrapper in a model
run plain backprop for the duration of a ``with`` block (same weights, same forward values), so
the true gradient can be computed beside the rule's on the same batch. ``gradient_angles`` does
both and returns the angle per weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from backprop.nn.module import Module
from backprop.rules.dfa import DFA
from backprop.rules.fa import FAConv2d, FALinear

__all__ = ["alignment_angle", "exact_gradients", "gradient_angles"]

_RULE_MODULES = (FALinear, FAConv2d, DFA)


@contextmanager
def exact_gradients(model: Module) -> Iterator[Module]:
    """Within the block, the FA layers and DFA wrappers of ``model`` backpropagate exactly
    (FA layers use Wᵀ, DFA passes the error layer to layer). Forward values do not change.

    Example:
        >>> import backprop as bp
        >>> fa = bp.rules.feedback_alignment(bp.nn.Linear(3, 2))
        >>> with bp.rules.exact_gradients(fa):
        ...     fa(bp.ones(1, 3)).grad_fn.name()
        'AddmmBackward'
    """
    mods = [m for m in model.modules() if isinstance(m, _RULE_MODULES)]
    for m in mods:
        object.__setattr__(m, "_exact_gradient", True)
    try:
        yield model
    finally:
        for m in mods:
            object.__setattr__(m, "_exact_gradient", False)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return math.degrees(math.acos(float(np.clip(a @ b / (na * nb), -1.0, 1.0))))


def gradient_angles(model: Module, loss_fn, input, target) -> dict[str, float]:
    """The angle, in degrees, between the rule's gradient and backprop's for each weight.

    Runs ``loss_fn(model(input), target).backward()`` twice on the same batch, once as the rule
    and once inside ``exact_gradients``, in eval mode (so dropout draws nothing and both see
    the same forward), and restores every parameter's ``.grad`` and the training mode.

    Args:
        model: a module containing FA layers and/or DFA wrappers.
        loss_fn: ``loss_fn(outputs, targets)`` -> scalar Tensor.
        input, target: one batch.

    Returns:
        ``{name: degrees}`` for every parameter with 2 or more dimensions (the weights), in
        ``named_parameters`` order; 0 means the rule's update points exactly along the
        gradient, 90 that it is orthogonal to it. NaN when either gradient is zero.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    kept = [p.grad for _, p in named]
    was_training = model.training
    model.eval()
    try:
        grads = []
        for exact in (False, True):
            for _, p in named:
                p.grad = None
            if exact:
                with exact_gradients(model):
                    loss_fn(model(input), target).backward()
            else:
                loss_fn(model(input), target).backward()
            grads.append({n: None if p.grad is None else p.grad.data.copy() for n, p in named})
    finally:
        for (_, p), g in zip(named, kept):
            p.grad = g
        model.train(was_training)
    rule, true = grads
    return {n: _angle(rule[n], true[n]) if rule[n] is not None and true[n] is not None
            else float("nan")
            for n, p in named if p.ndim >= 2}


def alignment_angle(model: Module, loss_fn, input, target) -> float:
    """The mean of ``gradient_angles`` over the weights below the output layer (the last
    weight, whose gradient every rule computes exactly, is left out), in degrees."""
    angles = list(gradient_angles(model, loss_fn, input, target).values())[:-1]
    values = [a for a in angles if not math.isnan(a)]
    return float(np.mean(values)) if values else float("nan")
