"""Each optimizer's first step(s) worked out by hand from the update equations in its docstring.

Every case uses θ = [1, -2] and g = [0.5, 1] in float64, so each expected value below can be
checked on paper; the comments give the intermediate quantities.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp
from backprop import optim

THETA = [1.0, -2.0]
G = np.array([0.5, 1.0])


def _param():
    return bp.tensor(THETA, dtype=bp.float64, requires_grad=True)


def _step(opt, p, grad=G):
    p.grad = bp.tensor(np.asarray(grad, dtype=np.float64))
    opt.step()
    return p.data.copy()


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)


# --- SGD ---


def test_sgd_plain_step_is_theta_minus_lr_grad():
    p = _param()
    _close(_step(optim.SGD([p], lr=0.1), p), [1 - 0.05, -2 - 0.1])


def test_sgd_momentum_buffer_starts_as_the_undamped_first_gradient():
    p = _param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1)
    # step 1: g' = g + 0.1 θ = [0.6, 0.8]; b = g' (no dampening on the first step)
    _close(_step(opt, p), [1 - 0.06, -2 - 0.08])
    _close(opt.state[p]["momentum_buffer"].data, [0.6, 0.8])
    # step 2: θ = [0.94, -2.08]; g' = [0.594, 0.792]; b = 0.9 [0.6, 0.8] + 0.5 g' = [0.837, 1.116]
    _close(_step(opt, p), [0.94 - 0.0837, -2.08 - 0.1116])


def test_sgd_nesterov_steps_along_grad_plus_momentum_times_buffer():
    p = _param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    # b = g = [0.5, 1]; direction g + 0.9 b = [0.95, 1.9]
    _close(_step(opt, p), [1 - 0.095, -2 - 0.19])


def test_sgd_maximize_climbs():
    p = _param()
    _close(_step(optim.SGD([p], lr=0.1, maximize=True), p), [1.05, -1.9])


# --- Adam, AdamW ---


def test_adam_first_step_moves_each_weight_by_lr_against_the_gradient_sign():
    p = _param()
    # m = 0.1 g, v = 0.001 g²: the bias corrections give m̂ = g, v̂ = g², so Δ = lr g / (|g| + ε)
    _close(_step(optim.Adam([p], lr=0.1), p), np.array(THETA) - 0.1 * G / (np.abs(G) + 1e-8))


def test_adam_weight_decay_is_added_to_the_gradient():
    p = _param()
    g = G + 0.2 * np.array(THETA)  # [0.7, 0.6]
    _close(_step(optim.Adam([p], lr=0.1, weight_decay=0.2), p),
           np.array(THETA) - 0.1 * g / (np.abs(g) + 1e-8))


def test_adamw_decays_the_weights_directly():
    p = _param()
    # θ (1 - lr λ) with lr λ = 0.1 · 0.2, then the plain Adam step on the undecayed gradient
    _close(_step(optim.AdamW([p], lr=0.1, weight_decay=0.2), p),
           np.array(THETA) * 0.98 - 0.1 * G / (np.abs(G) + 1e-8))


def test_amsgrad_normalises_by_the_largest_second_moment():
    expected = {}
    for amsgrad in (False, True):
        p = bp.tensor([1.0], dtype=bp.float64, requires_grad=True)
        opt = optim.Adam([p], lr=0.1, amsgrad=amsgrad)
        _step(opt, p, [1.0])  # m = 0.1, v = 0.001, θ = 1 - 0.1 / (1 + 1e-8)
        expected[amsgrad] = _step(opt, p, [0.0])[0]  # m = 0.09, v = 0.000999 (it shrank)
    theta1 = 1 - 0.1 / (1 + 1e-8)
    step_size = 0.1 / (1 - 0.9**2)
    root_bc2 = math.sqrt(1 - 0.999**2)
    assert expected[False] == pytest.approx(
        theta1 - step_size * 0.09 / (math.sqrt(0.000999) / root_bc2 + 1e-8), rel=1e-12)
    assert expected[True] == pytest.approx(
        theta1 - step_size * 0.09 / (math.sqrt(0.001) / root_bc2 + 1e-8), rel=1e-12)


# --- RMSprop ---


def test_rmsprop_first_step_divides_by_root_of_the_square_average():
    p = _param()
    # v = 0.01 g², so √v = 0.1 |g|
    _close(_step(optim.RMSprop([p], lr=0.01), p),
           np.array(THETA) - 0.01 * G / (0.1 * np.abs(G) + 1e-8))


def test_rmsprop_centered_subtracts_the_squared_mean_gradient():
    p = _param()
    # ḡ = 0.01 g, v - ḡ² = 0.01 g² - 0.0001 g² = 0.0099 g²
    _close(_step(optim.RMSprop([p], lr=0.01, centered=True), p),
           np.array(THETA) - 0.01 * G / (math.sqrt(0.0099) * np.abs(G) + 1e-8))


def test_rmsprop_momentum_accumulates_the_normalised_steps():
    p = _param()
    opt = optim.RMSprop([p], lr=0.01, momentum=0.9)
    b1 = G / (0.1 * np.abs(G) + 1e-8)  # v = 0.01 g²
    theta1 = np.array(THETA) - 0.01 * b1
    _close(_step(opt, p), theta1)
    b2 = 0.9 * b1 + G / (math.sqrt(0.0199) * np.abs(G) + 1e-8)  # v = 0.99·0.01 g² + 0.01 g²
    _close(_step(opt, p), theta1 - 0.01 * b2)


# --- Adagrad ---


def test_adagrad_accumulates_squares_and_decays_the_rate():
    p = _param()
    opt = optim.Adagrad([p], lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5)
    theta1 = np.array(THETA) - 0.1 * G / (np.sqrt(0.5 + G**2) + 1e-10)  # s = 0.5 + g²
    _close(_step(opt, p), theta1)
    # step 2: s = 0.5 + 2 g², rate 0.1 / (1 + 1 · 0.1)
    _close(_step(opt, p), theta1 - 0.1 / 1.1 * G / (np.sqrt(0.5 + 2 * G**2) + 1e-10))


# --- Adadelta ---


def test_adadelta_first_step_scales_by_root_eps_over_root_v():
    p = _param()
    opt = optim.Adadelta([p])
    # v = 0.1 g², u = 0: Δ = √(1e-6) / √(0.1 g² + 1e-6) · g, lr = 1
    delta = math.sqrt(1e-6) / np.sqrt(0.1 * G**2 + 1e-6) * G
    _close(_step(opt, p), np.array(THETA) - delta)
    _close(opt.state[p]["acc_delta"].data, 0.1 * delta**2)


# --- NAdam ---


def test_nadam_first_step_uses_the_mu_schedule():
    p = _param()
    opt = optim.NAdam([p], lr=0.1)
    mu1 = 0.9 * (1 - 0.5 * 0.96**0.004)
    mu2 = 0.9 * (1 - 0.5 * 0.96**0.008)
    # m = 0.1 g, v = 0.001 g² so d = √(v / 0.001) + ε = |g| + ε; Π₁ = μ₁
    d = np.abs(G) + 1e-8
    expected = (np.array(THETA) - 0.1 * (1 - mu1) / (1 - mu1) * G / d
                - 0.1 * mu2 / (1 - mu1 * mu2) * (0.1 * G) / d)
    _close(_step(opt, p), expected)
    assert opt.state[p]["mu_product"] == pytest.approx(mu1, rel=1e-15)
    assert opt.state[p]["step"] == 1
