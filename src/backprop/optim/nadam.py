"""NAdam: Adam with Nesterov momentum and a momentum schedule."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backprop.optim.optimizer import Optimizer, _floats, _weight_decay
from backprop.tensor import Tensor


class NAdam(Optimizer):
    r"""NAdam (Dozat, 2016), PyTorch's ``NAdam`` with its μ-product formulation.

    For each parameter θ with gradient g, at step t = 1, 2, ...::

        g ← -g                                  if maximize
        g ← g + λ θ  (weight_decay λ);  or  θ ← θ (1 - γ λ)  if decoupled_weight_decay
        μₜ = β₁ (1 - ½ · 0.96^(t ψ))            (momentum_decay ψ)
        Πₜ = μ₁ μ₂ ⋯ μₜ                          (state "mu_product")
        m ← β₁ m + (1 - β₁) g;   v ← β₂ v + (1 - β₂) g²          (m₀ = v₀ = 0)
        d = √(v / (1 - β₂ᵗ)) + ε
        θ ← θ - γ (1 - μₜ) / (1 - Πₜ) · g / d - γ μₜ₊₁ / (1 - Πₜ μₜ₊₁) · m / d

    Args:
        params: Tensors, or dicts of them with per-group options (see ``Optimizer``).
        lr: γ. betas: (β₁, β₂), each in [0, 1). eps: ε. weight_decay: λ.
        momentum_decay: ψ. decoupled_weight_decay: shrink θ directly (as AdamW).
        maximize: ascend the objective instead of descending.

    State: ``step`` (an int), ``mu_product`` (Πₜ, a Python float), ``exp_avg`` (m),
    ``exp_avg_sq`` (v). PyTorch keeps ``mu_product`` as a tensor of the default dtype, so in
    float32 it rounds Πₜ to float32 where this keeps it in double precision.
    """

    _elementwise_rule = True

    def __init__(self, params: Iterable, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      foreach=foreach, maximize=maximize,
                                      capturable=capturable, differentiable=differentiable))

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "eps", "weight_decay", "momentum_decay"):
            self._check_range(name, group[name])
        self._check_betas(group["betas"])

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        lr, eps, weight_decay, psi = _floats(group, "lr", "eps", "weight_decay",
                                             "momentum_decay")
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state["step"] = 0
            state["mu_product"] = 1.0
            state["exp_avg"] = Tensor(np.zeros_like(p.data))
            state["exp_avg_sq"] = Tensor(np.zeros_like(p.data))
        state["step"] += 1
        step = state["step"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        mu_product = state["mu_product"] = state["mu_product"] * mu
        return (state["exp_avg"], state["exp_avg_sq"]), dict(
            lr=lr, eps=eps, weight_decay=weight_decay, beta1=beta1, beta2=beta2, step=step,
            mu=mu, mu_next=mu_next, mu_product=mu_product,
            decoupled=bool(group["decoupled_weight_decay"]))

    @staticmethod
    def _rule(p, grad, m, v, *, lr, eps, weight_decay, beta1, beta2, step, mu, mu_next,
              mu_product, decoupled) -> None:
        grad = _weight_decay(p, grad, lr, weight_decay, decoupled)
        m += (grad - m) * (1 - beta1)  # PyTorch's lerp form of β₁ m + (1 - β₁) g
        v *= beta2
        v += (1 - beta2) * grad * grad
        denom = np.sqrt(v / (1 - beta2**step)) + eps
        p += -lr * (1.0 - mu) / (1.0 - mu_product) * grad / denom
        p += -lr * mu_next / (1.0 - mu_product * mu_next) * m / denom
