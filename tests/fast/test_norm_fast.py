"""BatchNorm's numba kernels (``_fast/norm.py``) against the NumPy path and a float64 reference:
outputs, statistics and every gradient at least as accurate as the NumPy path's (their sums
differ in order, so not bit for bit), for C-contiguous and channel-major inputs, with and
without weight and bias, with the batch statistics used downstream or not; the output laid out
as the input; the same bits on one thread and two; the NumPy path for other layouts;
gradcheck and gradgradcheck through the fast forward."""

import numpy as np
import pytest

import backprop as bp
from backprop import _fast
from backprop.backends import fast
from backprop.ops.nn_ops import batch_norm_train
from tests.fast.conftest import spy_calls


@pytest.fixture
def kernel_calls(needs_numba, monkeypatch):
    return spy_calls(monkeypatch, _fast.kernels("norm"), ("forward", "backward"))


def _channel_major(x):
    return np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)


def _run(x, w, b, use_stats, dtype=None):
    """Forward and backward of a loss that weighs every output differently; returns every
    output and gradient (as float64 when ``dtype`` says so: the reference)."""
    cast = (lambda a: a) if dtype is None else (lambda a: None if a is None else a.astype(dtype))
    xt = bp.tensor(cast(x), requires_grad=True)
    wt = None if w is None else bp.tensor(cast(w), requires_grad=True)
    bt = None if b is None else bp.tensor(cast(b), requires_grad=True)
    y, mu, var = batch_norm_train(xt, wt, bt)
    weights = np.cos(np.arange(y.numel()) * 0.7).reshape(y.shape).astype(y.dtype)
    loss = (y * bp.tensor(weights)).sum()
    if use_stats:
        loss = loss + (mu * 3).sum() + (var * 2).sum()
    loss.backward()
    grads = [xt.grad] + [t.grad for t in (wt, bt) if t is not None]
    return [y.detach(), mu.detach(), var.detach()] + grads


CASES = [(shape, layout, wb, stats) for shape in [(32, 8, 12, 12), (64, 6, 5, 5), (7, 3, 2)]
         for layout in ("c", "channel-major") for wb in ("wb", "w", "b", "") for stats in (0, 1)]


@pytest.mark.parametrize("shape,layout,wb,stats", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_as_accurate_as_the_numpy_path(kernel_calls, shape, layout, wb, stats, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)
    x = _channel_major(x) if layout == "channel-major" else x
    w = rng.standard_normal(shape[1]).astype(dtype) if "w" in wb else None
    b = rng.standard_normal(shape[1]).astype(dtype) if "b" in wb else None
    ours = _run(x, w, b, stats)
    assert kernel_calls == {"forward": 1, "backward": 1}
    with fast.flags(enabled=False):
        numpy_path = _run(x, w, b, stats)
        reference = _run(x, w, b, stats, np.float64)
    # float64: the reference is the NumPy path itself, so ours may only differ by rounding
    eps = np.finfo(dtype).eps * (1 if dtype == np.float32 else 64)
    for k, (a, n, r) in enumerate(zip(ours, numpy_path, reference)):
        assert a.dtype == n.dtype and a.shape == n.shape
        scale = np.abs(r.data).max() + 1e-30
        ours_err = np.abs(a.data - r.data).max() / scale
        numpy_err = np.abs(n.data - r.data).max() / scale
        assert ours_err <= 2 * numpy_err + 64 * eps, f"output {k}: {ours_err} vs {numpy_err}"


def test_output_and_gradient_laid_out_as_the_input(kernel_calls):
    x = _channel_major(np.random.default_rng(0).standard_normal((16, 4, 6, 6)))
    xt = bp.tensor(x, requires_grad=True)
    y, _, _ = batch_norm_train(xt, bp.ones(4, dtype=bp.float64), bp.zeros(4, dtype=bp.float64))
    assert y.data.strides == x.strides  # channel-major, as the convolution gave it
    fk = _fast.kernels("norm")
    _, stats = fk.forward(x, np.ones(4), np.zeros(4), 1e-5)
    grad_x, _ = fk.backward(x, np.ones_like(x), np.ones(4), stats, True)
    assert grad_x.strides == x.strides


def test_two_threads_give_the_one_thread_bits(needs_numba, monkeypatch):
    from backprop._fast import _jit

    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 8, 10, 10)).astype(np.float32)
    w, b = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    results = []
    for pair_min in (1 << 62, 0):  # never a pair, always a pair
        monkeypatch.setattr(_jit, "PAIR_MIN", pair_min)
        results.append([t.data.tobytes() for t in _run(x, w, b, True)])
    assert results[0] == results[1]


def test_other_layouts_take_the_numpy_path(kernel_calls):
    full = np.random.default_rng(2).standard_normal((8, 3, 10))

    def run():
        xt = bp.tensor(full, requires_grad=True)
        x = xt[:, :, ::2]  # a view with gaps in every row
        assert not x.data.flags.c_contiguous
        y, mu, var = batch_norm_train(x)
        (y * y * y).sum().backward()
        return [y.detach(), mu.detach(), var.detach(), xt.grad]

    ours = run()
    assert "backward" not in kernel_calls  # the forward declined: the NumPy rule ran
    with fast.flags(enabled=False):
        for a, n in zip(ours, run()):
            assert a.data.tobytes() == n.data.tobytes()


def test_one_value_per_sample_and_channel_takes_the_numpy_path(kernel_calls):
    # BatchNorm1d's (N, C) and (N, C, 1): NumPy sums along C at once, the kernels per row
    for shape in [(64, 120), (64, 120, 1)]:
        x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
        ours = _run(x, None, None, False)
        assert kernel_calls == {}
        with fast.flags(enabled=False):
            for a, n in zip(ours, _run(x, None, None, False)):
                assert a.data.tobytes() == n.data.tobytes()


def test_gradcheck_and_gradgradcheck_through_the_fast_forward(kernel_calls):
    rng = np.random.default_rng(3)
    x = bp.tensor(rng.standard_normal((6, 3, 4)), requires_grad=True)
    w = bp.tensor(rng.standard_normal(3), requires_grad=True)
    b = bp.tensor(rng.standard_normal(3), requires_grad=True)

    def fn(x, w, b):
        y, mu, var = batch_norm_train(x, w, b)
        return (y * y * y).sum() + mu.sum() + (var * var).sum()

    assert bp.gradcheck(fn, (x, w, b))
    assert bp.gradgradcheck(fn, (x, w, b))
    assert kernel_calls["forward"] >= 1 and kernel_calls["backward"] >= 1
