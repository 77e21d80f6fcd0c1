"""backprop._fast._gemm: the recurrent kernels' per-step products through NumPy's own BLAS
(its CBLAS gemm, called from numba through a pointer), or numba's np.dot when it is not found."""

import numpy as np
import pytest

from backprop.backends import fast


@pytest.fixture
def gemm(needs_numba, monkeypatch):
    from backprop._fast import _gemm

    monkeypatch.setattr(_gemm, "_found", {})  # each test finds (or fails to find) afresh
    return _gemm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cblas_product_is_the_product(gemm, rng, dtype):
    addr = gemm.address(dtype)
    if addr == 0:
        pytest.skip("NumPy's BLAS has no scipy_cblas_*gemm64_ here: np.dot is used")
    a = rng.standard_normal((16, 128)).astype(dtype)
    b = rng.standard_normal((128, 512)).astype(dtype)
    c = np.full((16, 512), np.nan, dtype)
    gemm.mm(addr, a, b, c)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol * np.abs(want).max())
    # the same bits as np.dot's path (SciPy's OpenBLAS here) or NumPy's matmul
    c0 = np.empty_like(c)
    gemm.mm(0, a, b, c0)
    assert np.array_equal(c, c0) or np.array_equal(c, a @ b)


def test_row_strides_are_the_leading_dimensions(gemm, rng):
    """Views whose rows are longer than their width (a block of a bigger array): the intrinsic
    passes each row stride as the leading dimension, so the product reads and writes only the
    block."""
    addr = gemm.address(np.float64)
    if addr == 0:
        pytest.skip("NumPy's BLAS has no scipy_cblas_dgemm64_ here")
    big_a = rng.standard_normal((10, 30))
    big_b = rng.standard_normal((40, 50))
    big_c = np.zeros((12, 70))
    a, b, c = big_a[2:9, 3:20], big_b[5:22, 10:35], big_c[1:8, 20:45]
    import numba

    @numba.njit
    def product(addr, a, b, c):  # (mm itself also compiles np.dot, which wants contiguity)
        gemm._cblas_gemm(addr, a, b, c)

    product(addr, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)
    untouched = big_c.copy()
    untouched[1:8, 20:45] = 0
    assert not untouched.any()


def test_a_blas_without_the_symbol_falls_back_to_np_dot(gemm, monkeypatch, rng):
    monkeypatch.setattr(gemm, "_NAMES", {"f": ("no_such_gemm",), "d": ("no_such_gemm",)})
    assert gemm.address(np.float32) == 0
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    c = np.empty((3, 5))
    gemm.mm(0, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_the_layers_agree_through_either_product(gemm, monkeypatch, kind):
    """The layer kernels with NumPy's BLAS and with np.dot (address 0) against the NumPy
    loops: outputs and gradients to float rounding either way."""
    from tests.fast.test_recurrent_fast import H, _inputs, _run

    arrays = _inputs(kind, np.float64, True)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(arrays[0].shape[:2] + (H,))]
    weights += [rng.standard_normal(arrays[1].shape) for _ in range(2 if kind == "lstm" else 1)]
    want_out, want_grad = _run(kind, arrays, False, "tanh", weights, on=False)
    for forced in (None, 0):
        if forced is not None:
            monkeypatch.setattr(gemm, "address", lambda dtype, forced=forced: forced)
        got_out, got_grad = _run(kind, arrays, False, "tanh", weights, on=True)
        for got, want in zip(got_out + got_grad, want_out + want_grad):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    assert fast.is_enabled()


def test_one_row_operands_with_any_row_stride(gemm, rng):
    """NumPy gives a one-row array any row stride: W (4, 1) transposed is (1, 4) with strides
    (8, 8), C-contiguous all the same. Its row stride is no leading dimension (CBLAS would
    refuse 1 < 4 and leave the output unwritten): the row width is passed instead. (A
    one-unit recurrent layer's W_hhᵀ is such an array.)"""
    addr = gemm.address(np.float64)
    if addr == 0:
        pytest.skip("NumPy's BLAS has no scipy_cblas_dgemm64_ here")
    w = rng.standard_normal((4, 1))
    b = np.ascontiguousarray(w.T)
    assert b.shape == (1, 4) and b.strides[0] < 4 * b.itemsize
    a = rng.standard_normal((3, 1))
    c = np.full((3, 4), np.nan)
    gemm.mm(addr, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12)
    c1 = np.full((1, 4), np.nan)
    gemm.mm(addr, a[:1], b, c1)
    np.testing.assert_allclose(c1, a[:1] @ b, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_and_strided_output_products(gemm, rng, dtype):
    """``mm_nt`` (c = a @ btᵀ, the convolution blocks' weight gradient) and ``mm_into`` (c a
    block of a wider matrix's columns, the blocks' output) through NumPy's BLAS and through the
    np.dot fall-back (address 0), writing only their block."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    a = rng.standard_normal((25, 40)).astype(dtype)
    big_g = rng.standard_normal((6, 100)).astype(dtype)
    bt = big_g[:, 30:70]  # rows of stride 100: a block of columns
    w = rng.standard_normal((6, 25)).astype(dtype)
    for addr in {gemm.address(dtype), 0}:
        c = np.full((25, 6), np.nan, dtype)
        gemm.mm_nt(addr, a, bt, c)
        want = a.astype(np.float64) @ bt.T.astype(np.float64)
        np.testing.assert_allclose(c, want, rtol=tol, atol=tol * np.abs(want).max())
        big_y = np.zeros((6, 100), dtype)
        gemm.mm_into(addr, w, a, big_y[:, 30:70])
        want = w.astype(np.float64) @ a.astype(np.float64)
        np.testing.assert_allclose(big_y[:, 30:70], want, rtol=tol, atol=tol * np.abs(want).max())
        assert not big_y[:, :30].any() and not big_y[:, 70:].any()
