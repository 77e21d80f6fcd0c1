"""RMSprop: steps divided by a running root mean square of the gradient."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backprop.optim.optimizer import Optimizer, _floats, _weight_decay
from backprop.tensor import Tensor


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e; Graves 2013 for the centred form), PyTorch's ``RMSprop``.

    For each parameter θ with gradient g::

        g ← -g                          if maximize
        g ← g + λ θ                     (weight_decay λ)
        v ← α v + (1 - α) g²            (v₀ = 0)
        ḡ ← α ḡ + (1 - α) g;  s = √(v - ḡ²)   if centered,  else  s = √v
        b ← μ b + g / (s + ε);  θ ← θ - γ b     if momentum μ > 0   (b₀ = 0)
        θ ← θ - γ g / (s + ε)                   otherwise

    Args:
        params: Tensors, or dicts of them with per-group options (see ``Optimizer``).
        lr: learning rate γ. alpha: smoothing constant α. eps: ε. weight_decay: λ.
        momentum: μ. centered: normalise by an estimate of the gradient's variance.
        maximize: ascend the objective instead of descending.

    State: ``step``, ``square_avg`` (v), ``momentum_buffer`` (b, when μ > 0), ``grad_avg``
    (ḡ, when centered).
    """

    _elementwise_rule = True

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "eps", "weight_decay", "momentum"):
            self._check_range(name, group[name])
        self._check_range("alpha", group["alpha"], 0.0, 1.0, closed=True)

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        lr, alpha, eps, weight_decay, momentum = _floats(
            group, "lr", "alpha", "eps", "weight_decay", "momentum")
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor(np.zeros_like(p.data))
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = Tensor(np.zeros_like(p.data))
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = Tensor(np.zeros_like(p.data))
        state["step"] += 1
        buffers = (state["square_avg"],)
        if momentum > 0:
            buffers += (state["momentum_buffer"],)
        if group["centered"]:
            buffers += (state["grad_avg"],)
        return buffers, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                             momentum=momentum, centered=bool(group["centered"]))

    @staticmethod
    def _rule(p, grad, v, *rest, lr, alpha, eps, weight_decay, momentum, centered) -> None:
        buf = rest[0] if momentum > 0 else None
        g_avg = rest[-1] if centered else None
        grad = _weight_decay(p, grad, lr, weight_decay)
        v *= alpha
        v += (1 - alpha) * grad * grad
        if g_avg is not None:  # centered
            g_avg += (grad - g_avg) * (1 - alpha)  # PyTorch's lerp form
            avg = np.sqrt(v - g_avg * g_avg)
        else:
            avg = np.sqrt(v)
        avg += eps
        if buf is not None:  # momentum
            buf *= momentum
            buf += grad / avg
            p += buf * -lr
        else:
            p += -lr * grad / avg
