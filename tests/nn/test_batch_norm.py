"""The fused batch normalisation (``backprop.ops.nn_ops.BatchNorm``) against the composed formula
it replaced: values, running statistics, gradients and second-order gradients, in float64 (to
~1e-12) and float32 (to ~1e-5), and the float32 accuracy of both against a float64 truth.

The op's own gradcheck, gradgradcheck and float32 checks are rows of ``tests/ops/cases.py``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import backprop as bp
from backprop.nn import functional as F

SHAPES = [(6, 3), (4, 3, 5), (3, 2, 4, 5)]
AFFINE = ["wb", "w", "b", ""]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _composed(x, running_mean, running_var, weight, bias, training, momentum=0.1, eps=1e-5):
    """``batch_norm`` as it was composed from elementwise ops and means before the fused op."""
    c = x.shape[1]
    dims = (0,) + tuple(range(2, x.ndim))
    stat_shape = (1, c) + (1,) * (x.ndim - 2)
    if training or running_mean is None or running_var is None:
        n = x.numel() // c
        mu = bp.mean(x, dims, keepdim=True)
        centred = x - mu
        var = bp.mean(centred * centred, dims, keepdim=True)
        if training:
            with bp.no_grad():
                for running, batch in ((running_mean, mu.data.reshape(c)),
                                       (running_var, var.data.reshape(c) * (n / (n - 1)))):
                    if running is not None:
                        running.data *= 1.0 - momentum
                        running.data += (momentum * batch).astype(running.dtype)
    else:
        centred = x - bp.reshape(running_mean, stat_shape)
        var = bp.reshape(running_var, stat_shape)
    out = centred / (var + eps) ** 0.5
    if weight is not None:
        out = out * bp.reshape(weight, stat_shape)
    if bias is not None:
        out = out + bp.reshape(bias, stat_shape)
    return out


def _inputs(shape, affine, dtype, key, loc=0.5, scale=2.0):
    rng = _rng(shape, affine, key)
    c = shape[1]
    arrays = {"x": rng.normal(loc, scale, shape), "w": rng.normal(1.0, 0.5, c),
              "b": rng.normal(0.0, 0.5, c), "g": rng.normal(size=shape),
              "rm": rng.normal(size=c), "rv": rng.uniform(0.5, 2.0, c)}
    return {k: v.astype(dtype) for k, v in arrays.items()}


def _run(fn, a, affine, training, create_graph=False):
    """Forward, running statistics, and the gradients w.r.t. (x, weight, bias) for seed g."""
    x = bp.tensor(a["x"], requires_grad=True)
    w = bp.tensor(a["w"], requires_grad=True) if "w" in affine else None
    b = bp.tensor(a["b"], requires_grad=True) if "b" in affine else None
    rm, rv = bp.tensor(a["rm"].copy()), bp.tensor(a["rv"].copy())
    y = fn(x, rm, rv, w, b, training, 0.3, 1e-4)
    leaves = [t for t in (x, w, b) if t is not None]
    grads = bp.autograd.grad([y], leaves, [bp.tensor(a["g"])], create_graph=create_graph)
    return y, rm, rv, leaves, grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", AFFINE, ids=[a or "none" for a in AFFINE])
@pytest.mark.parametrize("shape", SHAPES, ids=["nc", "ncl", "nchw"])
def test_fused_equals_composed(shape, affine, training, dtype):
    a = _inputs(shape, affine, dtype, "fused")
    got = _run(F.batch_norm, a, affine, training)
    want = _run(_composed, a, affine, training)
    tol = TOL[dtype]
    for name, g, w in zip(("y", "running_mean", "running_var"), got[:3], want[:3]):
        assert g.dtype == dtype, name
        np.testing.assert_allclose(g.data, w.data, rtol=tol, atol=tol, err_msg=name)
    for i, (g, w) in enumerate(zip(got[4], want[4])):
        assert g.dtype == dtype, f"gradient {i}"
        np.testing.assert_allclose(g.data, w.data, rtol=tol, atol=tol,
                                   err_msg=f"gradient {i}")


@pytest.mark.parametrize("affine", ["wb", ""], ids=["affine", "none"])
@pytest.mark.parametrize("shape", SHAPES, ids=["nc", "ncl", "nchw"])
def test_fused_second_order_equals_composed(shape, affine):
    """create_graph=True takes the op's recorded backward: differentiate ‖∂L/∂x‖² once more."""
    a = _inputs(shape, affine, np.float64, "second")
    results = []
    for fn in (F.batch_norm, _composed):
        _, _, _, leaves, grads = _run(fn, a, affine, True, create_graph=True)
        penalty = sum((g * g).sum() for g in grads)
        # ∂L/∂bias = Σ g does not depend on the leaves: its term reaches none of them
        results.append(bp.autograd.grad([penalty], leaves, allow_unused=True))
    for i, (g, w) in enumerate(zip(*results)):
        assert (g is None) == (w is None), f"second-order gradient {i}"
        if g is None:
            continue
        np.testing.assert_allclose(g.data, w.data, rtol=1e-10, atol=1e-12,
                                   err_msg=f"second-order gradient {i}")


def test_fused_float32_is_as_accurate_as_composed():
    """Against a float64 truth, with a mean far from zero (|μ| = 50σ) and 4,000 values per
    channel: the fused op's float32 statistics (row sums in float32, channel sums in float64)
    must be no worse than the composed op's."""
    a = _inputs((16, 4, 16, 16), "wb", np.float64, "accuracy", loc=50.0, scale=1.0)
    a32 = {k: v.astype(np.float32) for k, v in a.items()}
    truth = _run(_composed, {k: v.astype(np.float64) for k, v in a32.items()}, "wb", True)
    errors = []
    for fn in (F.batch_norm, _composed):
        y, rm, rv, _, grads = _run(fn, a32, "wb", True)
        outs = [y, rm, rv, *grads]
        ref = [*truth[:3], *truth[4]]
        errors.append([np.abs(o.data - r.data).max() / np.abs(r.data).max()
                       for o, r in zip(outs, ref)])
    fused, composed = np.array(errors[0]), np.array(errors[1])
    assert np.all(fused <= 2 * composed + 1e-6), (fused, composed)
    assert fused.max() < 1e-4, fused


def test_batch_norm_train_returns_batch_statistics():
    x = _rng("stats").normal(3.0, 2.0, (5, 2, 3))
    y, mu, var = bp.ops.nn_ops.batch_norm_train(bp.tensor(x), eps=0.0)
    np.testing.assert_allclose(mu.data, x.mean((0, 2)), rtol=1e-13)
    np.testing.assert_allclose(var.data, x.var((0, 2)), rtol=1e-13)
    np.testing.assert_allclose(y.data.mean((0, 2)), 0.0, atol=1e-13)
    np.testing.assert_allclose(y.data.var((0, 2)), 1.0, rtol=1e-12)


def test_batch_norm_is_one_node_in_training():
    x = bp.randn(4, 3, 2, 2, requires_grad=True)
    y = F.batch_norm(x, bp.zeros(3), bp.ones(3), bp.ones(3, requires_grad=True),
                     bp.zeros(3, requires_grad=True), training=True)
    assert y.grad_fn.name() == "BatchNormBackward"
    assert all(fn.name() == "AccumulateGrad" for fn, _ in y.grad_fn.next_functions)  # leaves


def test_integer_input_normalises_in_float32():
    x = np.array([[1, 2], [3, 5], [4, 4]])
    y = F.batch_norm(bp.tensor(x), None, None, training=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-6)
