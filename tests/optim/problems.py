"""Shared test problems for the optimizer tests: a small network built identically in backprop
and torch, and the objectives the convergence tests minimise."""

from __future__ import annotations

import numpy as np

import backprop as bp
from backprop import nn

# Every option of every optimizer, each combination at least once (weight decay, maximize and
# each flag on and off). Used by the torch comparison, the float32 test and the resume test.
CONFIGS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.02, "momentum": 0.5, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.8}),
    ("RMSprop", {"lr": 0.01, "centered": True, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.005, "centered": True, "momentum": 0.9, "eps": 1e-6, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.05,
                 "initial_accumulator_value": 0.1}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-6, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.05}),
    ("Adadelta", {"maximize": True}),
    ("NAdam", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01, "betas": (0.8, 0.99), "momentum_decay": 0.01, "weight_decay": 0.05}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True,
               "maximize": True}),
]


def config_id(config: tuple[str, dict]) -> str:
    name, kwargs = config
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


CONFIG_IDS = [config_id(c) for c in CONFIGS]


class MLP(nn.Module):
    """3 -> 6 -> 2 with tanh: small, but with matrices, vectors and curvature."""

    def __init__(self, dtype=bp.float64):
        super().__init__()
        self.hidden = nn.Linear(3, 6, dtype=dtype)
        self.out = nn.Linear(6, 2, dtype=dtype)

    def forward(self, x):
        return self.out(bp.tanh(self.hidden(x)))


def make_mlp(seed: int, dtype=np.float64) -> MLP:
    """An MLP whose parameters are drawn from ``default_rng(seed)`` (not the global generator)."""
    rng = np.random.default_rng(seed)
    model = MLP(dtype)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.5, p.shape)
    return model


def make_data(seed: int, dtype=np.float64) -> tuple[bp.Tensor, bp.Tensor]:
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(16, 3)).astype(dtype)
    y = rng.normal(size=(16, 2)).astype(dtype)
    return bp.tensor(x), bp.tensor(y)


def mse(model, x, y):
    diff = model(x) - y
    return (diff * diff).mean()


def train(model, optimizer, x, y, steps: int) -> list[float]:
    """``steps`` rounds of zero_grad -> backward -> step; returns the losses."""
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = mse(model, x, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def rosenbrock(p):
    """f(x, y) = (1 - x)² + 100 (y - x²)²: minimum 0 at (1, 1), along a curved narrow valley."""
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def rosenbrock_grad(v: np.ndarray) -> np.ndarray:
    """∇f of ``rosenbrock`` in closed form."""
    x, y = v
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


def ill_conditioned_quadratic(seed: int = 0, dim: int = 10, condition: float = 100.0):
    """f(x) = ½ (x - x*)ᵀ A (x - x*), A = Qᵀ diag(1 .. condition) Q with a random rotation Q.

    Returns (grad, x_star): the gradient A (x - x*) as a function of an array, and the minimiser.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    a = q.T @ np.diag(np.geomspace(1.0, condition, dim)) @ q
    x_star = rng.normal(size=dim)
    assert np.isclose(np.linalg.cond(a), condition)
    return (lambda x: a @ (x - x_star)), x_star
