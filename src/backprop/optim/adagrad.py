"""Adagrad: per-coordinate steps shrinking with the sum of squared gradients."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backprop.optim.optimizer import Optimizer, _floats, _weight_decay
from backprop.tensor import Tensor


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), PyTorch's ``Adagrad``.

    For each parameter θ with gradient g, at step t = 1, 2, ...::

        g ← -g                          if maximize
        g ← g + λ θ                     (weight_decay λ)
        γ̃ = γ / (1 + (t - 1) η)         (lr γ, lr_decay η)
        s ← s + g²                      (s₀ = initial_accumulator_value)
        θ ← θ - γ̃ g / (√s + ε)

    Args:
        params: Tensors, or dicts of them with per-group options (see ``Optimizer``).
        lr: γ. lr_decay: η. weight_decay: λ. initial_accumulator_value: s₀. eps: ε.
        maximize: ascend the objective instead of descending.

    State: ``step``, ``sum`` (s). PyTorch fills ``sum`` when the optimizer is built; here it is
    allocated at the first step, like every other optimizer's state.
    """

    _elementwise_rule = True

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check_range(name, group[name])

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        lr, lr_decay, weight_decay, eps = _floats(group, "lr", "lr_decay", "weight_decay", "eps")
        if not state:
            state["step"] = 0
            initial = float(group["initial_accumulator_value"])
            state["sum"] = Tensor(np.full_like(p.data, initial))
        state["step"] += 1
        clr = lr / (1 + (state["step"] - 1) * lr_decay)
        return (state["sum"],), dict(lr=lr, clr=clr, weight_decay=weight_decay, eps=eps)

    @staticmethod
    def _rule(p, grad, s, *, lr, clr, weight_decay, eps) -> None:
        grad = _weight_decay(p, grad, lr, weight_decay)
        s += grad * grad
        p += -clr * grad / (np.sqrt(s) + eps)
