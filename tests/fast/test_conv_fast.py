"""The numba kernels of convolution and pooling against the NumPy path: outputs, gradients,
max-pooling indices (ties included), dtypes, and gradcheck on the numba path."""

import numpy as np
import pytest

import backprop as bp
from backprop import _fast
from backprop.backends import fast
from tests.fast.conftest import spy_calls

F = bp.nn.functional

TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-13, atol=1e-13)}


@pytest.fixture(autouse=True, params=["serial", "pair", "parallel"])
def blocks(request, monkeypatch):
    """Each test on every form of the kernels: serial on the calling thread, serial in two blocks
    of planes on two threads (backprop._pair; both the default threading layer's, by size, and
    forced here for every size), and the parallel drivers split into two blocks (what the OpenMP
    layer runs; forced here whatever the layer and size)."""
    if _fast.is_available():
        from backprop._fast import _jit, conv

        if request.param == "parallel":
            monkeypatch.setattr(conv, "threads_for", lambda n: 2)
        else:
            monkeypatch.setattr(conv, "threads_for", lambda n: 1)
            monkeypatch.setattr(_jit, "PAIR_MIN", 0 if request.param == "pair" else 1 << 62)
    return request.param


@pytest.fixture
def calls(needs_numba, monkeypatch):
    """Count the calls of each fast kernel, so a test knows the numba path really ran."""
    mod = _fast.kernels("conv")
    return spy_calls(monkeypatch, mod, mod.__all__)


def _run(enabled, fn, arrays, seed=1):
    """fn's output and the gradients of a fixed random projection of it, on one path."""
    with fast.flags(enabled=enabled):
        inputs = [bp.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*inputs)
        proj = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        (out * bp.tensor(proj)).sum().backward()
        return out.detach().numpy(), [t.grad.numpy() for t in inputs]


def _compare(fn, arrays, dtype, exact_output=False):
    want, want_grads = _run(False, fn, arrays)
    got, got_grads = _run(True, fn, arrays)
    assert got.dtype == want.dtype == dtype
    if exact_output:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, **TOL[dtype])
    for g, w in zip(got_grads, want_grads):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, **TOL[dtype])


# (input shape, weight shape, conv2d keyword arguments)
CONVS = [
    ((2, 3, 9, 8), (4, 3, 3, 3), dict()),
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(stride=2, padding=1)),
    ((2, 4, 11, 9), (6, 2, 3, 2), dict(stride=(2, 3), padding=(2, 1), dilation=(2, 1),
                                       groups=2)),
    ((1, 2, 7, 7), (2, 2, 4, 4), dict(padding="same")),  # even kernel: one more bottom/right
    ((3, 6, 6, 10), (6, 1, 1, 3), dict(dilation=(1, 3), groups=6)),  # depthwise
    ((2, 1, 28, 28), (6, 1, 5, 5), dict()),  # LeNet's first layer
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONVS)
def test_conv2d_matches_the_numpy_path(calls, dtype, x_shape, w_shape, kwargs):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1])]
    _compare(lambda x, w, b: F.conv2d(x, w, b, **kwargs), arrays, dtype)
    assert calls["im2col"] >= 1 and calls["col2im"] >= 1  # forward, and backward to the input


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_and_conv_transpose2d_match_the_numpy_path(calls, dtype):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 4, 13)).astype(dtype), rng.standard_normal((6, 2, 3))
    _compare(lambda x, w: F.conv1d(x, w, stride=2, padding=2, dilation=2, groups=2),
             [x, w.astype(dtype)], dtype)
    g, wt = rng.standard_normal((2, 4, 5, 6)).astype(dtype), rng.standard_normal((4, 3, 3, 2))
    _compare(lambda g, w: F.conv_transpose2d(g, w, stride=(2, 1), padding=1,
                                             output_padding=(1, 0), groups=2, dilation=(1, 2)),
             [g, wt.astype(dtype)], dtype)
    assert calls["im2col"] >= 2 and calls["col2im"] >= 2


# (input shape, max_pool2d keyword arguments)
POOLS = [
    ((2, 3, 8, 8), dict(kernel_size=2)),  # non-overlapping: the 2x2 kernel
    ((2, 3, 9, 7), dict(kernel_size=2)),  # the 2x2 kernel, a last row and column unread
    ((2, 3, 8, 8), dict(kernel_size=2, padding=1)),  # 2x2 but padded: the general kernel
    ((2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),  # overlapping, padded
    ((1, 2, 10, 9), dict(kernel_size=(3, 2), stride=1, dilation=(2, 3))),
    ((2, 2, 9, 9), dict(kernel_size=3, stride=2, ceil_mode=True)),  # a last, partial window
    ((1, 2, 8, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kwargs", POOLS)
def test_max_pool2d_matches_the_numpy_path(calls, dtype, x_shape, kwargs):
    x = np.random.default_rng(2).standard_normal(x_shape).astype(dtype)
    _compare(lambda x: F.max_pool2d(x, **kwargs), [x], dtype, exact_output=True)
    with fast.flags(enabled=False):
        want = F.max_pool2d(bp.tensor(x), return_indices=True, **kwargs)[1].numpy()
    got = F.max_pool2d(bp.tensor(x), return_indices=True, **kwargs)[1].numpy()
    assert got.dtype == want.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    assert calls["max_pool"] >= 2 and calls["pool_scatter"] >= 1


def test_max_pool1d_matches_the_numpy_path(calls):
    x = np.random.default_rng(3).standard_normal((2, 3, 17)).astype(np.float32)
    _compare(lambda x: F.max_pool1d(x, 4, stride=3, padding=2, ceil_mode=True), [x],
             np.float32, exact_output=True)
    assert calls["max_pool"] >= 1


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=1,
                                                                padding=1)])
def test_max_pool_ties_and_nan_pick_the_numpy_paths_index(calls, kwargs):
    # small integers: most windows hold several equal maxima, and a -inf or NaN here and there
    x = np.random.default_rng(4).integers(-1, 2, (2, 3, 8, 8)).astype(np.float64)
    x[0, 0, :2, :2] = -np.inf  # a window of -inf beside the padding
    x[1, 2, 3, 4] = np.nan
    x[1, 1, 5, :] = np.nan
    with fast.flags(enabled=False):
        y_np, i_np = (t.numpy() for t in F.max_pool2d(bp.tensor(x), return_indices=True,
                                                         **kwargs))
    y, i = (t.numpy() for t in F.max_pool2d(bp.tensor(x), return_indices=True, **kwargs))
    np.testing.assert_array_equal(y, y_np)  # NaN where NaN
    np.testing.assert_array_equal(i, i_np)
    assert calls["max_pool"] == 1


def test_max_pool_ties_take_pytorchs_first_maximum(needs_numba):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).integers(0, 2, (2, 3, 9, 9)).astype(np.float32)
    _, index = F.max_pool2d(bp.tensor(x), 3, stride=2, padding=1, return_indices=True)
    _, want = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, stride=2, padding=1,
                                             return_indices=True)
    np.testing.assert_array_equal(index.numpy(), want.numpy())


def test_channel_major_maps_take_the_fast_path(calls):
    # (N, C, H, W) tensors over channel-major memory, as a conv's GEMM yields them: the kernels
    # read them as planes, without a copy, in the input of a conv and of a pool
    rng = np.random.default_rng(6)
    x_cn = rng.standard_normal((3, 2, 10, 10)).astype(np.float32)  # stored (C, N, H, W)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    _compare(lambda x, w: F.max_pool2d(F.conv2d(x.permute(1, 0, 2, 3), w, padding=1), 2),
             [x_cn, w], np.float32)
    assert calls == {"im2col": 1, "col2im": 1, "max_pool": 1, "pool_scatter": 1}


def test_unsuited_layouts_take_the_numpy_path(calls):
    x = np.random.default_rng(7).standard_normal((2, 3, 12, 10))
    _compare(lambda x: F.max_pool2d(x[:, :, ::2], 2), [x], np.float64)  # strided rows
    assert "max_pool" not in calls


def test_gradcheck_on_the_numba_path(needs_numba):
    rng = np.random.default_rng(8)

    def t(*shape):
        return bp.tensor(rng.standard_normal(shape), requires_grad=True)

    x, w, b = t(2, 4, 7, 6), t(4, 2, 3, 2), t(4)
    conv = lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2),
                                    groups=2)
    assert bp.gradcheck(conv, (x, w, b))
    assert bp.gradgradcheck(lambda x, w: conv(x, w, None), (x, w))
    pool = lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    assert bp.gradcheck(pool, (x,))
    assert bp.gradgradcheck(pool, (x,))
    g, wt = t(1, 4, 4, 3), t(4, 3, 3, 3)
    assert bp.gradcheck(lambda g, w: F.conv_transpose2d(g, w, stride=2, padding=1), (g, wt))


def test_one_thread_setting_keeps_the_kernels_on_the_calling_thread(needs_numba, monkeypatch,
                                                                     blocks):
    import threading

    from backprop import _blas, _pair
    from backprop._fast import _jit

    if blocks != "pair" or not _pair.available():
        pytest.skip("one form is enough; needs two cores")
    names = []

    def planes(x, t0, t1):  # a stand-in serial kernel that records its thread
        names.append(threading.current_thread().name)

    try:
        _blas.set_blas_threads(1)
        _jit.in_two_blocks(planes, (None,), 8, 1 << 20)
        assert names == [threading.current_thread().name]  # one call: all planes here
        names.clear()
        _blas.set_blas_threads("auto")
        _jit.in_two_blocks(planes, (None,), 8, 1 << 20)
        assert sorted(names) == sorted([threading.current_thread().name, _pair.HELPER_NAME]) \
            or names == [threading.current_thread().name] * 2  # the caller took it back
    finally:
        _blas.set_blas_threads("auto")
