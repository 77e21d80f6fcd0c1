"""numba kernels of batch normalisation with the batch's statistics (``ops.nn_ops.BatchNorm``):
the forward in three passes per channel and the first-order backward in two.

The NumPy path is six passes each way with a fresh temporary for most (the MNIST CNN recipe's
two BatchNorm2d layers, batch 128: 5.8 ms of its 28 ms compiled step). Here, per channel: the
forward sums x, then (x - μ)², then writes y; it keeps μ and 1/σ, not x̂, which the backward
recomputes while it sums g and g·x̂, then writes ∂L/∂x. Channels are independent, so the two
halves of the channels run on two threads (``_jit.in_two_blocks``) from ``PAIR_MIN`` elements.

The statistics are sums of blocks of 128 in the array's dtype accumulated in float64 (the NumPy
path: pairwise sums per row in the dtype, then float64), so μ and σ² agree with it to rounding,
not bit for bit; from them x̂ = (x - μ)·r, y = x̂·γ + β and ∂L/∂x = ((x̂·c₁ - c₂) + g)·k are
the NumPy path's float operations in its order (no fastmath). The kernels take flat views of
(N, C, *) arrays that are C-contiguous (``cax`` 1) or channel-major in memory (``cax`` 0, a
convolution's output), so neither needs a copy; outputs are laid out as x.
"""

from __future__ import annotations

import numpy as np

from backprop._fast._jit import in_two_blocks, jit

_GROUPS = 16  # groups of 8 summed in the row's dtype before the float64 total takes them


@jit
def _row_sum(row, n, mu, square):
    """Σ row[:n] (``square`` False) or Σ (row[i] - mu)² (True: the difference and its square in
    the row's dtype, as x̂ and x̂·x̂ are formed) as float64: eight independent running sums in
    the row's dtype (no add waits for the one before) over 16 groups of 8 at a time, each such
    block's total added in float64. Accuracy as NumPy's float32 pairwise sums or better; the
    plain sum runs at np.sum's speed (0.25 ms over 1.6 M float32), the squares at twice that.
    Measured and not kept: float64 running sums (2.2x slower), a loop nest with ``min`` bounds
    or a scalar tail longer than 8 (half the speed lost), ``fastmath={"reassoc"}`` (slower)."""
    total = 0.0
    z = row.dtype.type(0)
    groups = n // 8
    g = 0
    while g < groups:
        end = g + _GROUPS if g + _GROUPS < groups else groups
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
        if square:
            for q in range(g, end):
                i = q * 8
                d0, d1, d2, d3 = row[i] - mu, row[i + 1] - mu, row[i + 2] - mu, row[i + 3] - mu
                d4, d5, d6, d7 = row[i + 4] - mu, row[i + 5] - mu, row[i + 6] - mu, row[i + 7] - mu
                s0 += d0 * d0
                s1 += d1 * d1
                s2 += d2 * d2
                s3 += d3 * d3
                s4 += d4 * d4
                s5 += d5 * d5
                s6 += d6 * d6
                s7 += d7 * d7
        else:
            for q in range(g, end):
                i = q * 8
                s0 += row[i]
                s1 += row[i + 1]
                s2 += row[i + 2]
                s3 += row[i + 3]
                s4 += row[i + 4]
                s5 += row[i + 5]
                s6 += row[i + 6]
                s7 += row[i + 7]
        total += np.float64(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)))
        g = end
    tail = z
    for i in range(groups * 8, n):
        d = row[i] - mu if square else row[i]
        tail += d * d if square else d
    return total + np.float64(tail)


@jit
def _row_grad_sums(g, x, n, mu, r):
    """(Σ g, Σ g·x̂) over a row's first n values as float64, x̂ = (x - mu)·r in the rows'
    dtype, each summed as ``_row_sum`` sums (not merged into it: two sums a pass)."""
    ta = tb = 0.0
    z = g.dtype.type(0)
    groups = n // 8
    p = 0
    while p < groups:
        end = p + _GROUPS if p + _GROUPS < groups else groups
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = z
        b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = z
        for q in range(p, end):
            i = q * 8
            g0, g1, g2, g3 = g[i], g[i + 1], g[i + 2], g[i + 3]
            g4, g5, g6, g7 = g[i + 4], g[i + 5], g[i + 6], g[i + 7]
            a0 += g0
            a1 += g1
            a2 += g2
            a3 += g3
            a4 += g4
            a5 += g5
            a6 += g6
            a7 += g7
            b0 += g0 * ((x[i] - mu) * r)
            b1 += g1 * ((x[i + 1] - mu) * r)
            b2 += g2 * ((x[i + 2] - mu) * r)
            b3 += g3 * ((x[i + 3] - mu) * r)
            b4 += g4 * ((x[i + 4] - mu) * r)
            b5 += g5 * ((x[i + 5] - mu) * r)
            b6 += g6 * ((x[i + 6] - mu) * r)
            b7 += g7 * ((x[i + 7] - mu) * r)
        ta += np.float64(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)))
        tb += np.float64(((b0 + b1) + (b2 + b3)) + ((b4 + b5) + (b6 + b7)))
        p = end
    sa = sb = z
    for i in range(groups * 8, n):
        sa += g[i]
        sb += g[i] * ((x[i] - mu) * r)
    return ta + np.float64(sa), tb + np.float64(sb)


@jit
def _offset(cax, c, k, channels, rows, n):
    """Where row k of channel c starts in a flat C-order (channels, rows, n) array (cax 0) or
    (rows, channels, n) array (cax 1)."""
    return (c * rows + k) * n if cax == 0 else (k * channels + c) * n


@jit
def forward_channels(x, cax, channels, rows, n, weight, bias, eps, y, stats, c0, c1):
    """Channels [c0, c1) of the forward on flat arrays: x laid out as (channels, rows, n)
    (cax 0) or (rows, channels, n) (cax 1), y alike: y = (x - μ)·r·γ + β (γ, β absent
    when of size 0), with μ, σ² (biased) and r = 1/√(σ² + eps) in stats[0..2, c] (float64)."""
    t = x.dtype.type
    m = rows * n
    has_w, has_b = weight.size > 0, bias.size > 0
    for c in range(c0, c1):
        s = 0.0
        for k in range(rows):
            o = _offset(cax, c, k, channels, rows, n)
            s += _row_sum(x[o:o + n], n, t(0), False)
        mu = s / m
        mu_t = t(mu)
        q = 0.0
        for k in range(rows):
            o = _offset(cax, c, k, channels, rows, n)
            q += _row_sum(x[o:o + n], n, mu_t, True)
        var = q / m
        r = 1.0 / np.sqrt(var + eps)
        r_t = t(r)
        w_t = weight[c] if has_w else t(1)
        b_t = bias[c] if has_b else t(0)
        for k in range(rows):
            o = _offset(cax, c, k, channels, rows, n)
            src, dst = x[o:o + n], y[o:o + n]
            if has_w and has_b:
                for i in range(n):
                    dst[i] = (src[i] - mu_t) * r_t * w_t + b_t
            elif has_w:
                for i in range(n):
                    dst[i] = (src[i] - mu_t) * r_t * w_t
            elif has_b:
                for i in range(n):
                    dst[i] = (src[i] - mu_t) * r_t + b_t
            else:
                for i in range(n):
                    dst[i] = (src[i] - mu_t) * r_t
        stats[0, c], stats[1, c], stats[2, c] = mu, var, r


@jit
def backward_channels(x, cax, g, gcax, channels, rows, n, weight, stats, grad_x, sums, c0, c1):
    """Channels [c0, c1) of the first-order backward from the forward's stats (flat arrays:
    x and g each laid out by its cax as in ``forward_channels``, grad_x as x): Σ g and
    Σ g·x̂ into sums[0..1, c] (float64) and, when grad_x has elements,
    ∂L/∂x = ((x̂·(-Σg·x̂/M) - Σg/M) + g)·(r·γ) into it (x̂ recomputed as the forward formed
    it)."""
    t = x.dtype.type
    m = rows * n
    want_x = grad_x.size > 0
    for c in range(c0, c1):
        mu_t, r = t(stats[0, c]), stats[2, c]
        r_t = t(r)
        sg = sgx = 0.0
        for k in range(rows):
            o = _offset(cax, c, k, channels, rows, n)
            q = _offset(gcax, c, k, channels, rows, n)
            a, b = _row_grad_sums(g[q:q + n], x[o:o + n], n, mu_t, r_t)
            sg += a
            sgx += b
        sums[0, c], sums[1, c] = sg, sgx
        if not want_x:
            continue
        c1_t = t(sgx / -m)
        c2_t = t(sg / m)
        k_t = t(r * np.float64(weight[c])) if weight.size > 0 else r_t
        for k in range(rows):
            o = _offset(cax, c, k, channels, rows, n)
            q = _offset(gcax, c, k, channels, rows, n)
            src, gk, dst = x[o:o + n], g[q:q + n], grad_x[o:o + n]
            for i in range(n):
                dst[i] = ((((src[i] - mu_t) * r_t) * c1_t - c2_t) + gk[i]) * k_t


def _laid_out(a):
    """a (N, C, *) as a flat array and the axis of its channels in memory: 1 when C-contiguous
    (N, C, S), 0 when channel-major (C, N, S; a convolution's output); None otherwise."""
    if a.flags.c_contiguous:
        return a.reshape(-1), 1
    swapped = a.swapaxes(0, 1)
    if swapped.flags.c_contiguous:
        return swapped.reshape(-1), 0
    return None


def _like(x, flat_cax: int):
    """A new array shaped and laid out as x (C-contiguous, or channel-major for cax 0) and its
    flat view."""
    if flat_cax == 1:
        out = np.empty(x.shape, x.dtype)
        return out, out.reshape(-1)
    out = np.empty((x.shape[1], x.shape[0]) + x.shape[2:], x.dtype)
    return out.swapaxes(0, 1), out.reshape(-1)


def forward(x, weight, bias, eps: float):
    """The forward over every channel of x (N, C, *), C-contiguous or channel-major (else None);
    weight and bias of x's dtype, size 0 when absent: (y (N, C, *) laid out as x, as the NumPy
    path lays it out; stats float64 (3, C): μ, σ², r)."""
    laid = _laid_out(x)
    if laid is None:
        return None
    flat, cax = laid
    channels = x.shape[1]
    rows = x.shape[0]
    n = x.size // (channels * rows)
    y, y_flat = _like(x, cax)
    stats = np.empty((3, channels))
    in_two_blocks(forward_channels, (flat, cax, channels, rows, n, weight, bias, float(eps),
                                     y_flat, stats), channels, x.size)
    return y, stats


def backward(x, g, weight, stats, need_x: bool):
    """The first-order backward over every channel (x as for ``forward``, g (N, C, *) of x's
    dtype in either layout, else copied; weight size 0 when absent): (∂L/∂x (N, C, *) laid
    out as x, or None; sums float64 (2, C): Σ g, Σ g·x̂)."""
    flat, cax = _laid_out(x)
    g_laid = _laid_out(g)
    if g_laid is None:
        g_laid = (np.ascontiguousarray(g).reshape(-1), 1)
    channels = x.shape[1]
    rows = x.shape[0]
    n = x.size // (channels * rows)
    grad_x, grad_flat = _like(x, cax) if need_x else (None, np.empty(0, x.dtype))
    sums = np.empty((2, channels))
    in_two_blocks(backward_channels, (flat, cax, g_laid[0], g_laid[1], channels, rows, n,
                                      weight, stats, grad_flat, sums), channels, x.size)
    return grad_x, sums
