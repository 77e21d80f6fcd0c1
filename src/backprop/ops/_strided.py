"""The NumPy-only array tricks of convolution and pooling, kept in one place.

Sliding windows are read through a stride view (no copy) and written back with one strided
slice per kernel offset (col2im). An array backend without ``as_strided`` (or with a faster
native im2col) replaces this module only; the ops in ``conv.py`` call nothing else of the kind.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

# --- workspaces ---
# im2col columns are the largest arrays of a CNN step (25x a 5x5 conv's input). A fresh
# allocation of that size is returned to the OS when freed and page-faulted back in on the next
# step (~3,000 faults, several ms per LeNet step), so the columns, whose lifetime the ops know
# exactly, are recycled here: a tiny caching allocator (a CuPy backend would use its own pool).
_MAX_FREE = 2  # buffers kept per (shape, dtype)
_free: dict[tuple, list] = {}


def workspace(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array, reusing a released buffer of the same size and dtype."""
    dtype = np.dtype(dtype)
    buffers = _free.get((int(np.prod(shape)), dtype))
    if buffers:
        try:
            return buffers.pop().reshape(shape)
        except IndexError:  # emptied by another thread meanwhile
            pass
    return np.empty(shape, dtype)


def release(buffer: np.ndarray) -> None:
    """Give back a ``workspace`` array (or a view of it) that nothing else references."""
    while buffer.base is not None:
        buffer = buffer.base
    buffers = _free.setdefault((buffer.size, buffer.dtype), [])
    if len(buffers) < _MAX_FREE:
        buffers.append(buffer)


@functools.lru_cache(maxsize=256)
def out_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Number of window positions along one axis (PyTorch's floor formula)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def pad2d(x: np.ndarray, padding: tuple, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes by ``(top, bottom, left, right)`` (no copy when all are 0)."""
    top, bottom, left, right = padding
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def windows(xp: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple,
            out_hw: tuple) -> np.ndarray:
    """A read-only view (N, C, OH, OW, KH, KW) of the windows of a padded (N, C, H, W) array."""
    n, c = xp.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(
        xp,
        shape=(n, c, out_hw[0], out_hw[1], kernel[0], kernel[1]),
        strides=(s_n, s_c, s_h * stride[0], s_w * stride[1], s_h * dilation[0],
                 s_w * dilation[1]),
        writeable=False,
    )


def col2im(cols: np.ndarray, padded_hw: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """The adjoint of the im2col copy: sum columns (C, KH, KW, OH, OW, N) back into a zeroed
    (C, Hp, Wp, N) array. One strided slice per kernel offset (KH·KW adds), no loop over pixels
    or samples, and overlapping windows accumulate correctly (unlike a write through a view).
    The batch axis is innermost so that each add runs over rows of N contiguous values (twice
    as fast as OW-long rows for MNIST-sized maps)."""
    c, kh, kw, oh, ow, n = cols.shape
    out = np.zeros((c,) + tuple(padded_hw) + (n,), dtype=cols.dtype)
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        h0 = i * dh
        rows = slice(h0, h0 + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            w0 = j * dw
            out[:, rows, w0 : w0 + sw * (ow - 1) + 1 : sw] += cols[:, i, j]
    return out


@functools.lru_cache(maxsize=128)
def pool_index_plan(hw: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
                    out_hw: tuple) -> np.ndarray:
    """For each (OH, OW, KH·KW) window slot, the flat index h·W + w into the unpadded input
    (-1 where the slot falls in the padding). Cached per shape: built once per layer shape."""
    h, w = hw
    oh = np.arange(out_hw[0]) * stride[0] - padding[0]
    ow = np.arange(out_hw[1]) * stride[1] - padding[2]
    rows = oh[:, None, None, None] + np.arange(kernel[0])[None, None, :, None] * dilation[0]
    cols = ow[None, :, None, None] + np.arange(kernel[1])[None, None, None, :] * dilation[1]
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = np.where(valid, rows * w + cols, -1)
    flat = flat.reshape(out_hw[0], out_hw[1], kernel[0] * kernel[1])
    flat.setflags(write=False)
    return flat


def scatter_flat(values: np.ndarray, index: np.ndarray, size: int,
                 overlapping: bool) -> np.ndarray:
    """out[n, c, index[n, c, k]] += values[n, c, k] for out of shape (N, C, size).

    Without overlap (every index distinct per (n, c)) this is one flat fancy assignment (twice as
    fast as ``put_along_axis``); with overlap, one ``bincount`` over the flattened positions
    (far faster than ``np.add.at``)."""
    n, c = values.shape[:2]
    flat = (index + (np.arange(n * c) * size).reshape(n, c, 1)).ravel()
    if not overlapping:
        out = np.zeros(n * c * size, dtype=values.dtype)
        out[flat] = values.ravel()
        return out.reshape(n, c, size)
    summed = np.bincount(flat, weights=values.ravel(), minlength=n * c * size)
    return summed.astype(values.dtype, copy=False).reshape(n, c, size)


def diagonal_view(x: np.ndarray, offset: int, dim1: int, dim2: int) -> np.ndarray:
    """A writable view of a diagonal (PyTorch's ``diagonal``: the other axes first, the diagonal
    last). NumPy's own ``diagonal`` is read-only, so in-place changes could not reach ``x``."""
    index = [slice(None)] * x.ndim
    if offset >= 0:
        index[dim2] = slice(offset, None)
    else:
        index[dim1] = slice(-offset, None)
    sub = x[tuple(index)]
    length = max(0, min(sub.shape[dim1], sub.shape[dim2]))
    rest = [d for d in range(x.ndim) if d not in (dim1, dim2)]
    return as_strided(
        sub,
        shape=tuple(sub.shape[d] for d in rest) + (length,),
        strides=tuple(sub.strides[d] for d in rest) + (sub.strides[dim1] + sub.strides[dim2],),
        writeable=x.flags.writeable,
    )
