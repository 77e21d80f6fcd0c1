"""Convolutions with few input channels by sample blocks (``ops.conv.BLOCK_K``,
``_fast.conv.conv_by_blocks``/``weight_grad_by_blocks``): the output bit for bit the
whole-batch product's, the weight gradient within float rounding of it and the same bits on one
thread or two (the helper forced to take its half), an odd last block, both input layouts,
proof that the block kernels ran, and gradcheck on the block path."""

import numpy as np
import pytest

import backprop as bp
from backprop import _blas, _fast, _pair
from backprop.ops import conv as ops_conv
from tests.fast.conftest import helper_forced, spy_calls

F = bp.nn.functional
NAMES = ("conv_by_blocks", "weight_grad_by_blocks")


@pytest.fixture
def calls(needs_numba, monkeypatch):
    # small blocks, so a test-sized batch has several (and an odd last one)
    monkeypatch.setattr(ops_conv, "BLOCK_BYTES", 4096)
    return spy_calls(monkeypatch, _fast.kernels("conv"), NAMES)


def _step(x, w, b, layout="nchw", **conv):
    """Output and the three gradients of a fixed projection of conv2d(x, w, b)."""
    xt = bp.tensor(x, requires_grad=True)
    if layout == "channel-major":  # the input as a previous conv layer leaves it
        xt = bp.tensor(np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3),
                       requires_grad=True)
    wt, bt = bp.tensor(w, requires_grad=True), bp.tensor(b, requires_grad=True)
    y = F.conv2d(xt, wt, bt, **conv)
    proj = np.random.default_rng(9).standard_normal(y.shape).astype(y.dtype)
    (y * bp.tensor(proj)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def _arrays(dtype, n=13, c=1, o=6, k=5, hw=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, hw, hw)).astype(dtype),
            rng.standard_normal((o, c, k, k)).astype(dtype), rng.standard_normal(o).astype(dtype))


CONVS = {
    "lenet-conv1": dict(padding=2),
    "strided-dilated": dict(stride=(2, 1), dilation=(1, 2), padding=1),
}


@pytest.mark.parametrize("layout", ["nchw", "channel-major"])
@pytest.mark.parametrize("conv", list(CONVS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_agree_with_the_whole_batch_product(calls, monkeypatch, dtype, conv, layout):
    x, w, b = _arrays(dtype)
    got = _step(x, w, b, layout, **CONVS[conv])
    assert calls == {"conv_by_blocks": 1, "weight_grad_by_blocks": 1}
    monkeypatch.setattr(ops_conv, "BLOCK_K", 0)  # the whole-batch columns
    want = _step(x, w, b, layout, **CONVS[conv])
    assert calls == {"conv_by_blocks": 1, "weight_grad_by_blocks": 1}  # not called again
    np.testing.assert_array_equal(got[0], want[0])  # each block its own output columns
    np.testing.assert_array_equal(got[1], want[1])  # the input gradient does not use blocks
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[2], want[2], rtol=tol,  # a sum of per-block products
                               atol=tol * np.abs(want[2]).max())
    np.testing.assert_array_equal(got[3], want[3])
    assert all(a.dtype == dtype for a in got)


def test_same_bits_on_one_thread_and_two(calls, monkeypatch):
    """The blocks split between the caller and the pair's helper (forced to take its half):
    every block is computed alike and the weight gradient sums them in block order, so the bits
    equal the one-thread run's."""
    if not _pair.available():
        pytest.skip("needs two cores")
    x, w, b = _arrays(np.float32, n=17)
    _blas.set_blas_threads(1)
    try:
        want = _step(x, w, b, padding=2)
    finally:
        _blas.set_blas_threads("auto")
    names = []
    monkeypatch.setattr(_fast.kernels("conv")._pair, "run_pair",
                        helper_forced(_pair.run_pair, names))
    got = _step(x, w, b, padding=2)
    assert names.count(_pair.HELPER_NAME) >= 2  # forward and weight gradient each sent half
    for g, wnt in zip(got, want):
        np.testing.assert_array_equal(g, wnt)


def test_layers_with_more_input_channels_keep_whole_batch_columns(calls):
    x, w, b = _arrays(np.float32, c=2)  # 2·5·5 = 50 > BLOCK_K
    _step(x, w, b, padding=2)
    x, w, b = _arrays(np.float32, c=1)
    _step(x, w, b, groups=1, padding=2)
    assert calls == {"conv_by_blocks": 1, "weight_grad_by_blocks": 1}
    x, w, b = _arrays(np.float32, c=2, o=4)
    _step(x, w.reshape(4, 2, 5, 5)[:, :1].copy(), b, groups=2, padding=2)  # groups: whole
    assert calls == {"conv_by_blocks": 1, "weight_grad_by_blocks": 1}


def test_gradcheck_on_the_block_path(calls, monkeypatch):
    monkeypatch.setattr(ops_conv, "BLOCK_BYTES", 1024)  # one sample a block
    x, w, b = (bp.tensor(a, requires_grad=True) for a in _arrays(np.float64, n=5, o=3, k=3,
                                                                    hw=6))
    conv = lambda x, w, b: F.conv2d(x, w, b, padding=1)
    assert bp.gradcheck(conv, (x, w, b))
    assert bp.gradgradcheck(lambda x, w: conv(x, w, None), (x, w))
    assert calls["conv_by_blocks"] >= 1 and calls["weight_grad_by_blocks"] >= 1


# --- ConvTranspose (a convolution's input gradient, conv_transpose2d) by sample blocks ---


@pytest.fixture
def transpose_calls(needs_numba, monkeypatch):
    monkeypatch.setattr(ops_conv, "BLOCK_BYTES", 4096)
    return spy_calls(monkeypatch, _fast.kernels("conv"), ("transpose_by_blocks",))


@pytest.mark.parametrize("conv", list(CONVS))
@pytest.mark.parametrize("channels", [1, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_gradient_by_blocks_has_the_whole_batch_bits(transpose_calls, monkeypatch, dtype,
                                                           channels, conv):
    """Each block's columns and pixels are its own: the input gradient (and conv_transpose2d)
    equals the one-product, one-col2im path bit for bit, on one thread or with the helper
    forced to take its half."""
    x, w, b = _arrays(dtype, n=11, c=channels, o=5, k=3)
    names = []
    monkeypatch.setattr(_fast.kernels("conv")._pair, "run_pair",
                        helper_forced(_pair.run_pair, names))
    got = _step(x, w, b, **CONVS[conv])
    assert transpose_calls == {"transpose_by_blocks": 1}
    if _pair.available() and _blas.blas_threads_for(1) == 1:
        assert _pair.HELPER_NAME in names
    monkeypatch.setattr(ops_conv, "TRANSPOSE_BY_BLOCKS", False)
    want = _step(x, w, b, **CONVS[conv])
    assert transpose_calls == {"transpose_by_blocks": 1}
    np.testing.assert_array_equal(got[1], want[1])
    g = np.random.default_rng(3).standard_normal((11, 5, 6, 6)).astype(dtype)
    monkeypatch.setattr(ops_conv, "TRANSPOSE_BY_BLOCKS", True)
    t_got = F.conv_transpose2d(bp.tensor(g), bp.tensor(w)).numpy()
    monkeypatch.setattr(ops_conv, "TRANSPOSE_BY_BLOCKS", False)
    t_want = F.conv_transpose2d(bp.tensor(g), bp.tensor(w)).numpy()
    np.testing.assert_array_equal(t_got, t_want)


def test_gradcheck_on_the_transpose_block_path(transpose_calls, monkeypatch):
    monkeypatch.setattr(ops_conv, "BLOCK_BYTES", 256)
    x, w, _ = (bp.tensor(a, requires_grad=True) for a in _arrays(np.float64, n=4, c=2, o=3,
                                                                  k=3, hw=5))
    g = bp.tensor(np.random.default_rng(5).standard_normal((4, 3, 5, 5)), requires_grad=True)
    assert bp.gradcheck(lambda g, w: F.conv_transpose2d(g, w, stride=2, padding=1), (g, w))
    assert bp.gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w))
    assert transpose_calls["transpose_by_blocks"] >= 1
