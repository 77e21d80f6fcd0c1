"""Adadelta: steps whose units match the parameter's, with no learning rate to tune."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backprop.optim.optimizer import Optimizer, _floats, _weight_decay
from backprop.tensor import Tensor


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), PyTorch's ``Adadelta``.

    For each parameter θ with gradient g::

        g ← -g                              if maximize
        g ← g + λ θ                         (weight_decay λ)
        v ← ρ v + (1 - ρ) g²                (v₀ = 0)
        Δ = √(u + ε) / √(v + ε) · g         (u₀ = 0)
        u ← ρ u + (1 - ρ) Δ²
        θ ← θ - γ Δ                         (lr γ, 1.0 as in the paper)

    Args:
        params: Tensors, or dicts of them with per-group options (see ``Optimizer``).
        lr: γ, scales Δ. rho: ρ, in [0, 1]. eps: ε. weight_decay: λ.
        maximize: ascend the objective instead of descending.

    State: ``step``, ``square_avg`` (v), ``acc_delta`` (u).
    """

    _elementwise_rule = True

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      foreach=foreach, capturable=capturable,
                                      maximize=maximize, differentiable=differentiable))

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "eps", "weight_decay"):
            self._check_range(name, group[name])
        self._check_range("rho", group["rho"], 0.0, 1.0, closed=True)

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        lr, rho, eps, weight_decay = _floats(group, "lr", "rho", "eps", "weight_decay")
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor(np.zeros_like(p.data))
            state["acc_delta"] = Tensor(np.zeros_like(p.data))
        state["step"] += 1
        return (state["square_avg"], state["acc_delta"]), dict(
            lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)

    @staticmethod
    def _rule(p, grad, v, u, *, lr, rho, eps, weight_decay) -> None:
        grad = _weight_decay(p, grad, lr, weight_decay)
        v *= rho
        v += (1 - rho) * grad * grad
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * grad
        u *= rho
        u += (1 - rho) * delta * delta
        p += delta * -lr
