"""Sophia: a clipped, diagonally preconditioned update with a Hessian estimate refreshed every k
steps (Liu et al., 2023), with the Hutchinson and the Gauss-Newton-Bartlett estimators."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from backprop.autograd.engine import grad as autograd_grad
from backprop.autograd.grad_mode import enable_grad, no_grad
from backprop.nn.functional import cross_entropy
from backprop.optim.optimizer import Optimizer, _floats, _weight_decay
from backprop.random import default_generator
from backprop.tensor import Tensor

ESTIMATORS = ("hutchinson", "gnb")


class Sophia(Optimizer):
    r"""Sophia: Second-order Clipped Stochastic Optimization (Liu, Li, Hall, Liang, Ma, 2023).

    For each parameter θ with gradient g, at step t = 1, 2, ... (Algorithm 3 of the paper)::

        m ← β₁ m + (1 - β₁) g                              (m₀ = 0)
        h ← β₂ h + (1 - β₂) ĥ     if t ≡ 1 (mod k), else h is kept   (h₀ = 0)
        θ ← θ - γ λ θ                                      (decoupled weight decay)
        θ ← θ - γ · clip(m / max(ρ h, ε), -1, 1)           (elementwise)

    γ is ``lr`` and ρ is ``rho`` (the paper's γ; the name and default of the authors' code).
    The clip bounds every coordinate's step by γ, also where h is tiny or negative (a
    Hutchinson estimate can be), which then falls back to a sign-momentum step γ·sign(m).
    There is no bias correction: the first refresh, at t = 1, gives h = (1 - β₂) ĥ.

    ĥ, the diagonal Hessian estimate, is computed at the current θ (before the update) from what
    the closure returns:

    - ``estimator="hutchinson"`` (Sophia-H): the closure returns the scalar loss L. With u a
      Rademacher vector (±1 with equal probability, over all parameters at once)::

          ĥ = u ⊙ (∇²L u),   E[ĥ] = diag(∇²L)

      ∇²L u is a Hessian-vector product: the gradient of ⟨∇L, u⟩, where ∇L is taken with
      ``create_graph=True``.
    - ``estimator="gnb"`` (Gauss-Newton-Bartlett, Sophia-G), for a softmax / cross-entropy
      output: the closure returns the logits, shape (B, C) or (..., C) with the classes last
      (B = the number of rows). Labels ŷ are sampled from softmax(logits), L̂ is the mean
      cross-entropy of the logits against ŷ, and::

          ĥ = B · ∇L̂ ⊙ ∇L̂,   E[ĥ] = diag of the Gauss-Newton matrix of the mean loss

    Closure contract: the usual ``zero_grad() -> loss.backward() -> step(closure)`` loop
    supplies g through ``.grad`` as for every optimizer. ``closure`` is called (under
    ``enable_grad``) only on the steps that refresh the estimate, and must then re-run the
    forward pass on the batch and return the loss (Hutchinson) or the logits (GNB) *without*
    calling ``backward()``: the optimizer differentiates it itself, leaving ``.grad`` alone.
    A refresh step without a closure raises. ``step`` returns the closure's result on refresh
    steps, else None.

    Random draws (u, ŷ) come from ``generator``, or from ``backprop``'s global generator
    (``backprop.manual_seed``) when it is None. As in PyTorch, the generator is not part of
    ``state_dict``.

    Args:
        params: Tensors, or dicts of them with per-group options (see ``Optimizer``).
        lr: learning rate γ, the largest step of any coordinate (before weight decay).
        betas: (β₁, β₂), the decays of m and of h, each in [0, 1).
        rho: ρ, the scale of h in the denominator (paper's γ); larger ρ, smaller steps.
        weight_decay: decoupled weight decay λ.
        k: refresh the Hessian estimate every k steps (on steps 1, k + 1, 2k + 1, ...).
        eps: ε > 0, the floor of the denominator.
        estimator: ``"hutchinson"`` or ``"gnb"`` (the same for every group).
        generator: a ``numpy.random.Generator`` for the estimator's draws.

    State: ``step`` (an int), ``exp_avg`` (m), ``hessian`` (h).

    Example:
        >>> import backprop as bp
        >>> w = bp.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = bp.optim.Sophia([w], lr=0.1, weight_decay=0.0, rho=1.0)
        >>> loss_fn = lambda: (w * w).sum()  # Hessian 2 I
        >>> loss_fn().backward()
        >>> _ = opt.step(loss_fn)  # m = 0.035 g = 0.07 θ, h = 0.01 · 2: clip(3.5 θ) = sign(θ)
        >>> w.data.round(4)
        array([ 0.9, -1.9], dtype=float32)
    """

    def __init__(self, params: Iterable, lr: float = 1e-4,
                 betas: tuple[float, float] = (0.965, 0.99), rho: float = 0.04,
                 weight_decay: float = 1e-1, *, k: int = 10, eps: float = 1e-12,
                 estimator: str = "hutchinson",
                 generator: np.random.Generator | None = None) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, rho=rho, weight_decay=weight_decay,
                                      k=k, eps=eps, estimator=estimator))
        self.generator = generator

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "rho", "weight_decay"):
            self._check_range(name, group[name])
        self._check_betas(group["betas"])
        self._check_range("eps", group["eps"])
        if group["eps"] <= 0:
            raise ValueError(f"Sophia: invalid eps={group['eps']!r}: it must be > 0 (the floor "
                             "of the denominator, which h may leave at 0)")
        k = group["k"]
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            raise TypeError(f"Sophia: k must be an int, got {k!r} ({type(k).__name__})")
        if k < 1:
            raise ValueError(f"Sophia: invalid k={k!r}: it must be >= 1")
        if group["estimator"] not in ESTIMATORS:
            raise ValueError(f"Sophia: invalid estimator={group['estimator']!r}: it must be "
                             f"one of {ESTIMATORS}")
        if group["estimator"] != self.defaults["estimator"]:
            raise ValueError(f"Sophia: every group must use the same estimator (one closure "
                             f"serves them all), got {group['estimator']!r} and "
                             f"{self.defaults['estimator']!r}")

    # --- the estimators ---
    def _rng(self) -> np.random.Generator:
        return self.generator if self.generator is not None else default_generator()

    def _estimate(self, params: list[Tensor], output) -> list[np.ndarray]:
        """ĥ for each of ``params`` from the closure's ``output`` (recording must be on)."""
        if not isinstance(output, Tensor):
            raise TypeError(f"Sophia: the closure must return a Tensor, got "
                            f"{type(output).__name__}")
        if self.defaults["estimator"] == "hutchinson":
            return self._hutchinson(params, output)
        return self._gauss_newton_bartlett(params, output)

    def _hutchinson(self, params: list[Tensor], loss: Tensor) -> list[np.ndarray]:
        if loss.data.size != 1:
            raise ValueError(f"Sophia(estimator='hutchinson'): the closure must return the "
                             f"scalar loss, got a Tensor of shape {loss.shape}")
        rng = self._rng()
        us = [(2 * rng.integers(0, 2, size=p.shape) - 1).astype(p.dtype) for p in params]
        if not loss.requires_grad:  # the loss does not depend on the parameters
            return [np.zeros_like(p.data) for p in params]
        grads = autograd_grad(loss, params, create_graph=True, allow_unused=True)
        # a gradient that does not require grad is constant: its rows of ∇²L are 0
        terms = [(g * Tensor(u)).sum() for g, u in zip(grads, us)
                 if g is not None and g.requires_grad]
        if not terms:
            return [np.zeros_like(p.data) for p in params]
        grad_dot_u = terms[0]
        for term in terms[1:]:
            grad_dot_u = grad_dot_u + term
        hvps = autograd_grad(grad_dot_u, params, allow_unused=True)
        return [np.zeros_like(p.data) if hv is None else u * hv.data
                for p, u, hv in zip(params, us, hvps)]

    def _gauss_newton_bartlett(self, params: list[Tensor], logits: Tensor) -> list[np.ndarray]:
        if logits.ndim < 1 or logits.data.size == 0:
            raise ValueError(f"Sophia(estimator='gnb'): the closure must return the logits, "
                             f"shape (B, C) or (..., C), got shape {logits.shape}")
        num_classes = logits.shape[-1]
        rows = logits.reshape(-1, num_classes)
        batch = rows.shape[0]
        # sample ŷ ~ softmax(logits) row by row, by inverting the CDF (shifted: no overflow)
        z = rows.data.astype(np.float64)
        probs = np.exp(z - z.max(axis=1, keepdims=True))
        cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
        draws = self._rng().random((batch, 1))
        labels = np.minimum((cdf < draws).sum(axis=1), num_classes - 1).astype(np.int64)
        if not logits.requires_grad:
            return [np.zeros_like(p.data) for p in params]
        sampled_loss = cross_entropy(rows, Tensor(labels))
        grads = autograd_grad(sampled_loss, params, allow_unused=True)
        return [np.zeros_like(p.data) if g is None else batch * g.data * g.data
                for p, g in zip(params, grads)]

    def hessian_estimate(self, closure: Callable[[], Tensor]) -> list[Tensor]:
        """One draw of ĥ for every parameter (in group order), from ``closure`` as ``step``
        calls it; the optimizer's state is not touched."""
        params = [p for group in self.param_groups for p in group["params"]]
        with enable_grad():
            estimates = self._estimate(params, closure())
        return [Tensor(h) for h in estimates]

    # --- the step ---
    def step(self, closure: Callable[[], Tensor] | None = None):
        """Update every parameter that has a gradient, refreshing h every k steps.

        Args:
            closure: re-runs the forward pass and returns the loss (Hutchinson) or the logits
                (GNB), without calling ``backward()``. Needed on refresh steps (the first step,
                then every k-th), ignored on the others.

        Returns:
            The closure's result on refresh steps, else None.
        """
        due = [p for group in self.param_groups for p in group["params"]
               if p.grad is not None and self.state[p].get("step", 0) % group["k"] == 0]
        output, estimates = None, {}
        if due:
            if closure is None:
                step = self.state[due[0]].get("step", 0) + 1
                raise RuntimeError(
                    f"Sophia: step {step} refreshes the Hessian estimate (steps 1, k + 1, ...), "
                    "so it needs a closure that re-runs the forward pass and returns the "
                    f"{'loss' if self.defaults['estimator'] == 'hutchinson' else 'logits'}")
            with enable_grad():
                output = closure()
                estimates = dict(zip(map(id, due), self._estimate(due, output)))
        with no_grad():
            extras = {key: (Tensor(h),) for key, h in estimates.items()}
            for group in self.param_groups:
                self._step_group(group, extras)
        return output

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        lr, rho, weight_decay, eps = _floats(group, "lr", "rho", "weight_decay", "eps")
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor(np.zeros_like(p.data))
            state["hessian"] = Tensor(np.zeros_like(p.data))
        state["step"] += 1
        return (state["exp_avg"], state["hessian"]), dict(
            lr=lr, rho=rho, weight_decay=weight_decay, eps=eps, beta1=beta1, beta2=beta2)

    @staticmethod
    def _rule(p, grad, m, h, h_hat=None, *, lr, rho, weight_decay, eps, beta1, beta2) -> None:
        m *= beta1
        m += (1 - beta1) * grad
        if h_hat is not None:  # a refresh step
            h *= beta2
            h += (1 - beta2) * h_hat
        _weight_decay(p, grad, lr, weight_decay, decoupled=True)
        ratio = np.clip(m / np.maximum(rho * h, eps), -1.0, 1.0)
        p += ratio * -lr
