"""Sophia: a step worked out by hand, the two Hessian estimators' expectations, the clipping
bound, convergence within a budget, state_dict round trips, dtypes and bad input.

torch has no Sophia, so the oracles are closed forms: a quadratic's Hessian for Hutchinson and
the Gauss-Newton diagonal of a linear softmax model for GNB, checked by Monte Carlo with a
tolerance of 5 standard errors (computed from each estimator's variance).
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import optim

from .problems import ill_conditioned_quadratic, make_data, make_mlp, mse, rosenbrock


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)


# --- one step by hand ---


def test_sophia_steps_worked_out_by_hand():
    # f = ½ (4 θ₁² + 0.5 θ₂²): Hessian diag(4, 0.5), so Hutchinson gives ĥ = u² a = a exactly
    a = bp.tensor([4.0, 0.5], dtype=bp.float64)
    p = bp.tensor([1.0, -2.0], dtype=bp.float64, requires_grad=True)
    calls = []

    def closure():
        calls.append(1)
        return 0.5 * (a * p * p).sum()

    opt = optim.Sophia([p], lr=0.1, betas=(0.9, 0.5), rho=0.5, weight_decay=0.1, k=2,
                       generator=np.random.default_rng(0))

    def step():
        opt.zero_grad()
        closure().backward()
        calls.pop()
        opt.step(closure)
        return p.data.copy()

    # t = 1 (refresh): g = [4, -1]; m = 0.1 g = [0.4, -0.1]; h = 0.5 a = [2, 0.25]
    # θ (1 - 0.01) = [0.99, -1.98]; m / (0.5 h) = [0.4, -0.8]; θ = [0.95, -1.90]
    _close(step(), [0.95, -1.90])
    _close(opt.state[p]["hessian"].data, [2.0, 0.25])
    # t = 2 (h kept): g = [3.8, -0.95]; m = [0.74, -0.185]; θ (0.99) = [0.9405, -1.881]
    # m / (0.5 h) = [0.74, -1.48] -> clipped to [0.74, -1]; θ = [0.8665, -1.781]
    _close(step(), [0.8665, -1.781])
    _close(opt.state[p]["hessian"].data, [2.0, 0.25])
    # t = 3 (refresh): g = [3.466, -0.8905]; m = [1.0126, -0.25555]; h = [3, 0.375]
    # θ (0.99) = [0.857835, -1.76319]; m / (0.5 h) = [0.67507, -1.3629] -> [.., -1]
    _close(step(), [0.857835 - 0.1 * 1.0126 / 1.5, -1.76319 + 0.1])
    _close(opt.state[p]["exp_avg"].data, [1.0126, -0.25555])
    _close(opt.state[p]["hessian"].data, [3.0, 0.375])
    assert len(calls) == 2  # the closure ran on the refresh steps 1 and 3 only
    assert opt.state[p]["step"] == 3


def test_sophia_step_returns_the_closure_loss_on_refresh_steps_only():
    p = bp.tensor([1.0, 2.0], dtype=bp.float64, requires_grad=True)
    opt = optim.Sophia([p], k=3, generator=np.random.default_rng(1))
    returned = []
    for _ in range(7):
        opt.zero_grad()
        (p * p).sum().backward()
        returned.append(opt.step(lambda: (p * p).sum()))
    assert [r is not None for r in returned] == [True, False, False, True, False, False, True]
    assert p.grad is not None and p.grad.grad_fn is None  # step left .grad alone


# --- the estimators ---


def _quadratic(seed, dims=(3, 2)):
    """f(x) = ½ xᵀ A x over two parameters (their concatenation), A dense and SPD."""
    rng = np.random.default_rng(seed)
    n = sum(dims)
    b = rng.normal(size=(n, n))
    a = b @ b.T / n + np.eye(n)
    params = [bp.tensor(rng.normal(size=d), requires_grad=True) for d in dims]
    a_t = bp.tensor(a)

    def loss():
        x = bp.cat(params)
        return 0.5 * (x * (a_t @ x)).sum()

    return a, params, loss


def test_hutchinson_estimate_is_exact_for_a_diagonal_hessian():
    p = bp.tensor([0.3, -1.0, 2.0], dtype=bp.float64, requires_grad=True)
    d = bp.tensor([1.0, 5.0, -2.0], dtype=bp.float64)
    opt = optim.Sophia([p], generator=np.random.default_rng(2))
    for _ in range(5):  # u ⊙ (D u) = D u² = D, whatever the signs
        (h,) = opt.hessian_estimate(lambda: (d * p * p * p).sum() / 6 + 0.5 * (d * p * p).sum())
        # exact up to the rounding of the order in which the engine sums contributions
        np.testing.assert_allclose(h.data, d.data * (p.data + 1), rtol=1e-12, atol=1e-15)


def test_hutchinson_estimate_expectation_is_the_hessian_diagonal():
    a, params, loss = _quadratic(seed=3)
    opt = optim.Sophia(params, generator=np.random.default_rng(4))
    samples = 3000
    draws = np.array([np.concatenate([h.data for h in opt.hessian_estimate(loss)])
                      for _ in range(samples)])
    # ĥᵢ = Aᵢᵢ + Σ_{j≠i} Aᵢⱼ uᵢ uⱼ: the uᵢuⱼ are independent signs, so Var ĥᵢ = Σ_{j≠i} Aᵢⱼ²
    variance = (a * a).sum(axis=1) - np.diag(a) ** 2
    tolerance = 5 * np.sqrt(variance / samples)
    assert np.all(np.abs(draws.mean(axis=0) - np.diag(a)) < tolerance)
    assert np.allclose(draws.var(axis=0), variance, rtol=0.15)
    # the check can fail: the estimate is not the row sum of A (what u = 1 would give)
    assert not np.all(np.abs(draws.mean(axis=0) - a.sum(axis=1)) < tolerance)


def test_gnb_estimate_expectation_is_the_gauss_newton_diagonal():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 3))
    w = bp.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    x_t = bp.tensor(x)
    opt = optim.Sophia([w], estimator="gnb", generator=np.random.default_rng(6))
    samples = 4000
    draws = np.array([opt.hessian_estimate(lambda: x_t @ w)[0].data for _ in range(samples)])
    # logits z = x W, mean cross-entropy over N rows, labels ŷ ~ softmax(z): ∇L̂ =
    # (1/N) Σᵢ xᵢ ⊗ (pᵢ - e_ŷᵢ), the rows independent with Var(e_ŷᵢc) = pᵢc (1 - pᵢc), so
    # E[N ∇L̂²]_jc = (1/N) Σᵢ xᵢⱼ² pᵢc (1 - pᵢc), the diagonal of the Gauss-Newton matrix
    z = x @ w.data
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected = (x ** 2).T @ (probs * (1 - probs)) / len(x)
    tolerance = 5 * draws.std(axis=0) / np.sqrt(samples)
    assert np.all(np.abs(draws.mean(axis=0) - expected) < tolerance)
    assert np.all(tolerance < 0.2 * expected)  # the check is tight enough to mean something


def test_gnb_accepts_sequence_logits_with_classes_last():
    rng = np.random.default_rng(7)
    emb = bp.tensor(rng.normal(size=(5, 4)), requires_grad=True)
    tokens = rng.integers(0, 5, size=(2, 3))
    opt = optim.Sophia([emb], estimator="gnb", generator=np.random.default_rng(8))
    (h,) = opt.hessian_estimate(lambda: emb[bp.tensor(tokens)])  # (B, T, C) = (2, 3, 4)
    assert h.shape == (5, 4) and np.all(h.data >= 0)
    assert np.all(h.data[np.setdiff1d(np.arange(5), tokens)] == 0)  # rows never used


# --- the clipping bound ---


def test_each_coordinate_moves_at_most_lr_plus_decay():
    # negative curvature: Hutchinson's h < 0 hits the eps floor, so every ratio is clipped
    rng = np.random.default_rng(9)
    p = bp.tensor(rng.normal(size=50) * 3, requires_grad=True, dtype=bp.float64)
    scale = bp.tensor(rng.uniform(-50, 50, size=50))
    lr, wd = 0.01, 0.2
    opt = optim.Sophia([p], lr=lr, weight_decay=wd, k=3, generator=np.random.default_rng(10))

    def loss():
        return (scale * p * p * p).sum() - (p * p).sum()

    clipped = 0
    for _ in range(20):
        before = p.data.copy()
        opt.zero_grad()
        loss().backward()
        opt.step(loss)
        step = p.data - before * (1 - lr * wd)
        assert np.all(np.abs(step) <= lr * (1 + 1e-12))
        assert np.all(np.abs(p.data - before) <= lr + lr * wd * np.abs(before) + 1e-15)
        clipped += np.isclose(np.abs(step), lr, rtol=1e-12, atol=0).sum()
    assert clipped > 100  # the bound is reached, not just respected


# --- convergence within a budget (as tests/optim/test_convergence.py) ---

SOPHIA_CONVERGENCE = {"lr": 0.1, "rho": 0.1, "weight_decay": 0.0, "k": 10}


def _sophia_steps_to_converge(loss_fn, x, target, tol, budget, **kwargs):
    opt = optim.Sophia([x], generator=np.random.default_rng(0),
                       **{**SOPHIA_CONVERGENCE, **kwargs})
    for step in range(1, budget + 1):
        opt.zero_grad()
        loss_fn().backward()
        opt.step(loss_fn)
        if np.linalg.norm(x.data - target) < tol:
            return step
    return None


def _quadratic_problem():
    grad_fn, x_star = ill_conditioned_quadratic(seed=0)
    a = np.stack([grad_fn(x_star + e) for e in np.eye(10)], axis=1)  # A's columns
    a_t, x_star_t = bp.tensor(a), bp.tensor(x_star)
    x = bp.tensor(np.zeros(10), requires_grad=True)

    def loss():
        d = x - x_star_t
        return 0.5 * (d * (a_t @ d)).sum()

    return loss, x, x_star


def test_sophia_minimises_ill_conditioned_quadratic_within_budget():
    # needs 617 steps to ‖x - x*‖ < 1e-4 (condition number 100, rotated: off-diagonal Hessian)
    loss, x, x_star = _quadratic_problem()
    assert _sophia_steps_to_converge(loss, x, x_star, 1e-4, 800) is not None


def test_sophia_minimises_rosenbrock_within_budget():
    # needs 116 steps to ‖(x, y) - (1, 1)‖ < 1e-2 from (-1.2, 1)
    x = bp.tensor(np.array([-1.2, 1.0]), requires_grad=True)
    assert _sophia_steps_to_converge(lambda: rosenbrock(x), x, np.ones(2), 1e-2, 150) is not None


def test_sophia_budget_can_fail():
    # rho 100x larger: unclipped steps lr·m / (ρ h) 100x shorter, so the budget runs out
    loss, x, x_star = _quadratic_problem()
    assert _sophia_steps_to_converge(loss, x, x_star, 1e-4, 800, rho=10.0) is None


def test_sophia_gnb_trains_softmax_regression():
    rng = np.random.default_rng(11)
    x = bp.tensor(rng.normal(size=(64, 5)))
    y = bp.tensor(np.argmax(x.data @ rng.normal(size=(5, 3)), axis=1))
    w = bp.tensor(np.zeros((5, 3)), requires_grad=True)
    opt = optim.Sophia([w], lr=0.05, rho=0.05, weight_decay=0.0, estimator="gnb",
                       generator=np.random.default_rng(12))
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = bp.nn.functional.cross_entropy(x @ w, y)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step(lambda: x @ w)
    assert loss.item() < 0.3 * first


# --- state_dict, dtypes ---


def _train_sophia(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        mse(model, x, y).backward()
        opt.step(lambda: mse(model, x, y))


@pytest.mark.parametrize("estimator", ["hutchinson", "gnb"])
def test_sophia_state_dict_round_trip_continues_bit_identically(estimator):
    x, y = make_data(13)

    def loss_or_logits(model):
        return (lambda: mse(model, x, y)) if estimator == "hutchinson" else (lambda: model(x))

    kwargs = {"lr": 0.01, "k": 4, "estimator": estimator}
    model = make_mlp(14)
    opt = optim.Sophia(model.parameters(), generator=np.random.default_rng(15), **kwargs)
    for _ in range(25):
        opt.zero_grad()
        mse(model, x, y).backward()
        opt.step(loss_or_logits(model))
    whole = [p.data.copy() for p in model.parameters()]

    model = make_mlp(14)
    generator = np.random.default_rng(15)
    opt = optim.Sophia(model.parameters(), generator=generator, **kwargs)
    for step in range(25):
        if step == 10:  # a fresh optimizer continues from the saved state
            saved = opt.state_dict()
            opt = optim.Sophia(model.parameters(), lr=0.5, generator=generator,
                               estimator=estimator)
            opt.load_state_dict(saved)
        opt.zero_grad()
        mse(model, x, y).backward()
        opt.step(loss_or_logits(model))
    for p, expected in zip(model.parameters(), whole):
        np.testing.assert_array_equal(p.data, expected)


@pytest.mark.parametrize("estimator", ["hutchinson", "gnb"])
def test_sophia_float32_stays_float32(estimator):
    model = make_mlp(16, dtype=np.float32)
    x, y = make_data(16, dtype=np.float32)
    opt = optim.Sophia(model.parameters(), lr=0.01, k=2, estimator=estimator,
                       generator=np.random.default_rng(17))
    closure = (lambda: mse(model, x, y)) if estimator == "hutchinson" else (lambda: model(x))
    for _ in range(3):
        opt.zero_grad()
        mse(model, x, y).backward()
        opt.step(closure)
    for p in model.parameters():
        assert p.dtype == np.float32
        assert opt.state[p]["exp_avg"].dtype == np.float32
        assert opt.state[p]["hessian"].dtype == np.float32
    assert all(h.dtype == np.float32 for h in opt.hessian_estimate(closure))


# --- bad input ---


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"lr": -0.1}, ValueError, "invalid lr=-0.1"),
    ({"betas": (1.0, 0.99)}, ValueError, r"invalid betas\[0\]=1.0"),
    ({"betas": (0.9, -0.1)}, ValueError, r"invalid betas\[1\]=-0.1"),
    ({"rho": -1.0}, ValueError, "invalid rho=-1.0"),
    ({"weight_decay": -0.1}, ValueError, "invalid weight_decay=-0.1"),
    ({"eps": 0.0}, ValueError, "invalid eps=0.0"),
    ({"k": 0}, ValueError, "invalid k=0"),
    ({"k": 2.5}, TypeError, "k must be an int"),
    ({"estimator": "lbfgs"}, ValueError, "invalid estimator='lbfgs'"),
])
def test_sophia_rejects_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        optim.Sophia([bp.tensor([1.0], requires_grad=True)], **kwargs)


def test_sophia_rejects_mixed_estimators_and_empty_params():
    a, b = bp.tensor([1.0], requires_grad=True), bp.tensor([2.0], requires_grad=True)
    with pytest.raises(ValueError, match="same estimator"):
        optim.Sophia([{"params": [a]}, {"params": [b], "estimator": "gnb"}])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Sophia([])


def test_sophia_refresh_step_needs_a_suitable_closure():
    p = bp.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Sophia([p], k=2)
    (p * p).sum().backward()
    with pytest.raises(RuntimeError, match="step 1 refreshes the Hessian estimate"):
        opt.step()
    with pytest.raises(ValueError, match="scalar loss, got a Tensor of shape"):
        opt.step(lambda: p * p)
    with pytest.raises(TypeError, match="must return a Tensor, got float"):
        opt.step(lambda: 3.0)
    assert not opt.state[p]  # nothing was updated by the failed steps
    opt.step(lambda: (p * p).sum())
    opt.step()  # step 2 keeps h: no closure needed
    assert opt.state[p]["step"] == 2
