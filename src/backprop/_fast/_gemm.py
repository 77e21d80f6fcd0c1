"""C = A @ B from inside a numba kernel through NumPy's own BLAS (its CBLAS ``gemm``), when it
can be found; else numba's ``np.dot``, which calls SciPy's BLAS.

Why: the recurrent kernels make one small product a step (16-32 rows x 128 x 512 in the
benchmark LSTM). Measured on the 2-core machine of docs/benchmarks.md, one thread: 16 x 128 x
512 float32 took 28 µs through NumPy's OpenBLAS 0.3.31 and 41-45 µs through numba's ``np.dot``
(SciPy's OpenBLAS 0.3.30), with the same bits. NumPy's BLAS is also the one ``backprop._blas``
sets the thread count of.

How: ``address(dtype)`` finds ``cblas_sgemm``/``cblas_dgemm`` in the library threadpoolctl
reports as NumPy's, under the names of NumPy's wheels (``scipy_cblas_sgemm64_``: 64-bit integer
arguments), and kernels take the address as an ordinary int argument; ``_cblas_gemm`` is an
intrinsic that calls it through a pointer, so the kernels that use it stay cacheable on disk (a
ctypes function object in a kernel would not be). ``mm`` calls it, or ``np.dot`` when the
address is 0.

numba's disk cache keys each kernel on its own source file only: the kernels of
``recurrent.py`` and ``conv.py`` compile this module's functions into themselves, so after
editing this file touch those two (or delete ``_fast/__pycache__``), or they keep the old code.
(``mm_nt`` and ``mm_into`` serve ``conv.py``'s sample blocks.)
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from backprop import _blas

# NumPy's wheels bundle scipy-openblas with 64-bit integers and these symbol names; a BLAS
# under other names (or with 32-bit integers) is not used: np.dot stands in
_NAMES = {"f": ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
          "d": ("scipy_cblas_dgemm64_", "cblas_dgemm64_")}
_found: dict = {}


def address(dtype) -> int:
    """The address of NumPy's BLAS's CBLAS gemm for ``dtype`` (float32 or float64), or 0 when
    it cannot be found (then the kernels' products go through ``np.dot``)."""
    char = np.dtype(dtype).char
    if char in _found:
        return _found[char]
    addr = 0
    try:
        path = _blas.library_path()
        if path is not None and char in _NAMES:
            dll = ctypes.CDLL(path)
            for name in _NAMES[char]:
                fn = getattr(dll, name, None)
                if fn is not None:
                    addr = ctypes.cast(fn, ctypes.c_void_p).value or 0
                    break
    except OSError:  # the library cannot be opened again: np.dot it is
        addr = 0
    _found[char] = addr
    return addr


ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS's enum values


def call_gemm(builder, ft, addr, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc) -> None:
    """Emit the call of the row-major CBLAS gemm at ``addr`` (an i64), c = op(a) @ op(b) with
    alpha 1 and beta 0: ``ft`` the float type, ``trans_a``/``trans_b`` i32 values (``NO_TRANS``,
    ``TRANS``), sizes and leading dimensions i64, a/b/c pointers to ``ft``. The one place that
    states the gemm's signature (NumPy's wheels: 64-bit integers)."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    ptr = ft.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, ft, ptr, i64, ptr,
                                           i64, ft, ptr, i64])
    fn = builder.inttoptr(addr, fnty.as_pointer())
    builder.call(fn, [ir.Constant(i32, ROW_MAJOR), trans_a, trans_b, m, n, k,
                      ir.Constant(ft, 1.0), a, lda, b, ldb, ir.Constant(ft, 0.0), c, ldc])


def _gemm_codegen(trans_b: bool):
    """The call of the CBLAS gemm at ``addr``: c = a @ b, or a @ bᵀ with ``trans_b``."""

    def codegen(context, builder, signature, args):
        addr_v, a_v, b_v, c_v = args
        ft = context.get_value_type(signature.args[1].dtype)
        i32 = ir.IntType(32)
        arrays = [context.make_array(t)(context, builder, v)
                  for t, v in zip(signature.args[1:], (a_v, b_v, c_v))]
        size = context.get_constant(types.intp, np.dtype(str(signature.args[1].dtype)).itemsize)

        one = context.get_constant(types.intp, 1)

        def dims(arr):
            # the leading dimension is the row stride, but NumPy gives a one-row array any row
            # stride (a (4, 1) array's transpose has (8, 8)): then the row width, at least 1
            shape = cgutils.unpack_tuple(builder, arr.shape, 2)
            strides = cgutils.unpack_tuple(builder, arr.strides, 2)
            rows_ld = builder.sdiv(strides[0], size)
            several = builder.icmp_signed(">", shape[0], one)
            ld = builder.select(several, rows_ld, shape[1])
            ld = builder.select(builder.icmp_signed("<", ld, one), one, ld)
            return shape, ld

        (m, k), lda = dims(arrays[0])
        b_shape, ldb = dims(arrays[1])
        n = b_shape[0] if trans_b else b_shape[1]
        _, ldc = dims(arrays[2])
        call_gemm(builder, ft, addr_v, ir.Constant(i32, NO_TRANS),
                  ir.Constant(i32, TRANS if trans_b else NO_TRANS), m, n, k, arrays[0].data,
                  lda, arrays[1].data, ldb, arrays[2].data, ldc)
        return context.get_dummy_value()

    return codegen


def _matrices(*ts) -> bool:
    return all(isinstance(t, types.Array) and t.ndim == 2 for t in ts)


@intrinsic
def _cblas_gemm(typingctx, addr, a, b, c):
    """c = a @ b (alpha 1, beta 0) by calling the CBLAS gemm at ``addr``: a (m, k), b (k, n),
    c (m, n), each with unit stride along its rows (its leading dimension is its row stride)."""
    if not _matrices(a, b, c):
        return None
    return types.void(addr, a, b, c), _gemm_codegen(False)


@intrinsic
def _cblas_gemm_nt(typingctx, addr, a, bt, c):
    """c = a @ btᵀ (alpha 1, beta 0) through the CBLAS gemm at ``addr``: a (m, k), bt (n, k),
    c (m, n), rows with unit stride (so a block of a wider matrix's columns is fine)."""
    if not _matrices(a, bt, c):
        return None
    return types.void(addr, a, bt, c), _gemm_codegen(True)


@njit(cache=True, nogil=True)
def mm(addr, a, b, c):
    """c = a @ b: NumPy's BLAS at ``addr`` (from ``address``), or ``np.dot`` when it is 0.
    a (m, k), b (k, n), c (m, n): rows contiguous, one float dtype."""
    if addr != 0:
        _cblas_gemm(addr, a, b, c)
    else:
        np.dot(a, b, c)


@njit(cache=True, nogil=True)
def mm_nt(addr, a, bt, c):
    """c = a @ btᵀ: NumPy's BLAS at ``addr``, or ``np.dot`` on contiguous copies when it is 0.
    a (m, k), bt (n, k), c (m, n): rows contiguous, one float dtype."""
    if addr != 0:
        _cblas_gemm_nt(addr, a, bt, c)
    else:
        c[:, :] = np.dot(np.ascontiguousarray(a), np.ascontiguousarray(bt).T)


@njit(cache=True, nogil=True)
def mm_into(addr, a, b, c):
    """c = a @ b like ``mm``, for a ``c`` with any row stride (a block of a wider matrix's
    columns): the ``np.dot`` fall-back then goes through a temporary."""
    if addr != 0:
        _cblas_gemm(addr, a, b, c)
    else:
        c[:, :] = np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))
