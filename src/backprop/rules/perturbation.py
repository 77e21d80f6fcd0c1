"""Weight perturbation: the finite-difference idea as a learning rule (SPSA, Spall 1992).

No gradient is computed at all. For a random direction Δ (each entry ±1) the loss is measured at
θ + εΔ and θ - εΔ on the same batch, and (L₊ - L₋) / 2ε · Δ estimates the gradient: its
expectation is the gradient up to O(ε²), its variance grows with the number of parameters, so
the rule only suits small networks. Averaging over K directions divides the variance by K.
"""

from __future__ import annotations

import numpy as np

from backprop import random as _random
from backprop.autograd.function import Function, once_differentiable
from backprop.autograd.grad_mode import is_grad_enabled, no_grad
from backprop.nn.module import Module
from backprop.tensor import Tensor

__all__ = ["PerturbationEstimate", "WeightPerturbation"]


class PerturbationEstimate(Function):
    """y = L(θ) (a scalar given by the caller);  "∂y/∂θ" := the SPSA estimate
    (1/K) Σₖ (L(θ + εΔₖ) - L(θ - εΔₖ)) / 2ε · Δₖ with Δₖ ∈ {-1, +1}^|θ| random — not the
    derivative, an estimate of it from 2K evaluations of the loss.

    ``apply(*params, loss_at=f, value=L(θ), epsilon=ε, directions=K)``: ``loss_at()`` returns
    the loss (a float) for the parameters' current values; the parameter arrays are perturbed
    in place around it and restored exactly.
    """

    @staticmethod
    def forward(ctx, *params, loss_at=None, value=0.0, epsilon=1e-3, directions=1):
        gen = _random.default_generator()
        saved = [p.copy() for p in params]
        estimates = [np.zeros_like(p) for p in params]
        try:
            for _ in range(directions):
                deltas = [gen.integers(0, 2, size=p.shape).astype(p.dtype) * 2 - 1
                          for p in params]
                for p, s, d in zip(params, saved, deltas):
                    np.add(s, epsilon * d, out=p)
                up = loss_at()
                for p, s, d in zip(params, saved, deltas):
                    np.subtract(s, epsilon * d, out=p)
                down = loss_at()
                slope = (up - down) / (2 * epsilon * directions)
                for e, d in zip(estimates, deltas):
                    e += slope * d
        finally:
            for p, s in zip(params, saved):
                np.copyto(p, s)
        ctx.estimates = estimates
        return np.asarray(value, dtype=params[0].dtype if params else np.float32)

    @staticmethod
    @once_differentiable  # the estimate is a constant array: there is nothing to differentiate
    def backward(ctx, grad_out):
        return tuple(grad_out * Tensor(e) for e in ctx.estimates)


class WeightPerturbation(Module):
    """Train ``model`` by weight perturbation (SPSA): gradient estimates from loss differences,
    no backward pass through the network.

    ``wp(x)`` runs the model without a graph and remembers ``x``; ``wp.loss(out, target)`` is
    ``loss_fn(out, target)`` whose ``backward()`` writes the SPSA estimate into every
    parameter's ``.grad``, so any optimizer and the training loop work unchanged:
    ``Trainer(wp, wp.loss, optim.Adam(wp.parameters()))``. Under ``no_grad`` (evaluation) the
    loss is just the loss.

    Args:
        model: any module; every parameter that requires grad is perturbed.
        loss_fn: ``loss_fn(outputs, targets)`` -> scalar Tensor (e.g. ``nn.CrossEntropyLoss()``).
        epsilon: ε, the perturbation size per weight.
        directions: K, random directions averaged per step (each costs two forward passes).

    Shapes: as ``model``.

    Example:
        >>> import backprop as bp
        >>> _ = bp.manual_seed(0)
        >>> net = bp.nn.Sequential(bp.nn.Linear(2, 4), bp.nn.Tanh(), bp.nn.Linear(4, 2))
        >>> wp = bp.rules.WeightPerturbation(net, bp.nn.CrossEntropyLoss(), directions=8)
        >>> x, y = bp.randn(6, 2), bp.tensor([0, 1, 0, 1, 1, 0])
        >>> wp.loss(wp(x), y).backward()
        >>> net[0].weight.grad.shape
        (4, 2)
    """

    def __init__(self, model: Module, loss_fn, epsilon: float = 1e-3,
                 directions: int = 1) -> None:
        super().__init__()
        if not epsilon > 0:
            raise ValueError(f"WeightPerturbation: epsilon must be positive, got {epsilon}")
        if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
            raise ValueError(f"WeightPerturbation: directions must be an int >= 1, got "
                             f"{directions!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.epsilon, self.directions = float(epsilon), directions
        self._last_input = None

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, directions={self.directions}"

    def forward(self, input: Tensor) -> Tensor:
        self._last_input = input
        with no_grad():
            return self.model(input)

    def loss(self, output: Tensor, target) -> Tensor:
        """``loss_fn(output, target)``; when grad mode is on, its backward sets the parameters'
        gradients to the SPSA estimate on the input of the last call."""
        with no_grad():
            value = self.loss_fn(output, target)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not is_grad_enabled() or not params:
            return value
        if self._last_input is None:
            raise RuntimeError("WeightPerturbation.loss: run the model on a batch first (the "
                               "estimate perturbs the weights on the input of that call)")
        x = self._last_input

        def loss_at() -> float:
            with no_grad():
                return float(self.loss_fn(self.model(x), target).item())

        return PerturbationEstimate.apply(*params, loss_at=loss_at, value=value.item(),
                                          epsilon=self.epsilon, directions=self.directions)
