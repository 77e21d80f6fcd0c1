"""The two blocks of a cut product (``_blas.matmul``) without the GIL on the helper's side:
the block's descriptor goes to ``_pair``'s helper through a shared int64 array, and the helper,
spinning in ``serve`` (numba, no GIL), calls NumPy's CBLAS gemm on it directly.

Why: a helper that runs its block through Python must take the GIL, and the caller holds it
until its own ``np.matmul`` starts; the helper then sleeps on the GIL's condition variable, and
on the 2-core KVM guest of docs/benchmarks.md being woken from that sleep took 36-63 µs, against
0.5 µs for a helper that stays in compiled code (measured: a 16.7-million multiply-add product
cut in two took 382 µs through Python, longer than the 334 µs of the whole product on one
thread, each block alone 172 µs). Here the caller posts, computes its own block, then takes the
helper's block back if the helper has not started it (a compare-and-swap on the state), or
waits for it: the same protocol as ``_pair.run_pair``, and the same bits (the same gemm on the
same operands as ``np.matmul``; tested).

The job array (int64): ``STATE`` and the gemm's arguments. States: IDLE, POSTED (by the caller),
TAKEN (by whoever runs it), DONE (by the helper). ``PY`` is set when a Python job is posted for
the helper, which then leaves ``serve``. A block may carry an epilogue (``EPI``, ``BIAS``): a
dense layer's bias added in place, and ReLU (``bias_act``), run by whichever thread ran the block.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from backprop._fast._gemm import NO_TRANS, TRANS, call_gemm

(STATE, PY, KIND, TA, TB, M, N, K, A, LDA, B, LDB, C, LDC, ADDR, HELPER_RUNS,
 WAIT_FOR_HELPER, EPI, BIAS) = range(19)
SIZE = 19
# HELPER_RUNS counts the blocks the helper ran; WAIT_FOR_HELPER (tests) makes ``finish`` wait
# up to about 10 s for the helper to take its block before the caller starts its own
IDLE, POSTED, TAKEN, DONE = 0, 1, 2, 3
# The epilogue a block may carry (``EPI``), run by the thread that computed the block while it
# is in that core's cache: a dense layer's bias (BIAS: one value per column of c) added in
# place, then ReLU for EPI_BIAS_RELU (``bias_act``; ``_blas.linear``).
EPI_NONE, EPI_BIAS, EPI_BIAS_RELU = 0, 1, 2


CYCLES = 600_000
"""How long the helper spins with nothing to do before it sleeps, in cycle-counter ticks (about
0.2-0.3 ms: within a training step the next product usually comes sooner, as OpenMP's threads
assume with their 200 ms default; on a busy machine this bounds what a spin can cost)."""


@intrinsic
def _cycles(typingctx):
    """LLVM's cycle counter (the TSC on x86; 0 where there is none, so ``serve`` also counts
    its loops)."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


def new_job() -> np.ndarray:
    """A zeroed job array."""
    return np.zeros(SIZE, dtype=np.int64)


@intrinsic
def _store_release(typingctx, job, index, value):
    """job[index] = value with release ordering."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(job, types.intp, types.int64), codegen


@intrinsic
def _load_at(typingctx, job, index):
    """job[index] with acquire ordering."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.load_atomic(builder.gep(ary.data, [args[1]]), "acquire", 8)

    return types.int64(job, types.intp), codegen


@intrinsic
def _take(typingctx, job):
    """Compare-and-swap job[STATE] from POSTED to TAKEN; True when this call took it."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i64 = ir.IntType(64)
        pair = builder.cmpxchg(ary.data, ir.Constant(i64, POSTED), ir.Constant(i64, TAKEN),
                               "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return types.boolean(job), codegen


def _pointer(double: bool):
    @intrinsic
    def pointer(typingctx, addr):
        """The float pointer at address ``addr`` (an int64)."""
        ptr_type = types.CPointer(types.float64 if double else types.float32)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr_type))

        return ptr_type(types.int64), codegen

    return pointer


_f32_at = _pointer(False)
_f64_at = _pointer(True)


def _raw_gemm_codegen(double: bool):
    def codegen(context, builder, signature, args):
        (addr, ta, tb, m, n, k, a, lda, b, ldb, c, ldc) = args
        ft = ir.DoubleType() if double else ir.FloatType()
        i32, ptr = ir.IntType(32), ft.as_pointer()
        call_gemm(builder, ft, addr, builder.trunc(ta, i32), builder.trunc(tb, i32), m, n, k,
                  builder.inttoptr(a, ptr), lda, builder.inttoptr(b, ptr), ldb,
                  builder.inttoptr(c, ptr), ldc)
        return context.get_dummy_value()

    return codegen


def _raw_gemm(double: bool):
    @intrinsic
    def gemm(typingctx, addr, ta, tb, m, n, k, a, lda, b, ldb, c, ldc):
        return types.void(*([types.int64] * 12)), _raw_gemm_codegen(double)

    return gemm


_sgemm = _raw_gemm(False)
_dgemm = _raw_gemm(True)


@njit(cache=True, nogil=True)
def bias_act(c, ldc, bias, m, n, relu):
    """c[i·ldc + j] += bias[j], then max(·, 0) as ``np.maximum`` gives it (NaN kept, -0.0 to
    0.0) when ``relu``, for i < m, j < n: an (m, n) block with row stride ldc, in place (flat
    arrays, one dtype). The same additions as ``y += b``, so the same bits. (Written as a loop
    per case over each row's slice: LLVM vectorises that, 3 µs for 128x256 float32, where one
    loop with the ReLU test inside took 17-23 µs.)"""
    zero = c.dtype.type(0)
    if relu:
        for i in range(m):
            row = c[i * ldc: i * ldc + n]
            for j in range(n):
                v = row[j] + bias[j]
                row[j] = v if (v > zero or v != v) else zero
    else:
        for i in range(m):
            row = c[i * ldc: i * ldc + n]
            for j in range(n):
                row[j] = row[j] + bias[j]


@njit(cache=True, nogil=True)
def _run(job):
    """The posted gemm: c = op(a) @ op(b), then its epilogue if it carries one."""
    m, n, ldc = job[M], job[N], job[LDC]
    if job[KIND] == 0:
        _sgemm(job[ADDR], job[TA], job[TB], m, n, job[K], job[A], job[LDA], job[B],
               job[LDB], job[C], ldc)
        if job[EPI] != EPI_NONE and m > 0 and n > 0:
            bias_act(numba.carray(_f32_at(job[C]), ((m - 1) * ldc + n,)), ldc,
                     numba.carray(_f32_at(job[BIAS]), (n,)), m, n, job[EPI] == EPI_BIAS_RELU)
    else:
        _dgemm(job[ADDR], job[TA], job[TB], m, n, job[K], job[A], job[LDA], job[B],
               job[LDB], job[C], ldc)
        if job[EPI] != EPI_NONE and m > 0 and n > 0:
            bias_act(numba.carray(_f64_at(job[C]), ((m - 1) * ldc + n,)), ldc,
                     numba.carray(_f64_at(job[BIAS]), (n,)), m, n, job[EPI] == EPI_BIAS_RELU)


@njit(cache=True, nogil=True)
def _operand(x):
    """(trans, leading dimension) of a 2-D array whose rows or columns have unit stride, for a
    row-major CBLAS call; (-1, 0) when neither has."""
    item = x.itemsize
    r, c = x.shape
    if x.strides[1] == item or c == 1:
        ld = x.strides[0] // item if r > 1 else c
        return NO_TRANS, max(ld, c, 1)
    if x.strides[0] == item or r == 1:
        ld = x.strides[1] // item if c > 1 else r
        return TRANS, max(ld, r, 1)
    return -1, 0


@njit(cache=True, nogil=True)
def blasable(a, b, c):
    """True when the gemm can take a, b and c as they are."""
    if c.strides[1] != c.itemsize and c.shape[1] != 1:
        return False
    return _operand(a)[0] >= 0 and _operand(b)[0] >= 0


@njit(cache=True, nogil=True)
def _describe(job, addr, a, b, c):
    ta, lda = _operand(a)
    tb, ldb = _operand(b)
    job[KIND] = 0 if a.itemsize == 4 else 1
    job[TA], job[TB] = ta, tb
    job[M], job[N], job[K] = c.shape[0], c.shape[1], a.shape[1]
    job[A], job[LDA] = a.ctypes.data, lda
    job[B], job[LDB] = b.ctypes.data, ldb
    job[C], job[LDC] = c.ctypes.data, (c.strides[0] // c.itemsize if c.shape[0] > 1
                                       else max(c.shape[1], 1))
    job[ADDR] = addr
    job[EPI] = EPI_NONE


@njit(cache=True, nogil=True)
def _describe_epilogue(job, epi, bias):
    """Add the epilogue ``epi`` with ``bias`` (one value per column of c, contiguous, of c's
    dtype) to a described block."""
    job[EPI] = epi
    job[BIAS] = bias.ctypes.data


@njit(cache=True, nogil=True)
def bias_fits(c, bias):
    """True when ``bias`` can be a block c's epilogue bias: one value per column, contiguous,
    of c's width (the epilogue reads it as c's dtype)."""
    return (bias.shape[0] == c.shape[1] and bias.itemsize == c.itemsize
            and (bias.strides[0] == bias.itemsize or c.shape[1] == 1))


@njit(cache=True, nogil=True)
def post(job, addr, a, b, c):
    """Post c = a @ b for the helper; False (nothing posted) when an operand is not one the
    gemm takes as it is (c's rows, and a's and b's rows or columns, with unit stride)."""
    if not blasable(a, b, c):
        return False
    _describe(job, addr, a, b, c)
    _store_release(job, STATE, POSTED)
    return True


@njit(cache=True, nogil=True)
def post_with_epilogue(job, addr, a, b, c, epi, bias):
    """``post``, then the epilogue ``epi`` with ``bias`` on the block; False (nothing posted)
    when the operands do not fit (``blasable``, ``bias_fits``)."""
    if not blasable(a, b, c) or not bias_fits(c, bias):
        return False
    _describe(job, addr, a, b, c)
    _describe_epilogue(job, epi, bias)
    _store_release(job, STATE, POSTED)
    return True


@njit(cache=True, nogil=True)
def finish(job, addr, a, b, c):
    """c = a @ b here (operands as for ``post``), then the posted block: taken back when the
    helper has not started it, else waited for."""
    mine = np.zeros(SIZE, dtype=np.int64)
    _describe(mine, addr, a, b, c)
    _finish(job, mine)


@njit(cache=True, nogil=True)
def finish_with_epilogue(job, addr, a, b, c, epi, bias):
    """``finish`` for a block of ``post_with_epilogue``'s kind (operands checked by the
    caller with ``blasable`` and ``bias_fits``)."""
    mine = np.zeros(SIZE, dtype=np.int64)
    _describe(mine, addr, a, b, c)
    _describe_epilogue(mine, epi, bias)
    _finish(job, mine)


@njit(cache=True, nogil=True)
def _finish(job, mine):
    if job[WAIT_FOR_HELPER]:
        start = _cycles()
        while _load_at(job, STATE) == POSTED and _cycles() - start < 30_000_000_000:
            pass
    _run(mine)
    if _take(job):  # the helper has not started it
        _run(job)
    else:
        while _load_at(job, STATE) != DONE:
            pass
    _store_release(job, STATE, IDLE)


@njit(cache=True, nogil=True)
def serve(job, cycles):
    """The helper's side: run posted gemms until ``cycles`` ticks pass with nothing to do
    (returns 0) or a Python job is posted (returns 1)."""
    start = _cycles()
    loops = 0
    while True:
        if _load_at(job, PY) != 0:
            return 1
        if _load_at(job, STATE) == POSTED and _take(job):
            _run(job)
            job[HELPER_RUNS] += 1
            _store_release(job, STATE, DONE)
            start = _cycles()
            loops = 0
        else:
            loops += 1
            # the loop count bounds the spin where the cycle counter reads 0
            if _cycles() - start > cycles or loops > cycles:
                return 0
