"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backprop.optim.optimizer import Optimizer, _fast_kernels, _floats, _weight_decay
from backprop.tensor import Tensor


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (PyTorch's ``SGD``).

    For each parameter θ with gradient g, at step t::

        g ← -g                      if maximize
        g ← g + λ θ                 (weight_decay λ)
        b ← g  at t = 1,  else  b ← μ b + (1 - τ) g      (momentum μ ≠ 0, dampening τ)
        g ← g + μ b  if nesterov,  else  g ← b           (momentum μ ≠ 0)
        θ ← θ - γ g                 (lr γ)

    The buffer starts as the first gradient itself, undamped (PyTorch's rule, not b₀ = 0).

    Args:
        params: Tensors, or dicts of them with per-group options (see ``Optimizer``).
        lr: learning rate γ. momentum: μ. dampening: τ. weight_decay: L2 penalty λ.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: ascend the objective instead of descending.

    State: ``momentum_buffer`` (when momentum ≠ 0).

    Example:
        >>> import backprop as bp
        >>> w = bp.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = bp.optim.SGD([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w
        tensor([ 0.8, -1.6], requires_grad=True)
    """

    _elementwise_rule = True

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "momentum", "weight_decay"):
            self._check_range(name, group[name])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        return self._prepare_group([p], group)[0]

    def _prepare_group(self, params: list, group: dict) -> list:
        # _prepare's result for every parameter, with the hyperparameters read once and one
        # dict shared by the parameters in the same case (the flat update compares by identity)
        lr, momentum, dampening, weight_decay = _floats(
            group, "lr", "momentum", "dampening", "weight_decay")
        hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                     nesterov=bool(group["nesterov"]))
        states = self.state
        if momentum == 0:
            for p in params:
                states[p]  # noqa: B018 -- a parameter that stepped has a state entry (PyTorch)
            return [((), hyper)] * len(params)
        later = dict(hyper, first=False)
        first = dict(hyper, first=True)
        out = []
        for p in params:
            state = states[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = Tensor(np.zeros_like(p.data))
                out.append(((buf,), first))
            else:
                out.append(((buf,), later))
        return out

    @staticmethod
    def _rule(p, grad, buf=None, *, lr, momentum, dampening, weight_decay, nesterov,
              first=False) -> None:
        grad = _weight_decay(p, grad, lr, weight_decay)
        if momentum != 0 and not first and dampening == 0 and not nesterov:
            fk = _fast_kernels(p, grad, buf)
            if fk is not None:
                # one pass, the same operations and roundings as below (see _fast/optim.py)
                t = p.dtype.type
                fk.sgd_momentum(p.reshape(-1), grad.reshape(-1), buf.reshape(-1), t(momentum),
                                t(-lr))
                return
        if momentum != 0:
            if first:  # PyTorch's rule: the buffer starts as the first gradient, undamped
                buf[...] = grad
            else:
                buf *= momentum
                # (1 - 0)·g is g exactly: skip the extra pass over the parameters when undamped
                buf += grad if dampening == 0 else (1 - dampening) * grad
            grad = grad + momentum * buf if nesterov else buf
        p += grad * -lr
