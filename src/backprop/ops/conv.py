"""Convolution and pooling primitives on (N, C, H, W) arrays.

Shared parameter conventions (the wrappers in ``nn._functional_conv`` normalise user input):
``stride`` and ``dilation`` are (h, w) pairs, ``padding`` is (top, bottom, left, right) so that
PyTorch's ``padding='same'`` with an even kernel (one more on the bottom/right) fits.

Convolution is three bilinear primitives, the three partial derivatives of one trilinear form
T(x, w, g) = ⟨g, conv(x, w)⟩: ``Conv`` = ∂T/∂g, ``ConvTranspose`` = ∂T/∂x and
``ConvWeightGrad`` = ∂T/∂w. Each one's backward is made of the other two, so gradients of any
order stay differentiable without a single unfused index op. Each is one GEMM (batched over
groups only) on an im2col view built in ``_strided``.
"""

from __future__ import annotations

import numpy as np

from backprop import _blas, _fast
from backprop.autograd.function import Function
from backprop.ops._strided import (
    col2im,
    out_size,
    pad2d,
    pool_index_plan,
    release,
    scatter_flat,
    windows,
    workspace,
)

# --- convolution ---


def _geometry(x_shape, kernel, stride, padding, dilation):
    h_pad = x_shape[2] + padding[0] + padding[1]
    w_pad = x_shape[3] + padding[2] + padding[3]
    oh = out_size(h_pad, kernel[0], stride[0], 0, dilation[0])
    ow = out_size(w_pad, kernel[1], stride[1], 0, dilation[1])
    return (h_pad, w_pad), (oh, ow)


# Layout: columns are (G, C/G·KH·KW, N·OH·OW) and outputs go through (G, O/G, N·OH·OW), so every
# product below is one GEMM (batched over groups only) and the im2col copy moves whole rows of OW
# contiguous pixels (the Caffe layout; an (N·OH·OW, C·KH·KW) layout gathers short runs).
# ConvTranspose builds its columns batch-last, (G, C/G·KH·KW, OH·OW·N), for col2im's long rows.


def _planes(a):
    """An (N, C, H, W) array as the fast kernels' C-contiguous (P, H, W) planes and their
    (n_stride, c_stride), for NCHW or channel-major (C, N, H, W) memory; None otherwise."""
    n, c, h, w = a.shape
    if a.flags.c_contiguous:
        return a.reshape(n * c, h, w), (c, 1)
    t = a.transpose(1, 0, 2, 3)
    if t.flags.c_contiguous:
        return t.reshape(c * n, h, w), (1, n)
    return None


def _fast_planes(*arrays):
    """The fast kernel module and each array's planes, or (None, None) for the NumPy path."""
    fk = _fast.kernels("conv")
    if fk is None:
        return None, None
    planes = [_planes(a) for a in arrays]
    if None in planes or not _fast.suits(*(p[0] for p in planes)):
        return None, None
    return fk, planes


def _im2col(x, kernel, stride, padding, dilation, groups):
    """x (N, C, H, W) -> columns (G, C/G·KH·KW, N·OH·OW): the one copy of the windows."""
    n, c = x.shape[:2]
    _, (oh, ow) = _geometry(x.shape, kernel, stride, padding, dilation)
    cols = workspace((c, kernel[0], kernel[1], n, oh, ow), x.dtype)  # released by the caller
    fk, planes = _fast_planes(x)
    if fk is not None:
        # one parallel pass that also writes the zero padding (no padded copy of x)
        (xp, (n_stride, c_stride)), = planes
        fk.im2col(xp, n_stride, c_stride, cols, stride, dilation, padding[0], padding[2])
    else:
        win = windows(pad2d(x, padding), kernel, stride, dilation, (oh, ow))
        np.copyto(cols, win.transpose(1, 4, 5, 0, 2, 3))
    return cols.reshape(groups, -1, n * oh * ow), (oh, ow)


# --- sample blocks: layers with few input channels on the fast path ---
# A layer with few inputs per output (C·KH·KW ≤ BLOCK_K: a first layer on grey images) expands
# its input KH·KW-fold into columns that each product then reads for only O multiply-adds:
# LeNet-5's conv1 writes 5 MB of columns, and its weight gradient, reading them back from
# memory a few ms later, ran at 8 GFLOP/s. Such layers run a few samples at a time instead
# (``_fast.conv.conv_by_blocks``/``weight_grad_by_blocks``): one block's columns (about
# BLOCK_BYTES, so they stay in the core's cache), then its product, block after block, the
# blocks shared between the caller and ``_pair``'s helper. Forward, each block's product writes
# its own output columns: the same bits as one product. The weight gradient sums one product
# per block in block order: the same bits whatever the threads, within float rounding of one
# product. LeNet-5's conv1 (batch 64, cache flushed before each call): forward and weight
# gradient 1.6-2.1 ms with whole-batch columns, 0.9-1.0 ms by blocks; the compiled LeNet-5
# step 0.87x its time (8 A/B pairs). With more inputs per output the per-block products get
# too small (LeNet-5's conv2, 150 per output: its weight gradient 0.9 -> 1.4-1.9 ms by
# blocks), so those layers keep whole-batch columns.
# The input gradient (ConvTranspose: one product, then col2im of its columns) runs by sample
# blocks too, for any channel count (``TRANSPOSE_BY_BLOCKS``): its columns, 3.8 MB for
# LeNet-5's conv2, were written by the product and read back by col2im from memory; by blocks
# each block's columns are read while in cache. Each block's columns and pixels are its own:
# the same bits as the whole-batch path. Compiled LeNet-5 step 0.91x its time (8 A/B pairs).
BLOCK_K = 25
BLOCK_BYTES = 1 << 18
TRANSPOSE_BY_BLOCKS = True


def _samples_per_block(n: int, c: int, kernel, out_hw, itemsize: int) -> int:
    """Samples per block for columns of C·KH·KW rows over OH·OW pixels a sample (about
    BLOCK_BYTES), or 0 when the batch's columns are small enough to stay in cache whole (or a
    single sample)."""
    per = c * kernel[0] * kernel[1] * out_hw[0] * out_hw[1] * itemsize  # one sample's columns
    if n < 2 or n * per < 4 * BLOCK_BYTES:
        return 0
    return max(1, BLOCK_BYTES // per)


def _sample_blocks(x, other, kernel, groups, out_hw):
    """How a layer runs by sample blocks, or None when it keeps whole-batch columns: x the
    (N, C, H, W) input, ``other`` the array it meets in the product (weight or gradient)."""
    n, c = x.shape[:2]
    kh, kw = kernel
    if groups != 1 or c * kh * kw > BLOCK_K or other.dtype != x.dtype:
        return None
    per_block = _samples_per_block(n, c, kernel, out_hw, x.dtype.itemsize)
    if not per_block:
        return None
    fk, planes = _fast_planes(x)
    if fk is None:
        return None
    (xp, strides), = planes
    return fk, xp, strides, (n, c, kh, kw) + tuple(out_hw), per_block


def _conv_by_blocks(plan, weight, stride, padding, dilation):
    """Conv's product by sample blocks: (1, O, N·OH·OW), the same bits as one product."""
    fk, xp, (n_stride, c_stride), (n, c, kh, kw, oh, ow), per_block = plan
    o = weight.shape[0]
    y = np.empty((1, o, n * oh * ow), dtype=weight.dtype)
    fk.conv_by_blocks(xp, n_stride, c_stride, np.ascontiguousarray(weight.reshape(o, -1)), y[0],
                      n, per_block, (c, kh, kw), (oh, ow), stride, dilation, padding[0],
                      padding[2])
    return y


def _weight_grad_by_blocks(plan, g, stride, padding, dilation):
    """ConvWeightGrad's product by sample blocks: (O, C·KH·KW), one product per block summed
    in block order (the same bits whatever the threads)."""
    fk, xp, (n_stride, c_stride), (n, c, kh, kw, oh, ow), per_block = plan
    g2 = _to_groups(g, 1)[0]  # (O, N·OH·OW)
    parts = np.empty((-(-n // per_block), c * kh * kw, g2.shape[0]), dtype=g2.dtype)
    fk.weight_grad_by_blocks(xp, n_stride, c_stride, g2, parts, n, per_block, (c, kh, kw),
                             (oh, ow), stride, dilation, padding[0], padding[2])
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total.T


def _to_groups(g, groups):
    """(N, O, OH, OW) -> (G, O/G, N·OH·OW) (a copy of an output-sized array)."""
    n, o, oh, ow = g.shape
    return np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(groups, o // groups, -1)


def _from_groups(y, n, oh, ow):
    """(G, O/G, N·OH·OW) -> (N, O, OH, OW) as a view, channel-major in memory: no copy here,
    and a gradient that comes back in the same layout (elementwise ops keep it) makes
    ``_to_groups`` copy-free as well."""
    o = y.shape[0] * y.shape[1]
    return y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)


class Conv(Function):
    """y[n,o,i,j] = b[o] + Σ_{c,p,q} w[o,c,p,q]·x̃[n, gC' + c, i·sₕ + p·dₕ, j·s_w + q·d_w]
    (x̃: x zero-padded, g: the group of o, C' = C/groups);
    ∂L/∂x = ConvTranspose(G, w), ∂L/∂w = ConvWeightGrad(x, G), ∂L/∂b[o] = Σ_{n,i,j} G[n,o,i,j].

    Fused (im2col + one GEMM) for speed: composed from pad/getitem/matmul it would be
    KH·KW graph nodes and copies per layer.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0),
                dilation=(1, 1), groups=1):
        ctx.args = (stride, padding, dilation, groups)
        ctx.save_for_backward(x, weight)
        o, _, kh, kw = weight.shape
        _, (oh, ow) = _geometry(x.shape, (kh, kw), stride, padding, dilation)
        plan = _sample_blocks(x, weight, (kh, kw), groups, (oh, ow))
        if plan is not None:  # few input channels: a few samples at a time (see BLOCK_K)
            y = _conv_by_blocks(plan, weight, stride, padding, dilation)
            y = _from_groups(y, x.shape[0], oh, ow)
            if bias is not None:
                y += bias.reshape(1, -1, 1, 1)
            return y
        cols, (oh, ow) = _im2col(x, (kh, kw), stride, padding, dilation, groups)
        y = _blas.matmul(weight.reshape(groups, o // groups, -1), cols)  # the one GEMM
        if len(ctx.needs_input_grad) > 1 and ctx.needs_input_grad[1]:
            # kept for the weight gradient (speed: one im2col per layer and step, not two);
            # a cache only: ConvWeightGrad still depends on x, so higher orders are unaffected
            ctx.cols = cols
        else:
            release(cols)
        y = _from_groups(y, x.shape[0], oh, ow)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        stride, padding, dilation, groups = ctx.args
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = ConvTranspose.apply(grad_out, weight, x_shape=x.shape, stride=stride,
                                         padding=padding, dilation=dilation, groups=groups)
        if need_w:
            cols = ctx.__dict__.pop("cols", None)
            grad_w = ConvWeightGrad.apply(x, grad_out, kernel=weight.shape[2:], stride=stride,
                                          padding=padding, dilation=dilation, groups=groups,
                                          cols=cols)
            if cols is not None:  # ConvWeightGrad kept no reference to it
                release(cols)
        if need_b:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b


class ConvTranspose(Function):
    """x = ConvTranspose(g, w), the adjoint of Conv in its input: of shape ``x_shape``,
    x̃[n, gC' + c, i·sₕ + p·dₕ, j·s_w + q·d_w] += Σ_o g[n,o,i,j]·w[o,c,p,q], then the padding
    cropped (col2im). ∂L/∂g = Conv(G, w), ∂L/∂w = ConvWeightGrad(G, g). It is also
    ``conv_transpose2d`` itself. Fused for the same reason as Conv.
    """

    @staticmethod
    def forward(ctx, g, weight, x_shape=(), stride=(1, 1), padding=(0, 0, 0, 0),
                dilation=(1, 1), groups=1):
        ctx.args = (stride, padding, dilation, groups)
        ctx.save_for_backward(g, weight)
        n, o, oh, ow = g.shape
        c = x_shape[1]
        kh, kw = weight.shape[2:]
        w_g = weight.reshape(groups, o // groups, -1)
        fk = _fast.kernels("conv")
        if fk is not None and _fast.suits(w_g) and w_g.dtype == g.dtype:
            # Conv's column layout (C, KH, KW, N, OH, OW): g goes in as the (G, O/G, N·OH·OW)
            # that the forward GEMM yields (no copy then), and one pass scatters the columns
            # into channel-major planes with the padding cropped
            g_grp = _to_groups(g, groups)
            per_block = _samples_per_block(n, c, (kh, kw), (oh, ow), g.dtype.itemsize)
            if TRANSPOSE_BY_BLOCKS and groups == 1 and per_block:
                # a few samples at a time, the columns staying in cache (see BLOCK_K)
                x = np.empty((c, n) + tuple(x_shape[2:]), dtype=g.dtype)
                fk.transpose_by_blocks(g_grp[0], np.ascontiguousarray(w_g[0].T),
                                       x.reshape(c * n, *x_shape[2:]), 1, n, n, per_block,
                                       (c, kh, kw), (oh, ow), stride, dilation, padding[0],
                                       padding[2])
                return x.transpose(1, 0, 2, 3)
            cols = workspace((groups, (c // groups) * kh * kw, n * oh * ow), g.dtype)
            _blas.matmul(w_g.transpose(0, 2, 1), g_grp, out=cols)
            x = np.empty((c, n) + tuple(x_shape[2:]), dtype=g.dtype)
            fk.col2im(cols.reshape(c, kh, kw, n, oh, ow), x.reshape(c * n, *x_shape[2:]), 1, n,
                      stride, dilation, padding[0], padding[2])
            release(cols)
            return x.transpose(1, 0, 2, 3)
        # g as (G, O/G, OH·OW·N): the GEMM then yields columns in col2im's batch-last layout
        g_t = np.ascontiguousarray(g.transpose(1, 2, 3, 0)).reshape(groups, o // groups, -1)
        cols = workspace((groups, (c // groups) * kh * kw, oh * ow * n), g.dtype)
        _blas.matmul(w_g.transpose(0, 2, 1), g_t, out=cols)  # (G, C'·KH·KW, OH·OW·N): one GEMM
        padded_hw, _ = _geometry(x_shape, (kh, kw), stride, padding, dilation)
        xp = col2im(cols.reshape(c, kh, kw, oh, ow, n), padded_hw, stride, dilation)
        release(cols)  # (C, Hp, Wp, N) above
        top, _, left, _ = padding
        return xp.transpose(3, 0, 1, 2)[:, :, top : top + x_shape[2], left : left + x_shape[3]]

    @staticmethod
    def backward(ctx, grad_out):
        g, weight = ctx.saved_tensors
        need_g, need_w = ctx.needs_input_grad
        stride, padding, dilation, groups = ctx.args
        grad_g = grad_w = None
        if need_g:
            grad_g = Conv.apply(grad_out, weight, None, stride=stride, padding=padding,
                                dilation=dilation, groups=groups)
        if need_w:
            grad_w = ConvWeightGrad.apply(grad_out, g, kernel=weight.shape[2:], stride=stride,
                                          padding=padding, dilation=dilation, groups=groups)
        return grad_g, grad_w


class ConvWeightGrad(Function):
    """w = ConvWeightGrad(x, g), the adjoint of Conv in its weight:
    w[o,c,p,q] = Σ_{n,i,j} g[n,o,i,j]·x̃[n, gC' + c, i·sₕ + p·dₕ, j·s_w + q·d_w];
    ∂L/∂x = ConvTranspose(g, G), ∂L/∂g = Conv(x, G). Fused for the same reason as Conv.
    """

    @staticmethod
    def forward(ctx, x, g, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0),
                dilation=(1, 1), groups=1, cols=None):
        ctx.args = (stride, padding, dilation, groups)
        ctx.save_for_backward(x, g)
        o = g.shape[1]
        own = cols is None  # not cached by Conv.forward (e.g. a second backward)
        if own:
            plan = _sample_blocks(x, g, tuple(kernel), groups, g.shape[2:])
            if plan is not None:
                w = _weight_grad_by_blocks(plan, g, stride, padding, dilation)
                return w.reshape(o, x.shape[1], kernel[0], kernel[1])
        if own:
            cols, _ = _im2col(x, tuple(kernel), stride, padding, dilation, groups)
        # the one GEMM, as cols·gᵀ transposed back: OpenBLAS packs this orientation of a
        # long-K product faster (LeNet: 0.44 against 0.63 ms for conv1, 0.27 against 0.44)
        w = _blas.matmul(cols, _to_groups(g, groups).transpose(0, 2, 1)).transpose(0, 2, 1)
        if own:
            release(cols)
        return w.reshape(o, x.shape[1] // groups, kernel[0], kernel[1])

    @staticmethod
    def backward(ctx, grad_out):
        x, g = ctx.saved_tensors
        need_x, need_g = ctx.needs_input_grad
        stride, padding, dilation, groups = ctx.args
        grad_x = grad_g = None
        if need_x:
            grad_x = ConvTranspose.apply(g, grad_out, x_shape=x.shape, stride=stride,
                                         padding=padding, dilation=dilation, groups=groups)
        if need_g:
            grad_g = Conv.apply(x, grad_out, None, stride=stride, padding=padding,
                                dilation=dilation, groups=groups)
        return grad_x, grad_g


# --- pooling ---


def _overlapping(kernel, stride, dilation) -> bool:
    return any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))


class MaxPool(Function):
    """y[n,c,i,j] = max over the window of x̃ (x padded with -inf), and the flat index h·W + w
    of the first maximum (an int64 output, not differentiable);
    ∂L/∂x = G scattered to those indices (PoolScatter). Fused for speed: a running max over
    KH·KW strided views instead of KH·KW maximum nodes.
    """

    @staticmethod
    def forward(ctx, x, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)):
        n, c, h, w = x.shape
        _, out_hw = _geometry(x.shape, kernel, stride, padding, dilation)
        ctx.x_shape = x.shape
        ctx.overlapping = _overlapping(kernel, stride, dilation)
        fk, planes = _fast_planes(x)
        if fk is not None:
            # one pass: max and index together, no -inf padded copy, planes in x's order
            (xp, (n_stride, c_stride)), = planes
            y = np.empty((xp.shape[0],) + out_hw, dtype=x.dtype)
            index = np.empty(y.shape, dtype=np.int64)
            fk.max_pool(xp, y, index, kernel, stride, dilation, padding[0], padding[2])
            shape = (n, c) + out_hw
            if n_stride == 1:  # channel-major: hand back (N, C, ...) views
                y = y.reshape(c, n, *out_hw).transpose(1, 0, 2, 3)
                index = index.reshape(c, n, *out_hw).transpose(1, 0, 2, 3)
            else:
                y, index = y.reshape(shape), index.reshape(shape)
            ctx.save_for_backward(index)
            ctx.mark_non_differentiable(index)
            return y, index
        win = windows(pad2d(x, padding, -np.inf), kernel, stride, dilation, out_hw)
        # running max over the KH·KW window offsets (strided views, no copy of the windows);
        # a strict > keeps the first maximum, as argmax and PyTorch do; np.maximum keeps NaN
        kk = kernel[0] * kernel[1]
        y = win[..., 0, 0].copy()
        arg = np.zeros(y.shape, dtype=np.uint8 if kk <= 256 else np.int32)
        step = np.empty_like(arg)
        for k in range(1, kk):
            v = win[..., k // kernel[1], k % kernel[1]]
            better = np.greater(v, y)
            np.maximum(y, v, out=y)
            # arg = k where better: k exceeds every earlier offset, so a max does it without
            # the unpredictable branches of a masked copy (3x faster)
            np.multiply(better, k, out=step, casting="unsafe")
            np.maximum(arg, step, out=arg)
        plan = pool_index_plan((h, w), tuple(kernel), tuple(stride), tuple(padding),
                               tuple(dilation), out_hw)
        slot = np.arange(out_hw[0] * out_hw[1]).reshape(out_hw) * kk
        index = plan.reshape(-1)[slot + arg]
        ctx.save_for_backward(index)
        ctx.mark_non_differentiable(index)
        return y, index

    @staticmethod
    def backward(ctx, grad_out, _grad_index=None):
        (index,) = ctx.saved_tensors
        return PoolScatter.apply(grad_out, index.data, x_shape=ctx.x_shape,
                                 overlapping=ctx.overlapping)


class PoolScatter(Function):
    """x = zeros(x_shape); x[n, c, index[n,c,i,j]] += g[n,c,i,j] (flat h·W + w positions);
    ∂L/∂g = G gathered at index. The backward of MaxPool, linear in g.
    """

    @staticmethod
    def forward(ctx, g, index, x_shape=(), overlapping=True):
        n, c = g.shape[:2]
        ctx.g_shape, ctx.x_shape = g.shape, x_shape
        ctx.save_for_backward(index)
        fk, planes = _fast_planes(g)
        index_planes = _planes(index) if fk is not None and index.dtype == np.int64 else None
        if index_planes is not None:
            # one pass over the planes, each owned by one thread: no flat index array and no
            # bincount; out takes index's plane order (the pooled input's)
            (gp, g_strides), = planes
            ip, i_strides = index_planes
            h, w = x_shape[2:]
            out = np.empty((ip.shape[0], h * w), dtype=g.dtype)
            fk.pool_scatter(gp, g_strides, ip, i_strides, out, i_strides, n, c)
            if i_strides[0] == 1:
                return out.reshape(c, n, h, w).transpose(1, 0, 2, 3)
            return out.reshape(x_shape)
        flat = scatter_flat(g.reshape(n, c, -1), index.reshape(n, c, -1),
                            x_shape[2] * x_shape[3], overlapping)
        return flat.reshape(x_shape)

    @staticmethod
    def backward(ctx, grad_out):
        (index,) = ctx.saved_tensors
        n, c = ctx.g_shape[:2]
        flat = grad_out.reshape(n, c, -1)
        return gather(flat, 2, index.data.reshape(n, c, -1)).reshape(ctx.g_shape), None


def _avg_divisor(x_shape, kernel, stride, padding, count_include_pad, divisor_override, dtype):
    """1 / the divisor of each window, as PyTorch: the window clipped to the padded input
    (count_include_pad) or to the real pixels; ``padding`` may carry ceil_mode's extra bottom /
    right rows, which never count. A scalar when every window has the same divisor."""
    if divisor_override:
        return dtype.type(1.0 / divisor_override)
    _, out_hw = _geometry(x_shape, kernel, stride, padding, (1, 1))
    counts = []
    for size, k, s, p, n in zip(x_shape[2:], kernel, stride, padding[::2], out_hw):
        lo, hi = (-p, size + p) if count_include_pad else (0, size)
        start = np.arange(n) * s - p
        counts.append(np.minimum(start + k, hi) - np.maximum(start, lo))
    div = counts[0][:, None] * counts[1][None, :]
    if (div == kernel[0] * kernel[1]).all():
        return dtype.type(1.0 / (kernel[0] * kernel[1]))
    return (1.0 / div).astype(dtype)  # (OH, OW)


class AvgPool(Function):
    """y[n,c,i,j] = r[i,j]·Σ_window x̃ (x̃: x zero-padded; r: 1/KH·KW, or 1/(real pixels in
    the window) when count_include_pad=False, or 1/divisor_override);
    ∂L/∂x = AvgPoolGrad(G). Fused for speed (one sum over a window view).
    """

    @staticmethod
    def forward(ctx, x, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0),
                count_include_pad=True, divisor_override=None):
        ctx.x_shape = x.shape
        ctx.args = (kernel, stride, padding, count_include_pad, divisor_override)
        _, out_hw = _geometry(x.shape, kernel, stride, padding, (1, 1))
        r = _avg_divisor(x.shape, kernel, stride, padding, count_include_pad, divisor_override,
                         x.dtype)
        win = windows(pad2d(x, padding), kernel, stride, (1, 1), out_hw)
        return win.sum(axis=(-2, -1)) * r

    @staticmethod
    def backward(ctx, grad_out):
        return AvgPoolGrad.apply(grad_out, x_shape=ctx.x_shape, args=ctx.args)


class AvgPoolGrad(Function):
    """x̃ = col2im(r·g broadcast over each window), cropped to ``x_shape``: the adjoint of
    AvgPool, linear in g; ∂L/∂g = AvgPool(G)."""

    @staticmethod
    def forward(ctx, g, x_shape=(), args=()):
        ctx.args = args
        kernel, stride, padding, count_include_pad, divisor_override = args
        r = _avg_divisor(x_shape, kernel, stride, padding, count_include_pad, divisor_override,
                         g.dtype)
        padded_hw, _ = _geometry(x_shape, kernel, stride, padding, (1, 1))
        n, c, oh, ow = g.shape
        g_r = (g * r).transpose(1, 2, 3, 0)[:, None, None]
        cols = np.broadcast_to(g_r, (c, kernel[0], kernel[1], oh, ow, n))
        xp = col2im(cols, padded_hw, stride, (1, 1))
        top, _, left, _ = padding
        return xp.transpose(3, 0, 1, 2)[:, :, top : top + x_shape[2], left : left + x_shape[3]]

    @staticmethod
    def backward(ctx, grad_out):
        kernel, stride, padding, count_include_pad, divisor_override = ctx.args
        return AvgPool.apply(grad_out, kernel=kernel, stride=stride, padding=padding,
                             count_include_pad=count_include_pad,
                             divisor_override=divisor_override)


from backprop.ops.shape import gather  # noqa: E402
