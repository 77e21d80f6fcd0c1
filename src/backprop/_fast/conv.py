"""numba kernels of convolution and pooling: the im2col gather, its adjoint (col2im), and max
pooling with its index scatter. Each replaces NumPy code in ``ops/conv.py`` that is memory-bound
(strided copies, KH·KW passes, fancy indexing) and agrees with it to float rounding; the GEMMs
stay in NumPy's BLAS.

Feature maps are passed as *planes*: a C-contiguous (P, H, W) array holding the (N, C) planes in
either order, with ``n_stride``/``c_stride`` saying which (plane of sample n, channel c is
``n·n_stride + c·c_stride``). Both NCHW memory and the channel-major (C, N, H, W) memory that
the convolution's GEMM yields are then one compiled kernel with unit-stride inner loops.
Every kernel is parallel over blocks of planes, so threads never write to the same element, and
each sum runs in the NumPy path's order (col2im's results are bit-identical; an overlapping
max-pool scatter sums in the array's dtype where NumPy's bincount sums in float64, so float32
gradients there differ by rounding).

Geometry arguments: ``stride`` (sh, sw), ``dilation`` (dh, dw), and the top/left padding
(bottom/right padding is implied by the output size).

When they run in parallel: only with threads that start at once, numba's OpenMP layer, which
the user chooses (``NUMBA_THREADING_LAYER=omp``; see ``_jit.parallel``). With OpenMP's spinning
threads they win on an idle machine (LeNet-5 batch 64, quiet 2-core machine: conv1 forward 1.10
against 1.22 ms on the NumPy path, the step 8.5-9.0 against 10.0 ms) and collapse when other
processes hold the cores (35-55 ms a step); the workqueue layer wakes its threads too slowly to
gain. Otherwise each kernel runs its serial form, from ``_jit.PAIR_MIN`` elements as two blocks of
planes on the calling thread and ``backprop._pair``'s helper (whose block the caller takes
back when it has not started). On one thread they beat the
NumPy path as well (same machine, one thread, LeNet-5's shapes): a 2x2 max pool of conv1's
output 111 against 524 µs (a kernel of its own, below), its index scatter 53 against 186 µs,
conv1's im2col 252 against 313 µs, conv2's col2im 378 against 392 µs.
"""

from __future__ import annotations

import numpy as np
from numba import uint64

from backprop import _blas, _pair
from backprop._fast import _gemm
from backprop._fast._gemm import mm_into, mm_nt
from backprop._fast._jit import in_two_blocks, jit, launch, parallel_jit, prange, threads_for

__all__ = ["col2im", "conv_by_blocks", "im2col", "max_pool", "pool_scatter",
           "transpose_by_blocks", "weight_grad_by_blocks"]


# --- the kernels (compiled per dtype: float32 and float64) ---
# Index arithmetic: numba wraps negative indices, a per-access select that keeps LLVM from
# vectorising the copies (2x slower); indices cast to uint64 once known non-negative skip it.


@jit
def _cols_range(col0, sw, ow, w):
    """The output columns j whose input column j·sw + col0 lies in [0, w)."""
    j_lo = 0 if col0 >= 0 else min(ow, (sw - 1 - col0) // sw)
    j_hi = 0 if w - 1 - col0 < 0 else min(ow, (w - 1 - col0) // sw + 1)
    return j_lo, max(j_lo, j_hi)


@jit
def _im2col_planes(x, n_stride, c_stride, cols, sh, sw, dh, dw, top, left, t0, t1):
    c_n, kh, kw, n_n, oh, ow = cols.shape
    h, w = x.shape[1], x.shape[2]
    zero = x.dtype.type(0)
    for t in range(t0, t1):
        c = t // n_n
        n = t - c * n_n
        plane = n * n_stride + c * c_stride
        for p in range(kh):
            for q in range(kw):
                col0 = q * dw - left
                j_lo, j_hi = _cols_range(col0, sw, ow, w)
                for i in range(oh):
                    r = i * sh + p * dh - top
                    if r < 0 or r >= h:
                        for j in range(ow):
                            cols[c, p, q, n, i, j] = zero
                        continue
                    ru = uint64(r)
                    for j in range(j_lo):
                        cols[c, p, q, n, i, j] = zero
                    if sw == 1:  # the common case: a contiguous run
                        for j in range(j_lo, j_hi):
                            cols[c, p, q, n, i, uint64(j)] = x[plane, ru, uint64(j + col0)]
                    else:
                        for j in range(j_lo, j_hi):
                            cols[c, p, q, n, i, uint64(j)] = x[plane, ru, uint64(j * sw + col0)]
                    for j in range(j_hi, ow):
                        cols[c, p, q, n, i, uint64(j)] = zero
    return cols


@jit
def _col2im_planes(cols, out, n_stride, c_stride, sh, sw, dh, dw, top, left, t0, t1):
    c_n, kh, kw, n_n, oh, ow = cols.shape
    h, w = out.shape[1], out.shape[2]
    zero = out.dtype.type(0)
    for t in range(t0, t1):
        c = t // n_n
        n = t - c * n_n
        plane = n * n_stride + c * c_stride
        for r in range(h):
            for s in range(w):
                out[plane, r, s] = zero
        # kernel offsets outermost: each pixel sums its terms in the NumPy path's order
        for p in range(kh):
            for q in range(kw):
                col0 = q * dw - left
                j_lo, j_hi = _cols_range(col0, sw, ow, w)
                for i in range(oh):
                    r = i * sh + p * dh - top
                    if r < 0 or r >= h:
                        continue
                    ru = uint64(r)
                    if sw == 1:
                        for j in range(j_lo, j_hi):
                            out[plane, ru, uint64(j + col0)] += cols[c, p, q, n, i, uint64(j)]
                    else:
                        for j in range(j_lo, j_hi):
                            out[plane, ru, uint64(j * sw + col0)] += cols[c, p, q, n, i,
                                                                          uint64(j)]
    return out


@jit
def _window_max(x, t, r0, s0, kh, kw, dh, dw, neg_inf):
    """The NumPy path's running max over one window, slot by slot in row-major order, padding
    read as -inf: a strict > keeps the first maximum (PyTorch's tie rule), and a NaN sticks as
    np.maximum's does, leaving the index at the last maximum before it."""
    h, w = x.shape[1], x.shape[2]
    m = neg_inf
    a = -1
    for p in range(kh):
        r = r0 + p * dh
        for q in range(kw):
            s = s0 + q * dw
            if r < 0 or r >= h or s < 0 or s >= w:
                v = neg_inf
                flat = -1
            else:
                v = x[t, r, s]
                flat = r * w + s
            if p == 0 and q == 0:
                m = v
                a = flat
            elif v > m:
                m = v
                a = flat
            elif v != v:
                m = v
    return m, a


@jit
def _max_pool_planes(x, y, index, kh, kw, sh, sw, dh, dw, top, left, neg_inf, t0, t1):
    _, oh, ow = y.shape
    h, w = x.shape[1], x.shape[2]
    for t in range(t0, t1):
        for i in range(oh):
            r0 = i * sh - top
            rows_inside = r0 >= 0 and r0 + (kh - 1) * dh < h
            for j in range(ow):
                s0 = j * sw - left
                if rows_inside and s0 >= 0 and s0 + (kw - 1) * dw < w:
                    # a window inside x, branch-free: on real data `v > m` is a coin toss, and
                    # mispredicted branches made this 3x slower; the index moves by arithmetic
                    m = x[t, uint64(r0), uint64(s0)]
                    a = r0 * w + s0
                    nan = False
                    for p in range(kh):
                        r = r0 + p * dh
                        for q in range(kw):
                            s = s0 + q * dw
                            v = x[t, uint64(r), uint64(s)]
                            a += np.int64(v > m) * (r * w + s - a)
                            m = max(m, v)
                            nan |= v != v
                    if nan:  # max() drops NaN: redo this window by the exact rule
                        m, a = _window_max(x, t, r0, s0, kh, kw, dh, dw, neg_inf)
                else:
                    m, a = _window_max(x, t, r0, s0, kh, kw, dh, dw, neg_inf)
                y[t, i, j] = m
                index[t, i, j] = a
    return y


@jit
def _max_pool_2x2_planes(x, y, index, neg_inf, t0, t1):
    """_max_pool_planes for the common geometry (2x2 windows, stride 2, no padding or
    dilation, every window inside x): the four taps unrolled and branch-free, 5x faster on one
    thread (LeNet-5's conv1 output: 111 against 567 µs), the same results."""
    _, oh, ow = y.shape
    w = x.shape[2]
    for t in range(t0, t1):
        for i in range(oh):
            r = uint64(2 * i)
            r1 = r + uint64(1)
            top = 2 * i * w
            for j in range(ow):
                s = uint64(2 * j)
                s1 = s + uint64(1)
                v0 = x[t, r, s]
                v1 = x[t, r, s1]
                v2 = x[t, r1, s]
                v3 = x[t, r1, s1]
                a = top + 2 * j
                b = v1 > v0
                m = v1 if b else v0
                a += np.int64(b)
                b = v2 > m
                m = v2 if b else m
                a = top + w + 2 * j if b else a
                b = v3 > m
                m = v3 if b else m
                a = top + w + 2 * j + 1 if b else a
                if v0 != v0 or v1 != v1 or v2 != v2 or v3 != v3:  # NaN: by the exact rule
                    m, a = _window_max(x, t, 2 * i, 2 * j, 2, 2, 1, 1, neg_inf)
                y[t, i, uint64(j)] = m
                index[t, i, uint64(j)] = a
    return y


@jit
def _pool_scatter_planes(g, g_n, g_c, index, i_n, i_c, out, o_n, o_c, n_n, c_n, t0, t1):
    _, oh, ow = g.shape
    size = out.shape[1]
    zero = out.dtype.type(0)
    for t in range(t0, t1):
        n = t // c_n
        c = t - n * c_n
        gp = n * g_n + c * g_c
        ip = n * i_n + c * i_c
        op = n * o_n + c * o_c
        for k in range(size):
            out[op, k] = zero
        for i in range(oh):
            for j in range(ow):
                k = index[ip, i, j]
                if k >= 0:
                    out[op, k] += g[gp, i, j]
    return out


# The drivers: k blocks of planes, one per thread (k: numba's thread count, passed in because
# reading it inside a kernel defeats caching). A prange straight over the planes
# compiles the body as an outlined gufunc that LLVM optimises worse (1.2-1.3x slower on one
# thread); a serial kernel over a block keeps its single-thread speed.


@parallel_jit
def _im2col(x, n_stride, c_stride, cols, sh, sw, dh, dw, top, left, k):
    total = cols.shape[0] * cols.shape[3]
    for b in prange(k):
        _im2col_planes(x, n_stride, c_stride, cols, sh, sw, dh, dw, top, left,
                       b * total // k, (b + 1) * total // k)
    return cols


@parallel_jit
def _col2im(cols, out, n_stride, c_stride, sh, sw, dh, dw, top, left, k):
    total = cols.shape[0] * cols.shape[3]
    for b in prange(k):
        _col2im_planes(cols, out, n_stride, c_stride, sh, sw, dh, dw, top, left,
                       b * total // k, (b + 1) * total // k)
    return out


@parallel_jit
def _max_pool(x, y, index, kh, kw, sh, sw, dh, dw, top, left, neg_inf, k):
    total = y.shape[0]
    for b in prange(k):
        _max_pool_planes(x, y, index, kh, kw, sh, sw, dh, dw, top, left, neg_inf,
                         b * total // k, (b + 1) * total // k)
    return y


@parallel_jit
def _pool_scatter(g, g_n, g_c, index, i_n, i_c, out, o_n, o_c, n_n, c_n, k):
    total = n_n * c_n
    for b in prange(k):
        _pool_scatter_planes(g, g_n, g_c, index, i_n, i_c, out, o_n, o_c, n_n, c_n,
                             b * total // k, (b + 1) * total // k)
    return out


# --- what ops/conv.py calls ---


def _run(serial, parallel, args: tuple, planes: int, size: int):
    """One kernel over ``planes`` planes (``size`` elements): the serial form (``_serial``), or
    the parallel driver when ``threads_for`` gives more than one thread."""
    k = threads_for(size)
    if k == 1:
        return in_two_blocks(serial, args, planes, size)
    with launch(k):
        return parallel(*args, k)


def im2col(x: np.ndarray, n_stride: int, c_stride: int, cols: np.ndarray, stride: tuple,
           dilation: tuple, top: int, left: int) -> np.ndarray:
    """Fill ``cols`` with the windows of x: cols[c, p, q, n, i, j] = x̃[n, c, i·sh + p·dh,
    j·sw + q·dw] (x̃: x zero-padded by ``top``/``left`` and as needed on the far sides).

    Args:
        x: (P, H, W) planes, C-contiguous; plane of (n, c) at n·n_stride + c·c_stride.
        cols: (C, KH, KW, N, OH, OW), C-contiguous, overwritten.

    Returns:
        cols.
    """
    args = (x, n_stride, c_stride, cols, stride[0], stride[1], dilation[0], dilation[1], top,
            left)
    return _run(_im2col_planes, _im2col, args, cols.shape[0] * cols.shape[3], cols.size)


@jit
def _block_cols(x, n_stride, c_stride, buf, n0, n1, kernel_shape, out_hw, sh, sw, dh, dw, top,
                left):
    """Samples n0..n1-1's columns in ``buf``, as (C·KH·KW, (n1-n0)·OH·OW)."""
    c, kh, kw = kernel_shape
    oh, ow = out_hw
    nb = n1 - n0
    cols = buf[: c * kh * kw * nb * oh * ow].reshape((c, kh, kw, nb, oh, ow))
    # the block's planes start at sample n0's (plane n·n_stride + c·c_stride in both layouts)
    _im2col_planes(x[n0 * n_stride:], n_stride, c_stride, cols, sh, sw, dh, dw, top, left, 0,
                   c * nb)
    return cols.reshape((c * kh * kw, nb * oh * ow))


@jit
def _conv_blocks(x, n_stride, c_stride, w2, y, buf, addr, n, per_block, kernel_shape, out_hw,
                 sh, sw, dh, dw, top, left, k0, k1):
    area = out_hw[0] * out_hw[1]
    for k in range(k0, k1):
        n0 = k * per_block
        n1 = min(n, n0 + per_block)
        cols = _block_cols(x, n_stride, c_stride, buf, n0, n1, kernel_shape, out_hw, sh, sw, dh,
                           dw, top, left)
        mm_into(addr, w2, cols, y[:, n0 * area : n1 * area])


@jit
def _weight_grad_blocks(x, n_stride, c_stride, g2, parts, buf, addr, n, per_block, kernel_shape,
                        out_hw, sh, sw, dh, dw, top, left, k0, k1):
    area = out_hw[0] * out_hw[1]
    for k in range(k0, k1):
        n0 = k * per_block
        n1 = min(n, n0 + per_block)
        cols = _block_cols(x, n_stride, c_stride, buf, n0, n1, kernel_shape, out_hw, sh, sw, dh,
                           dw, top, left)
        mm_nt(addr, cols, g2[:, n0 * area : n1 * area], parts[k])  # (C·KH·KW, O)


@jit
def _transpose_blocks(g2, n_stride, c_stride, w_t, out, buf, addr, n, per_block, kernel_shape,
                      out_hw, sh, sw, dh, dw, top, left, k0, k1):
    c, kh, kw = kernel_shape
    oh, ow = out_hw
    area = oh * ow
    for k in range(k0, k1):
        n0 = k * per_block
        n1 = min(n, n0 + per_block)
        nb = n1 - n0
        cols = buf[: c * kh * kw * nb * area].reshape((c * kh * kw, nb * area))
        mm_into(addr, w_t, g2[:, n0 * area : n1 * area], cols)
        # the block's planes start at sample n0's, as in _block_cols
        _col2im_planes(cols.reshape((c, kh, kw, nb, oh, ow)), out[n0 * n_stride:], n_stride,
                       c_stride, sh, sw, dh, dw, top, left, 0, c * nb)


def _by_blocks(kernel, x, n_stride, c_stride, other, out, n, per_block, kernel_shape, out_hw,
               stride, dilation, top, left):
    """Run a block kernel over all ``ceil(n / per_block)`` sample blocks: the first half on the
    calling thread and the second on ``_pair``'s helper when allowed (each block writes its own
    output, so the same bits either way), each thread with a columns buffer of its own."""
    blocks = -(-n // per_block)
    size = int(np.prod(kernel_shape)) * per_block * out_hw[0] * out_hw[1]
    addr = _gemm.address(x.dtype)
    _blas.gemm_threads(1)

    def run(k0, k1):
        buf = np.empty(size, dtype=x.dtype)
        kernel(x, n_stride, c_stride, other, out, buf, addr, n, per_block, kernel_shape, out_hw,
               stride[0], stride[1], dilation[0], dilation[1], top, left, k0, k1)

    if blocks >= 2 and _blas.pairs_of_products_allowed(1):  # each block's product is small
        h = (blocks + 1) // 2
        _pair.run_pair(lambda: run(0, h), lambda: run(h, blocks))
    else:
        run(0, blocks)


def conv_by_blocks(x, n_stride, c_stride, w2, y, n, per_block, kernel_shape, out_hw, stride,
                   dilation, top, left):
    """y = w2 @ columns, a few samples at a time (see ``ops.conv.BLOCK_K``).

    Args:
        x: (P, H, W) planes, C-contiguous; plane of (n, c) at n·n_stride + c·c_stride.
        w2: (O, C·KH·KW), C-contiguous.
        y: (O, N·OH·OW), C-contiguous, overwritten: each block's columns its own product's (the
            same bits as one product over all columns).
        kernel_shape: (C, KH, KW); out_hw: (OH, OW); top/left: the padding.
    """
    _by_blocks(_conv_blocks, x, n_stride, c_stride, w2, y, n, per_block, kernel_shape, out_hw,
               stride, dilation, top, left)
    return y


def transpose_by_blocks(g2, w_t, out, n_stride, c_stride, n, per_block, kernel_shape, out_hw,
                        stride, dilation, top, left):
    """ConvTranspose's product and col2im a few samples at a time: out = col2im(w_t @ g2).

    Args:
        g2: (O, N·OH·OW) with unit stride along rows.
        w_t: (C·KH·KW, O), C-contiguous.
        out: (P, H, W) planes, C-contiguous, overwritten; plane of (n, c) at
            n·n_stride + c·c_stride. Each block's columns and pixels are its own, so the same
            bits as one product and one col2im.
    """
    _by_blocks(_transpose_blocks, g2, n_stride, c_stride, w_t, out, n, per_block, kernel_shape,
               out_hw, stride, dilation, top, left)
    return out


def weight_grad_by_blocks(x, n_stride, c_stride, g2, parts, n, per_block, kernel_shape, out_hw,
                          stride, dilation, top, left):
    """parts[k] = columns of block k @ g2's columns of block kᵀ, for every sample block k.

    Args:
        g2: (O, N·OH·OW) with unit stride along rows.
        parts: (blocks, C·KH·KW, O), C-contiguous, overwritten (the caller sums them in order).
    """
    _by_blocks(_weight_grad_blocks, x, n_stride, c_stride, g2, parts, n, per_block,
               kernel_shape, out_hw, stride, dilation, top, left)
    return parts


def col2im(cols: np.ndarray, out: np.ndarray, n_stride: int, c_stride: int, stride: tuple,
           dilation: tuple, top: int, left: int) -> np.ndarray:
    """The adjoint of ``im2col``: out = Σ over kernel offsets of the columns added back at their
    window positions, the padding cropped.

    Args:
        cols: (C, KH, KW, N, OH, OW), C-contiguous.
        out: (P, H, W) planes, C-contiguous, overwritten; plane of (n, c) at
            n·n_stride + c·c_stride.

    Returns:
        out.
    """
    args = (cols, out, n_stride, c_stride, stride[0], stride[1], dilation[0], dilation[1], top,
            left)
    return _run(_col2im_planes, _col2im, args, cols.shape[0] * cols.shape[3], cols.size)


def max_pool(x: np.ndarray, y: np.ndarray, index: np.ndarray, kernel: tuple, stride: tuple,
             dilation: tuple, top: int, left: int) -> np.ndarray:
    """y = the max of each window of x̃ (x padded with -inf), index = the flat position h·W + w
    of its first maximum in x's plane (-1 for a padding slot).

    Args:
        x: (P, H, W) planes, C-contiguous.
        y: (P, OH, OW), x's dtype, C-contiguous, overwritten (planes in x's order).
        index: (P, OH, OW) int64, C-contiguous, overwritten.

    Returns:
        y.
    """
    neg_inf = x.dtype.type(-np.inf)
    if (threads_for(x.size) == 1 and tuple(kernel) == tuple(stride) == (2, 2)
            and tuple(dilation) == (1, 1) and top == left == 0
            and 2 * y.shape[1] <= x.shape[1] and 2 * y.shape[2] <= x.shape[2]):
        return in_two_blocks(_max_pool_2x2_planes, (x, y, index, neg_inf), y.shape[0], x.size)
    args = (x, y, index, kernel[0], kernel[1], stride[0], stride[1], dilation[0], dilation[1],
            top, left, neg_inf)
    return _run(_max_pool_planes, _max_pool, args, y.shape[0], x.size)


def pool_scatter(g: np.ndarray, g_strides: tuple, index: np.ndarray, i_strides: tuple,
                 out: np.ndarray, o_strides: tuple, n: int, c: int) -> np.ndarray:
    """out = zeros; out[(n, c), index[(n, c), i, j]] += g[(n, c), i, j], the adjoint of max pooling.

    Args:
        g: (P, OH, OW) planes, C-contiguous; ``g_strides`` its (n_stride, c_stride).
        index: (P, OH, OW) int64 flat positions in out's planes (negative: skipped).
        out: (P, H·W), g's dtype, C-contiguous, overwritten.
        n, c: the batch size and channel count (P = n·c).

    Returns:
        out.
    """
    args = (g, g_strides[0], g_strides[1], index, i_strides[0], i_strides[1], out, o_strides[0],
            o_strides[1], n, c)
    return _run(_pool_scatter_planes, _pool_scatter, args, n * c, out.size)
