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


# l1 (piecewise linear) and nll (linear) have a zero second derivative: no graph to compare
SECOND_ORDER = [c for c in CASES
                if c.name.endswith("_none") and not c.name.startswith(("l1", "nll"))]


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
    # the fused graph is two nodes: LogSoftmax then NLLLoss
    assert fused.grad_fn.name() == "NLLLossBackward"
    assert fused.grad_fn.next_functions[0][0].name() == "LogSoftmaxBackward"


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
