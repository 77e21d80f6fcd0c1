"""Loss functions and modules: values and gradients against torch for every option, gradcheck and
gradgradcheck, float32 preservation, stability at large logits, and every bad-input error.

One table drives the checks: each ``LossCase`` calls the same lambda with either library's
``functional`` module (the APIs agree), on inputs drawn from a seeded generator.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import backprop as bp
from backprop import nn
from backprop.nn import functional as F
from backprop.nn import loss as loss_module

REDUCTIONS = ("mean", "sum", "none")


@dataclass(frozen=True)
class LossCase:
    """One row of the table.

    Attributes:
        name: the pytest id (unique).
        call: ``call(F, *inputs, reduction=...)`` with ``F`` either library's functional module.
        make: ``rng -> tuple of arrays``; float arrays become float tensors, integers stay.
        grad: per input, whether it is differentiated (False for class weights, which PyTorch
            does not differentiate, and for integer targets).
    """

    name: str
    call: Callable
    make: Callable
    grad: tuple[bool, ...]


def _labels(rng, n_classes, shape, ignored=0, ignore_index=-100):
    t = rng.integers(0, n_classes, shape)
    t.flat[:ignored] = ignore_index  # the first positions; the rest stay real classes
    return t


def _probs(rng, shape, dim=1):
    e = np.exp(rng.normal(size=shape))
    return e / e.sum(axis=dim, keepdims=True)


def _weights(rng, n):
    return rng.uniform(0.5, 2.0, n)


def _away_from(rng, x, gap=0.2):
    """A target at least ``gap`` from x everywhere: |x - t| has no kink at the sample."""
    return x + rng.choice([-1.0, 1.0], x.shape) * rng.uniform(gap, 1.0, x.shape)


def _case(name, call, make, grad) -> list[LossCase]:
    """The case under each reduction."""
    return [
        LossCase(f"{name}_{r}", lambda F, *xs, r=r, call=call: call(F, *xs, reduction=r), make,
                 grad)
        for r in REDUCTIONS
    ]


CASES: list[LossCase] = [
    # --- mse_loss and l1_loss ---
    *_case("mse", lambda F, x, t, **kw: F.mse_loss(x, t, **kw),
           lambda rng: (rng.normal(size=(4, 3)), rng.normal(size=(4, 3))), (True, True)),
    *_case("mse_0d", lambda F, x, t, **kw: F.mse_loss(x, t, **kw),
           lambda rng: (rng.normal(size=()), rng.normal(size=())), (True, True)),
    *_case("mse_weight", lambda F, x, t, w, **kw: F.mse_loss(x, t, weight=w, **kw),
           lambda rng: (rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
                        rng.uniform(0.5, 2.0, (4, 3))),
           (True, True, True)),  # a composite in PyTorch too: the weight is differentiable
    *_case("l1", lambda F, x, t, **kw: F.l1_loss(x, t, **kw),
           lambda rng: (x := rng.normal(size=(2, 3, 2)), _away_from(rng, x)), (True, True)),
    *_case("l1_weight", lambda F, x, t, w, **kw: F.l1_loss(x, t, weight=w, **kw),
           lambda rng: (x := rng.normal(size=(4, 3)), _away_from(rng, x),
                        rng.uniform(0.5, 2.0, (4, 3))),
           (True, True, True)),
    # --- cross_entropy with class indices ---
    *_case("ce", lambda F, x, t, **kw: F.cross_entropy(x, t, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), _labels(rng, 5, (6,))), (True, False)),
    *_case("ce_weight", lambda F, x, t, w, **kw: F.cross_entropy(x, t, w, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), _labels(rng, 5, (6,)), _weights(rng, 5)),
           (True, False, False)),
    *_case("ce_ignore_index_default", lambda F, x, t, **kw: F.cross_entropy(x, t, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), _labels(rng, 5, (6,), ignored=2)),
           (True, False)),
    *_case("ce_ignore_index_class_weight",
           lambda F, x, t, w, **kw: F.cross_entropy(x, t, w, ignore_index=3, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), np.array([3, 0, 3, 1, 4, 2]),
                        _weights(rng, 5)),
           (True, False, False)),
    *_case("ce_smoothing", lambda F, x, t, **kw: F.cross_entropy(x, t, label_smoothing=0.1, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), _labels(rng, 5, (6,))), (True, False)),
    *_case("ce_smoothing_weight_ignore",
           lambda F, x, t, w, **kw: F.cross_entropy(x, t, w, label_smoothing=0.3, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), _labels(rng, 5, (6,), ignored=2),
                        _weights(rng, 5)),
           (True, False, False)),
    *_case("ce_smoothing_one", lambda F, x, t, **kw: F.cross_entropy(x, t, label_smoothing=1.0,
                                                                   **kw),
           lambda rng: (rng.normal(0, 2, (4, 3)), _labels(rng, 3, (4,))), (True, False)),
    *_case("ce_kdim", lambda F, x, t, **kw: F.cross_entropy(x, t, **kw),
           lambda rng: (rng.normal(0, 2, (3, 4, 2, 3)), _labels(rng, 4, (3, 2, 3))),
           (True, False)),
    *_case("ce_kdim_weight_ignore_smoothing",
           lambda F, x, t, w, **kw: F.cross_entropy(x, t, w, label_smoothing=0.2, **kw),
           lambda rng: (rng.normal(0, 2, (3, 4, 5)), _labels(rng, 4, (3, 5), ignored=3),
                        _weights(rng, 4)),
           (True, False, False)),
    *_case("ce_unbatched", lambda F, x, t, w, **kw: F.cross_entropy(x, t, w, label_smoothing=0.1,
                                                                    **kw),
           lambda rng: (rng.normal(0, 2, (5,)), np.array(3), _weights(rng, 5)),
           (True, False, False)),
    *_case("ce_batch_of_one", lambda F, x, t, **kw: F.cross_entropy(x, t, **kw),
           lambda rng: (rng.normal(0, 2, (1, 5)), _labels(rng, 5, (1,))), (True, False)),
    # --- cross_entropy with class probabilities (the target is differentiable) ---
    *_case("ce_probs", lambda F, x, t, **kw: F.cross_entropy(x, t, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), _probs(rng, (6, 5))), (True, True)),
    *_case("ce_probs_weight_smoothing",
           lambda F, x, t, w, **kw: F.cross_entropy(x, t, w, label_smoothing=0.2, **kw),
           lambda rng: (rng.normal(0, 2, (6, 5)), _probs(rng, (6, 5)), _weights(rng, 5)),
           (True, True, False)),
    *_case("ce_probs_kdim_weight",
           lambda F, x, t, w, **kw: F.cross_entropy(x, t, w, **kw),
           lambda rng: (rng.normal(0, 2, (2, 3, 2, 2)), _probs(rng, (2, 3, 2, 2)),
                        _weights(rng, 3)),
           (True, True, False)),
    *_case("ce_probs_unbatched", lambda F, x, t, **kw: F.cross_entropy(x, t, **kw),
           lambda rng: (rng.normal(0, 2, (5,)), _probs(rng, (5,), 0)), (True, True)),
    # --- nll_loss on log-probabilities ---
    *_case("nll", lambda F, x, t, **kw: F.nll_loss(x, t, **kw),
           lambda rng: (rng.normal(size=(6, 5)), _labels(rng, 5, (6,))), (True, False)),
    *_case("nll_weight_ignore",
           lambda F, x, t, w, **kw: F.nll_loss(x, t, w, ignore_index=0, **kw),
           lambda rng: (rng.normal(size=(6, 5)), np.array([0, 1, 0, 4, 2, 2]), _weights(rng, 5)),
           (True, False, False)),
    *_case("nll_kdim_weight", lambda F, x, t, w, **kw: F.nll_loss(x, t, w, **kw),
           lambda rng: (rng.normal(size=(2, 4, 3, 2)), _labels(rng, 4, (2, 3, 2), ignored=1),
                        _weights(rng, 4)),
           (True, False, False)),
    *_case("nll_unbatched", lambda F, x, t, **kw: F.nll_loss(x, t, **kw),
           lambda rng: (rng.normal(size=(4,)), np.array(1)), (True, False)),
    # --- binary_cross_entropy on probabilities (soft targets, differentiable) ---
    *_case("bce", lambda F, x, t, **kw: F.binary_cross_entropy(x, t, **kw),
           lambda rng: (rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))),
           (True, True)),
    *_case("bce_weight_broadcast", lambda F, x, t, w, **kw: F.binary_cross_entropy(x, t, w, **kw),
           lambda rng: (rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3)),
                        _weights(rng, 3)),
           (True, True, False)),
    *_case("bce_kdim_weight", lambda F, x, t, w, **kw: F.binary_cross_entropy(x, t, w, **kw),
           lambda rng: (rng.uniform(0.05, 0.95, (2, 3, 2)),
                        rng.integers(0, 2, (2, 3, 2)).astype(np.float64),
                        rng.uniform(0.5, 2.0, (2, 3, 2))),
           (True, True, False)),
    # --- binary_cross_entropy_with_logits ---
    *_case("bce_logits", lambda F, x, t, **kw: F.binary_cross_entropy_with_logits(x, t, **kw),
           lambda rng: (rng.normal(0, 3, (4, 3)), rng.uniform(0, 1, (4, 3))), (True, True)),
    *_case("bce_logits_weight",
           lambda F, x, t, w, **kw: F.binary_cross_entropy_with_logits(x, t, w, **kw),
           lambda rng: (rng.normal(0, 3, (4, 3)), rng.uniform(0, 1, (4, 3)), _weights(rng, 3)),
           (True, True, False)),
    *_case("bce_logits_pos_weight",
           lambda F, x, t, p, **kw: F.binary_cross_entropy_with_logits(x, t, pos_weight=p, **kw),
           lambda rng: (rng.normal(0, 3, (4, 3)), rng.uniform(0, 1, (4, 3)), _weights(rng, 3)),
           (True, True, False)),
    *_case("bce_logits_weight_pos_weight_kdim",
           lambda F, x, t, w, p, **kw: F.binary_cross_entropy_with_logits(x, t, w, pos_weight=p,
                                                                          **kw),
           lambda rng: (rng.normal(0, 3, (2, 3, 2, 2)),
                        rng.integers(0, 2, (2, 3, 2, 2)).astype(np.float64),
                        rng.uniform(0.5, 2.0, (2, 3, 2, 2)), _weights(rng, 3)[:, None, None]),
           (True, True, False, False)),
    *_case("bce_logits_0d", lambda F, x, t, **kw: F.binary_cross_entropy_with_logits(x, t, **kw),
           lambda rng: (rng.normal(size=()), rng.uniform(0, 1, ())), (True, True)),
]


def _off_threshold(rng, x, threshold):
    """A target whose residual |x - t| stays clear of ``threshold`` (the kink of huber and
    smooth L1): about half the elements inside, half outside."""
    inside = rng.uniform(0.1, 0.8, x.shape) * threshold
    outside = rng.uniform(1.2, 2.5, x.shape) * threshold
    size = np.where(rng.random(x.shape) < 0.5, inside, outside)
    return x + rng.choice([-1.0, 1.0], x.shape) * size


def _spread_scores(rng, n, c, step=0.37):
    """Scores on a grid of ``step`` plus small noise: every margin - x[y] + x[i] (margin 1 or
    0.5) stays at least 0.07 from the hinge's kink at 0."""
    return np.stack([rng.permutation(c) * step for _ in range(n)]) + rng.uniform(-0.02, 0.02,
                                                                                 (n, c))


def _signs(rng, shape, dtype=np.float64):
    return rng.choice([-1, 1], shape).astype(dtype)


def _off_margin(rng, shape, margin):
    """Distances clear of the hinge's kink at ``margin``."""
    return margin + rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)


def _log_probs(rng, shape):
    return np.log(_probs(rng, shape))


def _quiet_mean(call):
    """kl_div with reduction='mean' warns in both libraries (tested on its own)."""
    def run(F, *xs, **kw):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*'batchmean'")
            return call(F, *xs, **kw)
    return run


_KL_CALL = _quiet_mean(lambda F, x, t, **kw: F.kl_div(x, t, **kw))
_KL_LOG_CALL = _quiet_mean(lambda F, x, t, **kw: F.kl_div(x, t, log_target=True, **kw))


def _triplet(rng, n, d):
    """Anchor, positive and negative with every hinge margin + d(a, p) - d(a, n) active or not
    by a clear amount, and no near-tie between d(a, n) and d(p, n)."""
    a = rng.normal(size=(n, d))
    return a, a + rng.normal(0, 0.5, (n, d)), a + rng.normal(0, 1.0, (n, d))


CASES += [
    # --- huber_loss and smooth_l1_loss (points clear of the kink at |d| = delta or beta) ---
    *_case("huber", lambda F, x, t, **kw: F.huber_loss(x, t, **kw),
           lambda rng: (x := rng.normal(size=(4, 3)), _off_threshold(rng, x, 1.0)), (True, True)),
    *_case("huber_delta", lambda F, x, t, **kw: F.huber_loss(x, t, delta=0.4, **kw),
           lambda rng: (x := rng.normal(size=(2, 3, 2)), _off_threshold(rng, x, 0.4)),
           (True, True)),
    *_case("huber_delta_weight", lambda F, x, t, w, **kw: F.huber_loss(x, t, delta=2.5, weight=w,
                                                                       **kw),
           lambda rng: (x := rng.normal(size=(4, 3)), _off_threshold(rng, x, 2.5),
                        rng.uniform(0.5, 2.0, (4, 3))),
           (True, True, True)),  # a composite in PyTorch too: the weight is differentiable
    *_case("huber_0d", lambda F, x, t, **kw: F.huber_loss(x, t, **kw),
           lambda rng: (np.array(0.3), np.array(-1.5)), (True, True)),
    *_case("smooth_l1", lambda F, x, t, **kw: F.smooth_l1_loss(x, t, **kw),
           lambda rng: (x := rng.normal(size=(4, 3)), _off_threshold(rng, x, 1.0)), (True, True)),
    *_case("smooth_l1_beta", lambda F, x, t, **kw: F.smooth_l1_loss(x, t, beta=0.3, **kw),
           lambda rng: (x := rng.normal(size=(3, 4)), _off_threshold(rng, x, 0.3)), (True, True)),
    *_case("smooth_l1_beta_zero", lambda F, x, t, **kw: F.smooth_l1_loss(x, t, beta=0.0, **kw),
           lambda rng: (x := rng.normal(size=(3, 4)), _away_from(rng, x)), (True, True)),
    # --- kl_div: the input and the target are differentiable ---
    *_case("kl_div", _KL_CALL,
           lambda rng: (_log_probs(rng, (4, 5)), _probs(rng, (4, 5))), (True, True)),
    *_case("kl_div_log_target", _KL_LOG_CALL,
           lambda rng: (_log_probs(rng, (4, 5)), _log_probs(rng, (4, 5))), (True, True)),
    *_case("kl_div_kdim", _KL_CALL,
           lambda rng: (_log_probs(rng, (2, 3, 4)), _probs(rng, (2, 3, 4))), (True, True)),
    LossCase("kl_div_batchmean", lambda F, x, t: F.kl_div(x, t, reduction="batchmean"),
             lambda rng: (_log_probs(rng, (4, 5)), _probs(rng, (4, 5))), (True, True)),
    LossCase("kl_div_batchmean_log_target",
             lambda F, x, t: F.kl_div(x, t, reduction="batchmean", log_target=True),
             lambda rng: (_log_probs(rng, (3, 2, 4)), _log_probs(rng, (3, 2, 4))), (True, True)),
    LossCase("kl_div_batchmean_0d", lambda F, x, t: F.kl_div(x, t, reduction="batchmean"),
             lambda rng: (np.array(-0.7), np.array(0.4)), (True, True)),
    LossCase("kl_div_batchmean_broadcast_target",
             lambda F, x, t: F.kl_div(x, t, reduction="batchmean"),
             lambda rng: (_log_probs(rng, (4, 5)), _probs(rng, (5,), 0)), (True, True)),
    # --- multi_margin_loss (scores clear of the hinge's kink) ---
    *_case("multi_margin", lambda F, x, t, **kw: F.multi_margin_loss(x, t, **kw),
           lambda rng: (_spread_scores(rng, 5, 4), _labels(rng, 4, (5,))), (True, False)),
    *_case("multi_margin_p2_margin", lambda F, x, t, **kw: F.multi_margin_loss(x, t, 2, 0.5, **kw),
           lambda rng: (_spread_scores(rng, 5, 4), _labels(rng, 4, (5,))), (True, False)),
    *_case("multi_margin_weight", lambda F, x, t, w, **kw: F.multi_margin_loss(x, t, weight=w,
                                                                               **kw),
           lambda rng: (_spread_scores(rng, 6, 3), _labels(rng, 3, (6,)), _weights(rng, 3)),
           (True, False, False)),
    *_case("multi_margin_p2_weight",
           lambda F, x, t, w, **kw: F.multi_margin_loss(x, t, p=2, weight=w, **kw),
           lambda rng: (_spread_scores(rng, 6, 5), _labels(rng, 5, (6,)), _weights(rng, 5)),
           (True, False, False)),
    *_case("multi_margin_unbatched", lambda F, x, t, **kw: F.multi_margin_loss(x, t, p=2, **kw),
           lambda rng: (_spread_scores(rng, 1, 5)[0], np.array(2)), (True, False)),
    # --- hinge_embedding_loss (inputs clear of the kink at the margin) ---
    *_case("hinge_embedding", lambda F, x, t, **kw: F.hinge_embedding_loss(x, t, **kw),
           lambda rng: (_off_margin(rng, (4, 3), 1.0), _signs(rng, (4, 3))), (True, False)),
    *_case("hinge_embedding_margin",
           lambda F, x, t, **kw: F.hinge_embedding_loss(x, t, margin=2.0, **kw),
           lambda rng: (_off_margin(rng, (2, 3, 2), 2.0), _signs(rng, (2, 3, 2), np.int64)),
           (True, False)),
    *_case("hinge_embedding_broadcast_target",
           lambda F, x, t, **kw: F.hinge_embedding_loss(x, t, margin=0.5, **kw),
           lambda rng: (_off_margin(rng, (4, 3), 0.5), _signs(rng, (3,))), (True, False)),
    # --- cosine_embedding_loss ---
    *_case("cosine_embedding", lambda F, a, b, t, **kw: F.cosine_embedding_loss(a, b, t, **kw),
           lambda rng: (a := rng.normal(size=(6, 4)), a + rng.normal(0, 1.5, (6, 4)),
                        _signs(rng, (6,), np.int64)),
           (True, True, False)),
    *_case("cosine_embedding_margin",
           lambda F, a, b, t, **kw: F.cosine_embedding_loss(a, b, t, margin=-0.3, **kw),
           lambda rng: (a := rng.normal(size=(6, 3)), a * rng.choice([-1.0, 1.0], (6, 1))
                        + rng.normal(0, 0.4, (6, 3)), _signs(rng, (6,))),
           (True, True, False)),
    *_case("cosine_embedding_unbatched",
           lambda F, a, b, t, **kw: F.cosine_embedding_loss(a, b, t, margin=0.5, **kw),
           lambda rng: (rng.normal(size=(5,)), rng.normal(size=(5,)), np.array(-1.0)),
           (True, True, False)),
    # --- triplet_margin_loss ---
    *_case("triplet", lambda F, a, p, n, **kw: F.triplet_margin_loss(a, p, n, **kw),
           lambda rng: _triplet(rng, 6, 4), (True, True, True)),
    *_case("triplet_p1_swap",
           lambda F, a, p, n, **kw: F.triplet_margin_loss(a, p, n, p=1, swap=True, **kw),
           lambda rng: _triplet(rng, 6, 3), (True, True, True)),
    *_case("triplet_p3_margin_eps",
           lambda F, a, p, n, **kw: F.triplet_margin_loss(a, p, n, margin=0.5, p=3, eps=1e-3,
                                                          **kw),
           lambda rng: _triplet(rng, 5, 4), (True, True, True)),
    *_case("triplet_swap", lambda F, a, p, n, **kw: F.triplet_margin_loss(a, p, n, margin=2.0,
                                                                          swap=True, **kw),
           lambda rng: _triplet(rng, 6, 2), (True, True, True)),
    *_case("triplet_unbatched", lambda F, a, p, n, **kw: F.triplet_margin_loss(a, p, n, **kw),
           lambda rng: tuple(v[0] for v in _triplet(rng, 1, 5)),
           (True, True, True)),
    *_case("triplet_broadcast", lambda F, a, p, n, **kw: F.triplet_margin_loss(a, p, n, **kw),
           lambda rng: (rng.normal(size=(1, 3)), rng.normal(size=(5, 3)),
                        rng.normal(0, 2, (5, 3))),
           (True, True, True)),
]


def _ids(cases):
    return [c.name for c in cases]


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _bp_inputs(case: LossCase, arrays, dtype=np.float64) -> list:
    return [
        bp.tensor(a.astype(dtype), requires_grad=g) if a.dtype.kind == "f" else bp.tensor(a)
        for a, g in zip(arrays, case.grad, strict=True)
    ]


def _torch_inputs(torch, case: LossCase, arrays) -> list:
    return [
        torch.tensor(a, requires_grad=g) if a.dtype.kind == "f" else torch.tensor(a)
        for a, g in zip(arrays, case.grad, strict=True)
    ]


def _bp_call(case: LossCase) -> Callable:
    return lambda *xs: case.call(F, *xs)


def test_case_names_are_unique():
    names = _ids(CASES)
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# --- the table ---


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_loss_matches_torch(case: LossCase):
    torch = pytest.importorskip("torch")
    rng = _rng(case.name)
    arrays = case.make(rng)
    xs = _bp_inputs(case, arrays)
    ts = _torch_inputs(torch, case, arrays)
    out = case.call(F, *xs)
    tout = case.call(torch.nn.functional, *ts)
    expected = tout.detach().numpy()
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)  # a random upstream gradient ('none' is not a sum)
    leaves = [x for x in xs if x.requires_grad]
    grads = bp.autograd.grad(out, leaves, bp.tensor(g))
    tgrads = torch.autograd.grad(tout, [t for t in ts if t.requires_grad], torch.tensor(g))
    for i, (got, want) in enumerate(zip(grads, tgrads, strict=True)):
        np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=f"{case.name}: gradient of input {i}")


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_loss_gradcheck(case: LossCase):
    inputs = _bp_inputs(case, case.make(_rng(case.name)))
    assert bp.gradcheck(_bp_call(case), tuple(inputs))


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_loss_gradgradcheck(case: LossCase):
    inputs = _bp_inputs(case, case.make(_rng(case.name)))
    assert bp.gradgradcheck(_bp_call(case), tuple(inputs))


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_loss_float32_in_float32_out(case: LossCase):
    """float32 inputs (and float64 weights, cast to the input's dtype) give a float32 loss and
    float32 gradients: no silent upcast anywhere in forward or backward."""
    rng = _rng(case.name)
    arrays = case.make(rng)
    xs = [
        x if not x.requires_grad else bp.tensor(x.data.astype(np.float32), requires_grad=True)
        for x in _bp_inputs(case, arrays)
    ]
    out = case.call(F, *xs)
    assert out.dtype == np.float32
    leaves = [x for x in xs if x.requires_grad]
    g = bp.tensor(rng.standard_normal(out.shape), dtype=bp.float32)
    grads = bp.autograd.grad(out, leaves, g)
    for x, g in zip(leaves, grads, strict=True):
        assert g.dtype == np.float32 and g.shape == x.shape


# l1, hinge_embedding, smooth_l1 with beta=0, triplet with p=1 (piecewise linear) and nll (linear)
# have a zero second derivative: no graph to compare. PyTorch has no double backward for
# multi_margin_loss ("derivative for aten::multi_margin_loss_backward is not implemented");
# gradgradcheck covers ours.
SECOND_ORDER = [c for c in CASES
                if c.name.endswith("_none")
                and not c.name.startswith(("l1", "nll", "hinge", "multi_margin",
                                           "smooth_l1_beta_zero", "triplet_p1"))]


@pytest.mark.parametrize("case", SECOND_ORDER, ids=_ids(SECOND_ORDER))
def test_loss_second_derivatives_match_torch(case: LossCase):
    """Hessian-vector products: the backward rules are differentiable Tensor code."""
    torch = pytest.importorskip("torch")
    rng = _rng(case.name)
    arrays = case.make(rng)
    xs = _bp_inputs(case, arrays)
    ts = _torch_inputs(torch, case, arrays)
    g = rng.standard_normal(case.call(F, *xs).shape)
    leaves = [x for x in xs if x.requires_grad]
    tleaves = [t for t in ts if t.requires_grad]
    vs = [rng.standard_normal(x.shape) for x in leaves]
    grads = bp.autograd.grad(case.call(F, *xs), leaves, bp.tensor(g), create_graph=True)
    hvp = bp.autograd.grad(sum((gr * bp.tensor(v)).sum() for gr, v in zip(grads, vs)), leaves,
                           allow_unused=True)
    tgrads = torch.autograd.grad(case.call(torch.nn.functional, *ts), tleaves, torch.tensor(g),
                                 create_graph=True)
    thvp = torch.autograd.grad(sum((gr * torch.tensor(v)).sum() for gr, v in zip(tgrads, vs)),
                               tleaves, allow_unused=True)
    for i, (got, want) in enumerate(zip(hvp, thvp, strict=True)):
        got = np.zeros(leaves[i].shape) if got is None else got.data
        want = np.zeros(leaves[i].shape) if want is None else want.numpy()
        # PyTorch's BCE double backward adds 1e-12 to x and 1 - x: agreement to ~1e-10
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10,
                                   err_msg=f"{case.name}: second derivative, input {i}")


# --- the fused cross-entropy against the unfused composite ---


@pytest.mark.parametrize("shape", [(6, 5), (1, 3), (8, 1)], ids=["6x5", "1x3", "8x1"])
def test_cross_entropy_matches_unfused_composite(shape, rng):
    n, c = shape
    x_data, t = rng.normal(0, 3, shape), rng.integers(0, c, n)
    fused_x = bp.tensor(x_data, requires_grad=True)
    plain_x = bp.tensor(x_data, requires_grad=True)
    fused = F.cross_entropy(fused_x, bp.tensor(t))
    plain = -(F.log_softmax(plain_x, 1)[np.arange(n), t]).mean()
    np.testing.assert_allclose(fused.data, plain.data, rtol=1e-14, atol=1e-15)
    fused.backward()
    plain.backward()
    np.testing.assert_allclose(fused_x.grad.data, plain_x.grad.data, rtol=1e-13, atol=1e-16)
    # the fused graph is one node, straight to the logits' accumulator
    assert fused.grad_fn.name() == "CrossEntropyBackward"
    assert fused.grad_fn.next_functions[0][0].name() == "AccumulateGrad"


def test_cross_entropy_none_matches_unfused_composite_per_sample(rng):
    x_data, t = rng.normal(0, 3, (5, 4)), rng.integers(0, 4, 5)
    g = rng.standard_normal(5)
    fused_x, plain_x = (bp.tensor(x_data, requires_grad=True) for _ in range(2))
    fused = F.cross_entropy(fused_x, bp.tensor(t), reduction="none")
    plain = -(F.log_softmax(plain_x, 1)[np.arange(5), t])
    np.testing.assert_allclose(fused.data, plain.data, rtol=1e-14)
    fused.backward(bp.tensor(g))
    plain.backward(bp.tensor(g))
    np.testing.assert_allclose(fused_x.grad.data, plain_x.grad.data, rtol=1e-13, atol=1e-16)


def test_cross_entropy_gradient_is_softmax_minus_one_hot(rng):
    x_data, t = rng.normal(size=(4, 3)), np.array([0, 2, 1, 2])
    x = bp.tensor(x_data, requires_grad=True)
    F.cross_entropy(x, bp.tensor(t), reduction="sum").backward()
    e = np.exp(x_data - x_data.max(1, keepdims=True))
    np.testing.assert_allclose(x.grad.data, e / e.sum(1, keepdims=True) - np.eye(3)[t],
                               rtol=1e-13, atol=1e-16)


# --- stability ---

_HUGE = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_cross_entropy_is_finite_and_exact_at_huge_logits(dtype):
    t = np.array([0, 2, 2])
    x = bp.tensor(_HUGE.astype(dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no 0·inf, no log(0)
        loss = F.cross_entropy(x, bp.tensor(t), reduction="none")
        loss.sum().backward()
    ln2 = np.log(2.0)
    np.testing.assert_allclose(loss.data, [0.0, ln2, 1e4 + ln2], rtol=1e-6)
    expected_grad = [[0, 0, 0], [0, 0.5, -0.5], [0.5, 0.5, -1]]  # softmax - one-hot
    np.testing.assert_allclose(x.grad.data, expected_grad, atol=1e-7)
    assert loss.dtype == dtype and x.grad.dtype == dtype


def test_cross_entropy_huge_logits_match_torch_with_every_option():
    torch = pytest.importorskip("torch")
    t, w = np.array([0, 2, 2]), np.array([0.5, 2.0, 1.0])
    x = bp.tensor(_HUGE, requires_grad=True)
    tx = torch.tensor(_HUGE, requires_grad=True)
    opts = {"ignore_index": 0, "label_smoothing": 0.2}
    loss = F.cross_entropy(x, bp.tensor(t), bp.tensor(w), **opts)
    tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(t), torch.tensor(w), **opts)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.data, tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_cross_entropy_probability_targets_are_finite_at_huge_logits(dtype):
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.25, 0.25, 0.5]], dtype=dtype)
    x = bp.tensor(_HUGE.astype(dtype), requires_grad=True)
    t = bp.tensor(probs, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(x, t, reduction="none", label_smoothing=0.1)
        loss.sum().backward()
    assert loss.dtype == dtype and np.isfinite(loss.data).all()
    assert np.isfinite(x.grad.data).all() and np.isfinite(t.grad.data).all()
    torch = pytest.importorskip("torch")
    tx = torch.tensor(_HUGE.astype(dtype), requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(probs), reduction="none",
                                              label_smoothing=0.1)
    tloss.sum().backward()
    np.testing.assert_allclose(loss.data, tloss.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_bce_with_logits_is_finite_and_exact_at_huge_logits(dtype):
    x = bp.tensor(np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype), requires_grad=True)
    t = bp.tensor(np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=dtype), requires_grad=True)
    pw = bp.tensor(np.array([3.0], dtype=dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none", pos_weight=pw)
        loss.sum().backward()
    ln2 = np.log(2.0)
    np.testing.assert_allclose(loss.data, [0, 0, 1e4, 3e4, 3 * ln2], rtol=1e-6)
    # ∂/∂x = (1 + (p - 1)t)·σ(x) - p·t
    np.testing.assert_allclose(x.grad.data, [0, 0, 1, -3, -1.5], atol=1e-7)
    assert np.isfinite(t.grad.data).all()
    assert loss.dtype == dtype and x.grad.dtype == dtype and t.grad.dtype == dtype


def test_bce_clamps_the_log_and_keeps_pytorch_gradients_at_0_and_1():
    """At x = 0 or 1 the loss is 100 (log clamped at -100), the input gradient PyTorch's finite
    (x - t)/max(x(1 - x), 1e-12) and the target gradient PyTorch's -logit(x) (±inf)."""
    torch = pytest.importorskip("torch")
    x_data = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5])
    t_data = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.3])
    x, t = bp.tensor(x_data, requires_grad=True), bp.tensor(t_data, requires_grad=True)
    tx, tt = torch.tensor(x_data, requires_grad=True), torch.tensor(t_data, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy(x, t, reduction="none")
        loss.sum().backward()
    tloss = torch.nn.functional.binary_cross_entropy(tx, tt, reduction="none")
    tloss.sum().backward()
    np.testing.assert_allclose(loss.data, tloss.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(loss.data[:4], [0, 0, 100, 100])
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-14)
    np.testing.assert_array_equal(np.isinf(t.grad.data), np.isinf(tt.grad.numpy()))
    np.testing.assert_allclose(t.grad.data, tt.grad.numpy(), rtol=1e-14)


def test_bce_of_saturated_sigmoid_is_finite():
    x = bp.tensor(np.array([-200.0, 200.0]), requires_grad=True)
    p = x.sigmoid()
    loss = F.binary_cross_entropy(p, bp.tensor(np.array([1.0, 0.0])))
    loss.backward()
    np.testing.assert_allclose(loss.data, 100.0)  # both logs clamped at -100
    assert np.isfinite(x.grad.data).all()


# --- PyTorch's edge cases ---


@pytest.mark.parametrize("smoothing", [0.0, 0.25], ids=["plain", "smoothed"])
def test_cross_entropy_all_ignored_mean_is_nan_with_zero_gradient(smoothing):
    torch = pytest.importorskip("torch")
    x_data = np.random.default_rng(3).normal(size=(3, 4))
    x = bp.tensor(x_data, requires_grad=True)
    tx = torch.tensor(x_data, requires_grad=True)
    t = np.full(3, -100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(x, bp.tensor(t), label_smoothing=smoothing)
        loss.backward()
    tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(t), label_smoothing=smoothing)
    tloss.backward()
    assert np.isnan(loss.item()) and np.isnan(tloss.item())
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


def test_nll_loss_zero_weight_mean_is_nan_like_torch():
    torch = pytest.importorskip("torch")
    x_data = np.random.default_rng(4).normal(size=(3, 4))
    t, w = np.array([0, 1, -100]), np.array([0.0, 0.0, 1.0, 1.0])
    x, tx = bp.tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    loss = F.nll_loss(x, bp.tensor(t), bp.tensor(w))
    loss.backward()
    tloss = torch.nn.functional.nll_loss(tx, torch.tensor(t), torch.tensor(w))
    tloss.backward()
    assert np.isnan(loss.item()) and np.isnan(tloss.item())
    np.testing.assert_array_equal(np.isnan(x.grad.data), np.isnan(tx.grad.numpy()))


def test_mse_loss_broadcasting_warns_and_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x_data, t_data = rng.normal(size=(4, 1)), rng.normal(size=(4,))
    x = bp.tensor(x_data, requires_grad=True)
    with pytest.warns(UserWarning, match=r"mse_loss: target of shape \(4,\) differs"):
        loss = F.mse_loss(x, bp.tensor(t_data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tloss = torch.nn.functional.mse_loss(torch.tensor(x_data), torch.tensor(t_data))
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)


def test_float64_weight_keeps_a_float32_loss():
    x = bp.randn(4, 3, requires_grad=True)
    w = bp.tensor(np.array([1.0, 2.0, 3.0]))  # float64
    for loss in (F.cross_entropy(x, bp.tensor([0, 1, 2, 0]), w),
                 F.binary_cross_entropy_with_logits(x, bp.zeros(4, 3), w, pos_weight=w),
                 F.binary_cross_entropy(x.sigmoid(), bp.zeros(4, 3), w)):
        assert loss.dtype == np.float32


def test_targets_accept_arrays():
    x = bp.randn(3, 4, requires_grad=True)
    a = F.cross_entropy(x, np.array([0, 1, 3]))
    b = F.cross_entropy(x, bp.tensor([0, 1, 3]))
    assert a.item() == b.item()


def test_no_grad_makes_no_graph_and_allows_a_weight_that_requires_grad():
    x = bp.randn(3, 4, requires_grad=True)
    w = bp.ones(4, requires_grad=True)
    with bp.no_grad():
        loss = F.cross_entropy(x, bp.tensor([0, 1, 3]), w)
    assert loss.grad_fn is None and not loss.requires_grad


# --- bad input: each error names the function, the shapes or values, and the fix ---


def _raises(exc, fn, *words):
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"
    return message


_FUNCTIONS = {
    "mse_loss": lambda **kw: F.mse_loss(bp.ones(2), bp.ones(2), **kw),
    "l1_loss": lambda **kw: F.l1_loss(bp.ones(2), bp.ones(2), **kw),
    "cross_entropy": lambda **kw: F.cross_entropy(bp.ones(2, 3), bp.tensor([0, 1]), **kw),
    "nll_loss": lambda **kw: F.nll_loss(bp.ones(2, 3), bp.tensor([0, 1]), **kw),
    "binary_cross_entropy": lambda **kw: F.binary_cross_entropy(bp.ones(2) / 2, bp.ones(2), **kw),
    "binary_cross_entropy_with_logits":
        lambda **kw: F.binary_cross_entropy_with_logits(bp.ones(2), bp.ones(2), **kw),
}


@pytest.mark.parametrize("name", list(_FUNCTIONS))
def test_invalid_reduction_names_the_valid_ones(name):
    _raises(ValueError, lambda: _FUNCTIONS[name](reduction="avg"), name, "'avg'", "'mean'",
            "'sum'", "'none'")


@pytest.mark.parametrize("cls", ["MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
                                 "BCEWithLogitsLoss"])
def test_loss_module_rejects_invalid_reduction_at_construction(cls):
    _raises(ValueError, lambda: getattr(nn, cls)(reduction="elementwise_mean"), cls, "'mean'")


def test_cross_entropy_rejects_float_targets_for_class_indices():
    _raises(TypeError, lambda: F.cross_entropy(bp.ones(3, 4), bp.tensor([0.0, 1.0, 2.0])),
            "cross_entropy", "float32", "(3,)", "(3, 4)", "target.long()", "probabilities")


def test_nll_loss_rejects_float_targets():
    _raises(TypeError, lambda: F.nll_loss(bp.ones(3, 4), bp.tensor([0.0, 1.0, 2.0])),
            "nll_loss", "float32", "target.long()")


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_labels_out_of_range_are_named(fn):
    call = getattr(F, fn)
    _raises(IndexError, lambda: call(bp.ones(3, 4), bp.tensor([0, 4, 7])), fn, "[0, 4)",
            "[4, 7]", "C=4", "ignore_index=-100")
    _raises(IndexError, lambda: call(bp.ones(3, 4), bp.tensor([0, -1, 2])), fn, "[-1]")
    # the ignore_index itself is fine, anywhere
    call(bp.ones(3, 4), bp.tensor([0, 9, 2]), ignore_index=9)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_mismatched_batch_sizes_are_named(fn):
    call = getattr(F, fn)
    _raises(bp.ShapeError, lambda: call(bp.ones(3, 4), bp.tensor([0, 1])), fn, "(2,)", "(3, 4)",
            "batch sizes differ", "(3,)")


def test_kdim_target_of_the_wrong_shape_is_named():
    target = bp.zeros(2, 2, dtype=bp.int64)
    _raises(bp.ShapeError, lambda: F.cross_entropy(bp.ones(2, 4, 3), target), "cross_entropy",
            "(2, 2)", "(2, 4, 3)", "class indices need shape (2, 3)")
    _raises(bp.ShapeError, lambda: F.nll_loss(bp.ones(4), bp.tensor([1])), "nll_loss", "()")


def test_class_loss_rejects_a_0d_input():
    _raises(bp.ShapeError, lambda: F.cross_entropy(bp.tensor(1.0), bp.tensor(0)),
            "cross_entropy", "no class dimension")


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_class_weight_of_the_wrong_shape_is_named(fn):
    call = getattr(F, fn)
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 4), bp.tensor([0, 1]), bp.ones(3)), fn,
            "(3,)", "(4,)")


@pytest.mark.parametrize("fn, weight_arg", [
    ("cross_entropy", "weight"), ("nll_loss", "weight"),
    ("binary_cross_entropy", "weight"), ("binary_cross_entropy_with_logits", "weight"),
    ("binary_cross_entropy_with_logits", "pos_weight"),
])
def test_weights_that_require_grad_are_refused_like_pytorch(fn, weight_arg):
    x, t = bp.full((2, 3), 0.5, requires_grad=True), bp.full((2, 3), 1.0)
    if fn in ("cross_entropy", "nll_loss"):
        t = bp.tensor([0, 2])
    w = bp.ones(3, requires_grad=True)
    _raises(RuntimeError, lambda: getattr(F, fn)(x, t, **{weight_arg: w}), fn, weight_arg,
            "not differentiable", f"{weight_arg}.detach()")


def test_probability_targets_reject_ignore_index_and_integer_dtype():
    _raises(ValueError, lambda: F.cross_entropy(bp.ones(2, 3), bp.ones(2, 3) / 3, ignore_index=1),
            "cross_entropy", "ignore_index=1", "probability")
    _raises(TypeError, lambda: F.cross_entropy(bp.ones(2, 3), bp.zeros(2, 3, dtype=bp.int64)),
            "cross_entropy", "int64", "floating point", "shape (2,)")


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_label_smoothing_outside_0_1_is_refused(value):
    _raises(ValueError, lambda: F.cross_entropy(bp.ones(2, 3), bp.tensor([0, 1]),
                                                label_smoothing=value),
            "cross_entropy", "label_smoothing", "[0, 1]", str(value))


def test_bce_rejects_inputs_outside_0_1():
    _raises(ValueError, lambda: F.binary_cross_entropy(bp.tensor([0.5, 1.5]), bp.ones(2)),
            "binary_cross_entropy", "[0, 1]", "1.5", "sigmoid", "with_logits")
    _raises(ValueError, lambda: F.binary_cross_entropy(bp.tensor([float("nan")]), bp.ones(1)),
            "binary_cross_entropy", "nan")


@pytest.mark.parametrize("fn", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_binary_losses_need_a_float_target_of_the_input_shape(fn):
    call = getattr(F, fn)
    x = bp.full((3, 2), 0.5)
    _raises(bp.ShapeError, lambda: call(x, bp.ones(3)), fn, "(3,)", "(3, 2)", "view_as")
    _raises(TypeError, lambda: call(x, bp.ones(3, 2, dtype=bp.int64)), fn, "int64",
            "target.float()")


def test_binary_loss_weights_must_broadcast_to_the_input():
    x, t = bp.full((3, 2), 0.5), bp.ones(3, 2)
    _raises(bp.ShapeError, lambda: F.binary_cross_entropy(x, t, bp.ones(3)),
            "binary_cross_entropy", "weight", "(3,)", "(3, 2)")
    _raises(bp.ShapeError, lambda: F.binary_cross_entropy_with_logits(x, t, pos_weight=bp.ones(4)),
            "binary_cross_entropy_with_logits", "pos_weight", "(4,)", "(3, 2)")
    _raises(bp.ShapeError, lambda: F.binary_cross_entropy_with_logits(x, t, bp.ones(2, 3, 2)),
            "binary_cross_entropy_with_logits", "weight", "(2, 3, 2)")


@pytest.mark.parametrize("fn", ["mse_loss", "l1_loss"])
def test_regression_losses_reject_shapes_that_do_not_broadcast(fn):
    call = getattr(F, fn)
    _raises(bp.ShapeError, lambda: call(bp.ones(3, 2), bp.ones(3)), fn, "(3,)", "(3, 2)")
    _raises(bp.ShapeError, lambda: call(bp.ones(3), bp.ones(3), weight=bp.ones(1)), fn, "weight",
            "(1,)", "(3,)")


# --- modules ---

_MODULE_CASES = [
    ("MSELoss", {"reduction": "sum"}, "mse"),
    ("L1Loss", {"reduction": "none"}, "l1"),
    ("CrossEntropyLoss", {"ignore_index": 1, "reduction": "sum", "label_smoothing": 0.1}, "ce"),
    ("NLLLoss", {"ignore_index": 2, "reduction": "none"}, "nll"),
    ("BCELoss", {"reduction": "mean"}, "bce"),
    ("BCEWithLogitsLoss", {"reduction": "sum"}, "bce_logits"),
]


def _module_inputs(kind, rng):
    if kind in ("mse", "l1", "bce_logits"):
        return rng.normal(size=(4, 3)), rng.uniform(0, 1, (4, 3))
    if kind == "bce":
        return rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))
    return rng.normal(size=(4, 3)), np.array([0, 1, 2, 1])


@pytest.mark.parametrize("cls, kwargs, kind", _MODULE_CASES, ids=[c[0] for c in _MODULE_CASES])
def test_loss_module_matches_torch_module(cls, kwargs, kind, rng):
    torch = pytest.importorskip("torch")
    x_data, t_data = _module_inputs(kind, rng)
    weighted = cls not in ("MSELoss", "L1Loss")
    w_data = rng.uniform(0.5, 2.0, 3)
    args = (bp.tensor(w_data),) if weighted else ()
    targs = (torch.tensor(w_data),) if weighted else ()
    x, tx = bp.tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    out = getattr(nn, cls)(*args, **kwargs)(x, bp.tensor(t_data))
    tout = getattr(torch.nn, cls)(*targs, **kwargs)(tx, torch.tensor(t_data))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(bp.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_bce_with_logits_module_pos_weight_matches_functional(rng):
    x, t = bp.tensor(rng.normal(size=(4, 3))), bp.tensor(rng.uniform(0, 1, (4, 3)))
    w, pw = bp.tensor(rng.uniform(0.5, 2, 3)), bp.tensor(rng.uniform(0.5, 2, 3))
    module = nn.BCEWithLogitsLoss(w, reduction="none", pos_weight=pw)
    expected = F.binary_cross_entropy_with_logits(x, t, w, reduction="none", pos_weight=pw)
    np.testing.assert_array_equal(module(x, t).data, expected.data)


def test_loss_weights_are_buffers_in_the_state_dict():
    w, pw = bp.tensor([1.0, 2.0, 3.0]), bp.tensor([0.5, 0.5, 0.5])
    for module in (nn.CrossEntropyLoss(w), nn.NLLLoss(w), nn.BCELoss(w)):
        assert list(module.state_dict()) == ["weight"] and module.weight is w
        assert list(module.parameters()) == []
    module = nn.BCEWithLogitsLoss(w, pos_weight=pw)
    assert list(module.state_dict()) == ["weight", "pos_weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []  # None buffers are not saved
    assert nn.CrossEntropyLoss(w).double().weight.dtype == np.float64


def test_loss_modules_keep_pytorch_defaults_and_repr():
    ce = nn.CrossEntropyLoss()
    assert (ce.weight, ce.ignore_index, ce.reduction, ce.label_smoothing) == (None, -100,
                                                                              "mean", 0.0)
    assert repr(ce) == "CrossEntropyLoss()"
    bce = nn.BCEWithLogitsLoss()
    assert (bce.weight, bce.pos_weight, bce.reduction) == (None, None, "mean")
    assert nn.MSELoss().reduction == "mean" and nn.NLLLoss().ignore_index == -100


def test_arguments_after_pytorchs_deprecated_slots_are_keyword_only():
    """PyTorch's third/fourth positions hold the deprecated size_average/reduce: a positional
    call that means something else there must fail, not silently differ."""
    with pytest.raises(TypeError):
        nn.MSELoss("sum")
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss(None, None, 1)
    with pytest.raises(TypeError):
        F.cross_entropy(bp.ones(2, 3), bp.tensor([0, 1]), None, -100)


def test_functional_reexports_the_losses():
    for name in ("mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits"):
        assert getattr(F, name) is getattr(loss_module, name) and name in F.__all__
    for name in ("MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
                 "BCEWithLogitsLoss"):
        assert getattr(nn, name) is getattr(loss_module, name) and name in nn.__all__


# --- the remaining losses: PyTorch's special cases ---


def test_kl_div_mean_warns_like_torch_and_averages_over_every_element(rng):
    torch = pytest.importorskip("torch")
    x_data, t_data = np.log(_probs(rng, (3, 4))), _probs(rng, (3, 4))
    with pytest.warns(UserWarning, match=r"kl_div: reduction='mean' divides .* 'batchmean'"):
        loss = F.kl_div(bp.tensor(x_data), bp.tensor(t_data))
    with pytest.warns(UserWarning, match="batchmean"):
        tloss = torch.nn.functional.kl_div(torch.tensor(x_data), torch.tensor(t_data))
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    batchmean = F.kl_div(bp.tensor(x_data), bp.tensor(t_data), reduction="batchmean")
    np.testing.assert_allclose(batchmean.item(), loss.item() * 4, rtol=1e-12)  # 12 / 3 elements
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the other reductions do not warn
        for reduction in ("batchmean", "sum", "none"):
            F.kl_div(bp.tensor(x_data), bp.tensor(t_data), reduction=reduction)
    with pytest.warns(UserWarning, match="batchmean"):
        nn.KLDivLoss()(bp.tensor(x_data), bp.tensor(t_data))


def test_kl_div_zero_target_terms_are_zero_like_torch():
    """t·ln t is 0 at t = 0 (PyTorch's xlogy); a negative target gives NaN in both libraries.
    The target's gradient ln t + 1 - x at t = 0 is -x here (the t·ln t term contributes 0),
    NaN (0/0) in PyTorch."""
    torch = pytest.importorskip("torch")
    x_data = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    t_data = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, -0.25]])
    x = bp.tensor(x_data, requires_grad=True)
    tx = torch.tensor(x_data, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.kl_div(x, bp.tensor(t_data), reduction="none")
        loss.sum().backward()
    tloss = torch.nn.functional.kl_div(tx, torch.tensor(t_data), reduction="none")
    tloss.sum().backward()
    np.testing.assert_allclose(loss.data, tloss.detach().numpy(), rtol=1e-14)
    assert np.isnan(loss.data[1, 2]) and loss.data[0, 0] == -0.0
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-14)
    t = bp.tensor(t_data[:, :2], requires_grad=True)
    F.kl_div(bp.tensor(x_data[:, :2]), t, reduction="sum").backward()
    assert t.grad.data[0, 0] == -x_data[0, 0] and np.isfinite(t.grad.data).all()


def test_cosine_embedding_loss_eps_handles_zero_vectors_like_torch():
    torch = pytest.importorskip("torch")
    a_data = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    b_data = np.array([[1.0, -1.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    t_data = np.array([1, -1, 1])
    a, b = bp.tensor(a_data, requires_grad=True), bp.tensor(b_data, requires_grad=True)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a_data, b_data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cosine_embedding_loss(a, b, bp.tensor(t_data), margin=-0.5, reduction="none")
        loss.sum().backward()
    tloss = torch.nn.functional.cosine_embedding_loss(ta, tb, torch.tensor(t_data), margin=-0.5,
                                                      reduction="none")
    tloss.sum().backward()
    np.testing.assert_allclose(loss.data, [1.0, 0.5, 1.0])  # cos = 0 for a zero vector
    np.testing.assert_allclose(loss.data, tloss.detach().numpy(), rtol=1e-14)
    # gradients of order 1/√ε (~4e5) beside a zero vector: rounding agrees to ~1e-9 only
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-8, atol=1e-14)


def test_triplet_eps_keeps_coincident_points_finite_like_torch():
    torch = pytest.importorskip("torch")
    a_data = np.array([[1.0, 2.0], [0.5, 0.5]])
    n_data = np.array([[1.5, 2.0], [3.0, -1.0]])
    a = bp.tensor(a_data, requires_grad=True)
    ta = torch.tensor(a_data, requires_grad=True)
    loss = F.triplet_margin_loss(a, bp.tensor(a_data), bp.tensor(n_data), reduction="sum")
    loss.backward()
    tloss = torch.nn.functional.triplet_margin_loss(ta, torch.tensor(a_data),
                                                    torch.tensor(n_data), reduction="sum")
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert np.isfinite(a.grad.data).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_huber_and_smooth_l1_do_not_overflow_on_huge_residuals(dtype):
    x = bp.tensor(np.array([3e30, -3e30, 0.5], dtype=dtype), requires_grad=True)
    t = bp.zeros(3, dtype=bp.float32 if dtype == np.float32 else bp.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is squared beyond the threshold
        huber = F.huber_loss(x, t, reduction="none", delta=2.0)
        smooth = F.smooth_l1_loss(x, t, reduction="none", beta=2.0)
        (huber.sum() + smooth.sum()).backward()
    np.testing.assert_allclose(huber.data, [6e30, 6e30, 0.125], rtol=1e-6)
    np.testing.assert_allclose(smooth.data, [3e30, 3e30, 0.0625], rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, [3.0, -3.0, 0.75], rtol=1e-6)  # clip(d)+clip(d/β)
    assert huber.dtype == dtype and smooth.dtype == dtype and x.grad.dtype == dtype


def test_smooth_l1_is_huber_over_beta_and_l1_at_beta_zero(rng):
    x, t = bp.tensor(rng.normal(size=(5, 2))), bp.tensor(rng.normal(size=(5, 2)))
    np.testing.assert_allclose(F.smooth_l1_loss(x, t, beta=0.7).item(),
                               F.huber_loss(x, t, delta=0.7).item() / 0.7, rtol=1e-13)
    assert F.smooth_l1_loss(x, t, beta=0.0).item() == F.l1_loss(x, t).item()


def test_huber_and_smooth_l1_broadcasting_warns_like_mse(rng):
    x, t = bp.tensor(rng.normal(size=(4, 1))), bp.tensor(rng.normal(size=(4,)))
    for name in ("huber_loss", "smooth_l1_loss"):
        with pytest.warns(UserWarning, match=rf"{name}: target of shape \(4,\) differs"):
            assert getattr(F, name)(x, t, reduction="none").shape == (4, 4)


def test_hinge_embedding_loss_passes_the_gradient_at_the_margin_like_clamp_min():
    torch = pytest.importorskip("torch")
    x_data, t_data = np.array([1.0, 1.0, 0.0]), np.array([-1.0, 1.0, -1.0])
    x, tx = bp.tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    F.hinge_embedding_loss(x, bp.tensor(t_data), reduction="sum").backward()
    torch.nn.functional.hinge_embedding_loss(tx, torch.tensor(t_data), reduction="sum").backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


def test_multi_margin_loss_matches_its_definition(rng):
    x_data, t = rng.normal(size=(4, 3)), np.array([0, 2, 1, 2])
    w = rng.uniform(0.5, 2.0, 3)
    loss = F.multi_margin_loss(bp.tensor(x_data), bp.tensor(t), p=2, margin=0.8,
                               weight=bp.tensor(w), reduction="none")
    expected = [
        sum(w[y] * max(0.0, 0.8 - row[y] + row[i]) ** 2 for i in range(3) if i != y) / 3
        for row, y in zip(x_data, t, strict=True)
    ]
    np.testing.assert_allclose(loss.data, expected, rtol=1e-13)


# --- the remaining losses: bad input ---


_NEW_FUNCTIONS = {
    "huber_loss": lambda **kw: F.huber_loss(bp.ones(2), bp.ones(2), **kw),
    "smooth_l1_loss": lambda **kw: F.smooth_l1_loss(bp.ones(2), bp.ones(2), **kw),
    "multi_margin_loss": lambda **kw: F.multi_margin_loss(bp.ones(2, 3), bp.tensor([0, 1]), **kw),
    "hinge_embedding_loss": lambda **kw: F.hinge_embedding_loss(bp.ones(2), bp.ones(2), **kw),
    "cosine_embedding_loss":
        lambda **kw: F.cosine_embedding_loss(bp.ones(2, 3), bp.ones(2, 3), bp.ones(2), **kw),
    "triplet_margin_loss":
        lambda **kw: F.triplet_margin_loss(bp.ones(2, 3), bp.ones(2, 3), bp.ones(2, 3), **kw),
}


@pytest.mark.parametrize("name", list(_NEW_FUNCTIONS))
def test_remaining_losses_reject_invalid_reduction_and_batchmean(name):
    for bad in ("avg", "batchmean"):
        _raises(ValueError, lambda bad=bad: _NEW_FUNCTIONS[name](reduction=bad), name,
                repr(bad), "'mean', 'sum' or 'none'")


def test_kl_div_invalid_reduction_names_batchmean():
    _raises(ValueError, lambda: F.kl_div(bp.ones(2), bp.ones(2), reduction="batch"), "kl_div",
            "'batch'", "'mean', 'batchmean', 'sum' or 'none'")
    _raises(ValueError, lambda: nn.KLDivLoss(reduction="avg"), "KLDivLoss", "'batchmean'")
    _raises(ValueError, lambda: nn.HuberLoss(reduction="batchmean"), "HuberLoss", "'none'")


@pytest.mark.parametrize("cls", ["HuberLoss", "SmoothL1Loss", "MultiMarginLoss",
                                 "HingeEmbeddingLoss", "CosineEmbeddingLoss",
                                 "TripletMarginLoss", "KLDivLoss"])
def test_remaining_loss_modules_reject_invalid_reduction_at_construction(cls):
    _raises(ValueError, lambda: getattr(nn, cls)(reduction="elementwise_mean"), cls, "'mean'")


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_huber_delta_and_smooth_l1_beta_must_be_valid(bad):
    x = bp.ones(2)
    _raises(ValueError, lambda: F.huber_loss(x, x, delta=bad), "huber_loss", "delta",
            "positive", str(bad))
    _raises(ValueError, lambda: nn.HuberLoss(delta=bad), "HuberLoss", "delta")
    if bad != 0.0:
        _raises(ValueError, lambda: F.smooth_l1_loss(x, x, beta=bad), "smooth_l1_loss", "beta",
                "non-negative", str(bad))
        _raises(ValueError, lambda: nn.SmoothL1Loss(beta=bad), "SmoothL1Loss", "beta")


@pytest.mark.parametrize("fn", ["huber_loss", "smooth_l1_loss"])
def test_huber_family_rejects_shapes_that_do_not_broadcast(fn):
    _raises(bp.ShapeError, lambda: getattr(F, fn)(bp.ones(3, 2), bp.ones(3)), fn, "(3,)",
            "(3, 2)")


def test_huber_weight_must_have_the_input_shape():
    _raises(bp.ShapeError, lambda: F.huber_loss(bp.ones(3), bp.ones(3), weight=bp.ones(1)),
            "huber_loss", "weight", "(1,)", "(3,)")


@pytest.mark.parametrize("p", [0, 3, 1.5, True])
def test_multi_margin_loss_supports_only_p_1_and_2(p):
    _raises(ValueError, lambda: F.multi_margin_loss(bp.ones(2, 3), bp.tensor([0, 1]), p=p),
            "multi_margin_loss", "p == 1 and p == 2", repr(p))
    _raises(ValueError, lambda: nn.MultiMarginLoss(p=p), "MultiMarginLoss", "p == 1")


def test_multi_margin_loss_rejects_bad_shapes_and_targets():
    fn = "multi_margin_loss"
    call = F.multi_margin_loss
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3, 4), bp.zeros(2, 4, dtype=bp.int64)), fn,
            "(2, 3, 4)", "(N, C)")
    _raises(bp.ShapeError, lambda: call(bp.ones(0), bp.tensor(0)), fn, "(0,)")
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.tensor([[0], [1]])), fn, "(2, 1)",
            "(2, 3)", "(2,)")
    _raises(bp.ShapeError, lambda: call(bp.ones(3, 4), bp.tensor([0, 1])), fn,
            "batch sizes differ")
    message = _raises(IndexError, lambda: call(bp.ones(2, 3), bp.tensor([0, 3])), fn, "[0, 3)",
                      "[3]", "C=3")
    assert "ignore_index" not in message
    _raises(IndexError, lambda: call(bp.ones(2, 3), bp.tensor([-1, 0])), fn, "[-1]")
    _raises(TypeError, lambda: call(bp.ones(2, 3), bp.tensor([0.0, 1.0])), fn, "float32",
            "target.long()")
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.tensor([0, 1]), weight=bp.ones(2)), fn,
            "(2,)", "(3,)")
    _raises(RuntimeError, lambda: call(bp.ones(2, 3), bp.tensor([0, 1]),
                                       weight=bp.ones(3, requires_grad=True)),
            fn, "weight.detach()")


@pytest.mark.parametrize("bad", [0.0, 2.0, 0.5])
def test_embedding_losses_need_targets_of_1_or_minus_1(bad):
    _raises(ValueError, lambda: F.hinge_embedding_loss(bp.ones(3), bp.tensor([1.0, bad, -1.0])),
            "hinge_embedding_loss", "1 (similar) or -1 (dissimilar)", str(bad))
    _raises(ValueError, lambda: F.cosine_embedding_loss(bp.ones(2, 3), bp.ones(2, 3),
                                                        bp.tensor([bad, 1.0])),
            "cosine_embedding_loss", "1 (similar) or -1 (dissimilar)", str(bad))


def test_embedding_loss_targets_must_fit_the_inputs():
    _raises(bp.ShapeError, lambda: F.hinge_embedding_loss(bp.ones(3, 2), bp.ones(3)),
            "hinge_embedding_loss", "target", "(3,)", "(3, 2)")
    fn, call = "cosine_embedding_loss", F.cosine_embedding_loss
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.ones(2, 3), bp.ones(3)), fn,
            "target of shape (3,)", "(2,)")
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.ones(2, 3), bp.ones(2, 1)), fn,
            "(2, 1)", "target (N,)")
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.ones(3), bp.ones(2)), fn, "(2, 3)",
            "(3,)")
    _raises(bp.ShapeError, lambda: call(bp.ones(3), bp.ones(3), bp.ones(1)), fn, "(1,)",
            "inputs (D,) with a target ()")
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.ones(2, 4), bp.ones(2)), fn,
            "(2, 3)", "(2, 4)", "same shape")


@pytest.mark.parametrize("margin", [1.5, -1.01, float("nan")])
def test_cosine_embedding_margin_must_be_in_minus_1_1(margin):
    _raises(ValueError, lambda: F.cosine_embedding_loss(bp.ones(2, 3), bp.ones(2, 3),
                                                        bp.ones(2), margin=margin),
            "cosine_embedding_loss", "margin", "[-1, 1]", str(margin))


def test_hinge_embedding_margin_must_be_a_finite_number():
    _raises(ValueError, lambda: F.hinge_embedding_loss(bp.ones(2), bp.ones(2),
                                                       margin=float("nan")),
            "hinge_embedding_loss", "margin", "nan")


@pytest.mark.parametrize("margin", [0.0, -0.5])
def test_triplet_margin_must_be_positive(margin):
    _raises(ValueError, lambda: _NEW_FUNCTIONS["triplet_margin_loss"](margin=margin),
            "triplet_margin_loss", "margin", "greater than 0", str(margin))
    _raises(ValueError, lambda: nn.TripletMarginLoss(margin=margin), "TripletMarginLoss",
            "greater than 0")


@pytest.mark.parametrize("p", [0, -1.0])
def test_triplet_norm_degree_must_be_positive(p):
    _raises(ValueError, lambda: _NEW_FUNCTIONS["triplet_margin_loss"](p=p),
            "triplet_margin_loss", "p must be greater than 0", str(p))


def test_triplet_shapes_must_fit():
    fn, call = "triplet_margin_loss", F.triplet_margin_loss
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.ones(3), bp.ones(2, 3)), fn,
            "anchor (2, 3)", "positive (3,)", "negative (2, 3)", "number of dimensions")
    _raises(bp.ShapeError, lambda: call(bp.ones(2, 3), bp.ones(2, 4), bp.ones(2, 3)), fn,
            "(2, 4)", "broadcast")
    _raises(bp.ShapeError, lambda: call(bp.tensor(1.0), bp.tensor(1.0), bp.tensor(1.0)), fn,
            "at least 1")


def test_kl_div_rejects_shapes_that_do_not_broadcast():
    _raises(bp.ShapeError, lambda: F.kl_div(bp.ones(3, 2), bp.ones(3), reduction="sum"),
            "kl_div", "(3,)", "(3, 2)")


# --- the remaining loss modules ---

_NEW_MODULE_CASES = [
    ("HuberLoss", ("sum", 0.5), {}, "regression"),
    ("SmoothL1Loss", (), {"reduction": "none", "beta": 0.5}, "regression"),
    ("KLDivLoss", (), {"reduction": "batchmean", "log_target": True}, "kl"),
    ("MultiMarginLoss", (2, 0.7), {"reduction": "sum"}, "classes"),
    ("HingeEmbeddingLoss", (0.5,), {"reduction": "none"}, "signs"),
    ("CosineEmbeddingLoss", (0.3,), {"reduction": "sum"}, "pairs"),
    ("TripletMarginLoss", (0.8, 3.0, 1e-4, True), {"reduction": "none"}, "triplets"),
]


def _new_module_inputs(kind, rng):
    if kind == "regression":
        x = rng.normal(size=(4, 3))
        return x, _off_threshold(rng, x, 0.5)
    if kind == "kl":
        return np.log(_probs(rng, (4, 3))), np.log(_probs(rng, (4, 3)))
    if kind == "classes":
        return _spread_scores(rng, 4, 3), np.array([0, 1, 2, 1])
    if kind == "signs":
        return _off_margin(rng, (4, 3), 0.5), _signs(rng, (4, 3))
    if kind == "pairs":
        return rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), _signs(rng, (4,))
    return _triplet(rng, 4, 3)


@pytest.mark.parametrize("cls, args, kwargs, kind", _NEW_MODULE_CASES,
                         ids=[c[0] for c in _NEW_MODULE_CASES])
def test_remaining_loss_modules_match_torch_modules(cls, args, kwargs, kind, rng):
    torch = pytest.importorskip("torch")
    arrays = _new_module_inputs(kind, rng)
    diff = {"classes": (0,), "signs": (0,), "pairs": (0, 1)}.get(kind, range(len(arrays)))
    xs = [bp.tensor(a, requires_grad=i in diff) for i, a in enumerate(arrays)]
    ts = [torch.tensor(a, requires_grad=i in diff) for i, a in enumerate(arrays)]
    out = getattr(nn, cls)(*args, **kwargs)(*xs)
    tout = getattr(torch.nn, cls)(*args, **kwargs)(*ts)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    grads = bp.autograd.grad(out, [x for x in xs if x.requires_grad], bp.tensor(g))
    tgrads = torch.autograd.grad(tout, [t for t in ts if t.requires_grad], torch.tensor(g))
    for got, want in zip(grads, tgrads, strict=True):
        np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-9, atol=1e-12)


def test_remaining_loss_modules_keep_pytorch_defaults():
    torch = pytest.importorskip("torch")
    attrs = {
        "HuberLoss": ("reduction", "delta"), "SmoothL1Loss": ("reduction", "beta"),
        "KLDivLoss": ("reduction", "log_target"),
        "MultiMarginLoss": ("p", "margin", "weight", "reduction"),
        "HingeEmbeddingLoss": ("margin", "reduction"),
        "CosineEmbeddingLoss": ("margin", "reduction"),
        "TripletMarginLoss": ("margin", "p", "eps", "swap", "reduction"),
    }
    for cls, names in attrs.items():
        ours, theirs = getattr(nn, cls)(), getattr(torch.nn, cls)()
        for name in names:
            assert getattr(ours, name) == getattr(theirs, name), (cls, name)
        assert repr(ours) == f"{cls}()"


def test_multi_margin_weight_is_a_buffer_in_the_state_dict():
    w = bp.tensor([1.0, 2.0, 3.0])
    module = nn.MultiMarginLoss(weight=w)
    assert list(module.state_dict()) == ["weight"] and module.weight is w
    assert list(module.parameters()) == [] and list(nn.MultiMarginLoss().state_dict()) == []


def test_remaining_losses_keep_pytorchs_positional_slots():
    """Positional where PyTorch has no deprecated size_average/reduce in the way (HuberLoss,
    huber_loss, the margins, p, weight, eps, swap); keyword-only after them."""
    x, t = bp.ones(2, 3), bp.tensor([0, 1])
    assert nn.HuberLoss("sum", 2.0).delta == 2.0
    assert F.huber_loss(bp.ones(2), bp.zeros(2), "sum", 0.5).item() == 0.75
    assert F.multi_margin_loss(x, t, 2, 0.5, bp.ones(3)).item() == pytest.approx(0.5 / 3)
    with pytest.raises(TypeError):
        nn.SmoothL1Loss("sum")
    with pytest.raises(TypeError):
        nn.KLDivLoss(None, None, "sum")
    with pytest.raises(TypeError):
        F.multi_margin_loss(x, t, 1, 1.0, None, None)
    with pytest.raises(TypeError):
        nn.TripletMarginLoss(1.0, 2.0, 1e-6, False, None)


def test_functional_and_nn_reexport_the_remaining_losses():
    for name in ("huber_loss", "smooth_l1_loss", "kl_div", "multi_margin_loss",
                 "hinge_embedding_loss", "cosine_embedding_loss", "triplet_margin_loss"):
        assert getattr(F, name) is getattr(loss_module, name) and name in F.__all__
    for name in ("HuberLoss", "SmoothL1Loss", "KLDivLoss", "MultiMarginLoss",
                 "HingeEmbeddingLoss", "CosineEmbeddingLoss", "TripletMarginLoss"):
        assert getattr(nn, name) is getattr(loss_module, name) and name in nn.__all__


def test_mse_loss_op_checks_its_inputs_did_not_change_and_empty_input_is_nan():
    x = bp.randn(3, requires_grad=True)
    h = x * 1.0
    loss = F.mse_loss(h, bp.randn(3))
    assert loss.grad_fn.name() == "MseLossBackward"
    with bp.no_grad():
        h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in"):
        loss.backward()
    with warnings.catch_warnings():  # NumPy's mean of nothing
        warnings.simplefilter("ignore")
        empty = F.mse_loss(bp.zeros(0, 3, requires_grad=True), bp.zeros(0, 3))
    assert np.isnan(empty.item())
