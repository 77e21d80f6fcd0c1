"""Adam (with AMSGrad) and AdamW, its decoupled-weight-decay variant."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backprop.optim.optimizer import Optimizer, _fast_kernels, _floats, _weight_decay
from backprop.tensor import Tensor


class Adam(Optimizer):
    r"""Adam: steps scaled by running averages of the gradient and its square (PyTorch's ``Adam``).

    For each parameter θ with gradient g, at step t = 1, 2, ...::

        g ← -g                                  if maximize
        g ← g + λ θ   (L2, weight_decay λ);  or  θ ← θ (1 - γ λ)  if decoupled_weight_decay
        m ← β₁ m + (1 - β₁) g                   (m₀ = 0)
        v ← β₂ v + (1 - β₂) g²                  (v₀ = 0)
        v̂ ← max(v̂, v)  if amsgrad,  else  v̂ ← v
        θ ← θ - γ / (1 - β₁ᵗ) · m / (√v̂ / √(1 - β₂ᵗ) + ε)

    Args:
        params: Tensors, or dicts of them with per-group options (see ``Optimizer``).
        lr: learning rate γ. betas: (β₁, β₂), each in [0, 1). eps: ε, added for stability.
        weight_decay: λ (an L2 penalty on the gradient unless decoupled).
        amsgrad: normalise by the largest v so far (Reddi et al., 2018).
        maximize: ascend the objective instead of descending.
        decoupled_weight_decay: shrink θ directly, as AdamW does.

    State: ``step`` (an int), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (amsgrad).

    Example:
        >>> import backprop as bp
        >>> w = bp.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = bp.optim.Adam([w], lr=0.5)
        >>> (w * w).sum().backward()
        >>> opt.step()  # the first Adam step moves each weight by about lr
        >>> w.data.round(4)
        array([ 0.5, -1.5], dtype=float32)
    """

    _elementwise_rule = True

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                                      capturable=capturable, differentiable=differentiable,
                                      fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "eps", "weight_decay"):
            self._check_range(name, group[name])
        self._check_betas(group["betas"])

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        return self._prepare_group([p], group)[0]

    def _prepare_group(self, params: list, group: dict) -> list:
        # _prepare's result for every parameter with the hyperparameters read once; parameters
        # at the same step share one dict (the flat update compares by identity)
        lr, eps, weight_decay = _floats(group, "lr", "eps", "weight_decay")
        beta1, beta2 = (float(b) for b in group["betas"])
        amsgrad = bool(group["amsgrad"])
        base = dict(lr=lr, eps=eps, weight_decay=weight_decay, beta1=beta1, beta2=beta2,
                    decoupled=bool(group["decoupled_weight_decay"]))
        by_step: dict = {}
        states = self.state
        out = []
        for p in params:
            state = states[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = Tensor(np.zeros_like(p.data))
                state["exp_avg_sq"] = Tensor(np.zeros_like(p.data))
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = Tensor(np.zeros_like(p.data))
            step = state["step"] = state["step"] + 1
            hyper = by_step.get(step)
            if hyper is None:
                hyper = by_step[step] = dict(base, step=step)
            buffers = (state["exp_avg"], state["exp_avg_sq"])
            if amsgrad:
                buffers += (state["max_exp_avg_sq"],)
            out.append((buffers, hyper))
        return out

    @staticmethod
    def _rule(p, grad, m, v, v_max=None, *, lr, eps, weight_decay, beta1, beta2, step,
              decoupled) -> None:
        grad = _weight_decay(p, grad, lr, weight_decay, decoupled)
        if v_max is None:
            fk = _fast_kernels(p, grad, m, v)
            if fk is not None:
                # one pass, the same operations and roundings as below (see _fast/optim.py)
                t = p.dtype.type
                fk.adam(p.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                        t(1 - beta1), t(beta2), t(1 - beta2), t((1 - beta2**step) ** 0.5),
                        t(eps), t(-(lr / (1 - beta1**step))))
                return
        m += (grad - m) * (1 - beta1)  # PyTorch's lerp form of β₁ m + (1 - β₁) g
        v *= beta2
        v += (1 - beta2) * grad * grad
        if v_max is not None:  # amsgrad
            np.maximum(v_max, v, out=v_max)
            v = v_max
        step_size = lr / (1 - beta1**step)
        denom = np.sqrt(v) / (1 - beta2**step) ** 0.5 + eps
        p += -step_size * m / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019; PyTorch's ``AdamW``).

    The Adam update with ``θ ← θ (1 - γ λ)`` applied to the parameter before the step, instead
    of adding λ θ to the gradient, so the decay is not rescaled by the adaptive denominator.
    The default weight_decay is 0.01. Arguments and state are Adam's.

    Example:
        >>> import backprop as bp
        >>> w = bp.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = bp.optim.AdamW([w], lr=0.5, weight_decay=0.5)
        >>> (w * w).sum().backward()
        >>> opt.step()  # θ (1 - 0.5·0.5) - 0.5·sign(g)
        >>> w.data.round(4)
        array([ 0.25, -1.  ], dtype=float32)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
