"""The recurrent kernels' scalar arithmetic: tanh and σ written so LLVM vectorises them, the
dtype's constants, and the numba settings the kernels share (``_jit``).

Why not numba's ``math.tanh``: it is a scalar libm call, about 60x slower than NumPy's SIMD
tanh on float32 here, so ``_tanh`` is written from arithmetic LLVM vectorises (see there). It
agrees with NumPy's tanh to 6 ulp in float32 and 3 in float64, and never overflows. σ(x) =
(1 + tanh(x/2)) / 2, as the NumPy path computes it.

numba's disk cache keys each kernel on its own source file only: the kernels of
``recurrent.py`` compile this module's functions into themselves, so after editing this file
touch ``recurrent.py`` (or delete ``_fast/__pycache__``), or they keep the old code.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

# error_model="numpy": a float division may not raise ZeroDivisionError, so LLVM can vectorise
# the gate loops (no divisor here can be 0). fastmath only as "contract": a·b + c may become one
# fused multiply-add (rounded once instead of twice: still agreement to float rounding);
# none of fastmath's reassociation or flushing of subnormals, which _jit.py rules out. Measured:
# the LSTM layer's forward and backward 3-6% faster in float32, 8-11% in float64.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})

_cache: dict = {}


def _consts(dtype) -> np.ndarray:
    """0, 1/2 and 1 in ``dtype``: a float literal in a kernel would make float32 arithmetic
    float64 (numba types it as NumPy does)."""
    dtype = np.dtype(dtype)
    c = _cache.get(dtype)
    if c is None:
        c = _cache[dtype] = np.array([0.0, 0.5, 1.0], dtype)
    return c


@_jit
def _load(c):
    """The constants as a tuple of scalars: loop-invariant values LLVM keeps in registers (a
    load from an array inside a loop that also stores to arrays would block vectorising)."""
    return c[0], c[1], c[2]


# --- tanh and σ, vectorisable ---

# float32: Eigen's rational approximation (also MLIR's and ONNX Runtime's): odd degree-13 over
# even degree-6 on [-7.9053, 7.9053]; outside, ±1 by a select (within 5 ulp of tanh there, and
# exactly ±1 whether or not LLVM fuses the polynomial's multiply-adds); |x| < 4e-4 returns x
# (there tanh(x) = x in float32, and the ratio's constant term is 2 ulp off 1)
_F32_CLAMP, _F32_TINY = np.float32(7.90531110763549805), np.float32(0.0004)
_F32_ALPHA = tuple(np.float32(v) for v in (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_F32_BETA = tuple(np.float32(v) for v in (
    1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))

# float64: tanh(x) = -m / (2 + m), m = expm1(-2|x|) (no cancellation: m is accurate near 0),
# expm1 by Cody-Waite reduction y = k ln2 + r, |r| <= ln2/2 (ln2 split as fdlibm, so k·ln2_hi
# is exact) and its Taylor polynomial to degree 13 (error < 1e-17 there); |x| clamped at 20,
# where tanh is 1 in float64, so k is in [-58, 0]
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_INV_FACT = tuple(1 / math.factorial(j) for j in range(13, 1, -1))


def _tanh(x):
    """tanh of a float32 or float64 scalar, from arithmetic LLVM can vectorise (numba's
    ``math.tanh`` is a scalar libm call); within 6 ulp of tanh in float32, 3 in float64."""
    return np.tanh(x)


@overload(_tanh)
def _tanh_impl(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        a13, a11, a9, a7, a5, a3, a1 = _F32_ALPHA
        b6, b4, b2, b0 = _F32_BETA
        hi, lo, tiny = _F32_CLAMP, -_F32_CLAMP, _F32_TINY
        one, minus_one = np.float32(1), np.float32(-1)

        def tanh32(x):
            v = hi if x > hi else x  # a NaN stays NaN
            v = lo if v < lo else v
            v2 = v * v
            p = v2 * a13 + a11
            p = v2 * p + a9
            p = v2 * p + a7
            p = v2 * p + a5
            p = v2 * p + a3
            p = v2 * p + a1
            q = v2 * b6 + b4
            q = v2 * q + b2
            q = v2 * q + b0
            t = v * p / q
            t = one if x >= hi else t
            t = minus_one if x <= lo else t
            return x if abs(x) < tiny else t

        return tanh32

    c13, c12, c11, c10, c9, c8, c7, c6, c5, c4, c3, c2 = _INV_FACT
    ln2_hi, ln2_lo, log2e = _LN2_HI, _LN2_LO, 1 / math.log(2)

    def tanh64(x):
        ax = min(abs(x), 20.0)
        y = -(ax + ax)
        kf = np.floor(y * log2e + 0.5)
        r = (y - kf * ln2_hi) - kf * ln2_lo
        q = c13 * r + c12
        q = q * r + c11
        q = q * r + c10
        q = q * r + c9
        q = q * r + c8
        q = q * r + c7
        q = q * r + c6
        q = q * r + c5
        q = q * r + c4
        q = q * r + c3
        q = q * r + c2
        p = r + r * r * q  # expm1(r)
        # 2^k from the bits of -k as a product of exact powers of two (no bit casts)
        m = np.int64(-kf)
        s = 1.0
        s = s * 0.5 if m & 1 else s
        s = s * 0.25 if m & 2 else s
        s = s * 0.0625 if m & 4 else s
        s = s * 2.0**-8 if m & 8 else s
        s = s * 2.0**-16 if m & 16 else s
        s = s * 2.0**-32 if m & 32 else s
        em = s * p + (s - 1.0)  # expm1(y) = 2^k expm1(r) + 2^k - 1
        t = -em / (2.0 + em)
        return t if x >= 0.0 else -t

    return tanh64


@_jit
def _sigmoid(x, k):
    """σ(x) = tanh(x/2)/2 + 1/2, in the NumPy path's order of operations."""
    return _tanh(x * k[1]) * k[1] + k[1]
