"""numba kernels of cross-entropy over class indices (``ops.nn_ops.CrossEntropy``): the row
maxima, row sums, log-probabilities, the loss sum and the gradient, each one pass.

The NumPy path is about fifteen calls on small arrays for an (N, C) batch of logits (a 128x10
batch: 29 µs alone, 70-100 µs inside the MNIST MLP's training step, where the products before
it have pushed NumPy's code and data out of the caches); the max along a short row alone took
8 µs. Here the forward is three kernels and NumPy's ``exp`` and ``log`` between them, the
backward NumPy's ``exp`` and one kernel.

Same bits as the NumPy path: ``exp`` and ``log`` stay NumPy's (numba's differ in the last bit
for about a third of float32 inputs), the sums repeat NumPy's pairwise summation in its order
(``_pairwise``: eight running sums in blocks up to 128 elements, halves above, added to the
identity 0), and every other operation is NumPy's, in its order, rounded to the array's dtype
(no fastmath, so no fused multiply-add).
"""

from __future__ import annotations

import numba
import numpy as np

# error_model="numpy": no ZeroDivisionError checks in the loops; no fastmath (see _jit.py)
jit = numba.njit(cache=True, nogil=True, error_model="numpy")

_BLOCK = 128  # NumPy's PW_BLOCKSIZE


@jit
def _block(a, start, n):
    """NumPy's pairwise sum of a[start:start + n] for n <= 128 (one of its leaves)."""
    if n < 8:
        res = a.dtype.type(0)
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@jit
def _pairwise(a, start, n):
    """NumPy's pairwise sum of a[start:start + n] (a 1-D array), without the identity: leaves
    of at most 128 elements (``_block``), longer runs split in two halves (the first a multiple
    of 8 long) and their sums added. NumPy recurses; numba's on-disk cache crashes on recursive
    kernels, so the tree is walked here with explicit stacks (a task of length -1: add the two
    sums on top)."""
    if n <= _BLOCK:
        return _block(a, start, n)
    starts = np.empty(192, np.int64)
    lengths = np.empty(192, np.int64)
    sums = np.empty(96, a.dtype)
    top = 0
    starts[0], lengths[0] = start, n
    tasks = 1
    while tasks:
        tasks -= 1
        s, m = starts[tasks], lengths[tasks]
        if m < 0:  # both halves summed: left below right
            top -= 1
            sums[top - 1] = sums[top - 1] + sums[top]
        elif m <= _BLOCK:
            sums[top] = _block(a, s, m)
            top += 1
        else:
            half = m // 2
            half -= half % 8
            starts[tasks], lengths[tasks] = 0, -1  # after both halves
            starts[tasks + 1], lengths[tasks + 1] = s + half, m - half  # then the right
            starts[tasks + 2], lengths[tasks + 2] = s, half  # the left first
            tasks += 3
    return sums[0]


@jit
def shift_by_row_max(x, target, ignore_index, y):
    """y = x - max(x, axis=1) for x, y (N, C) C-contiguous, as NumPy computes it (a NaN in a
    row makes its maximum NaN). First checks every target is a class index in [0, C) other than
    ``ignore_index``: returns how many are not, leaving y untouched when any is (the caller
    then takes the NumPy path, which masks ignored targets and raises on bad ones)."""
    n, c = x.shape
    bad = 0
    for i in range(n):
        t = target[i]
        if t < 0 or t >= c or t == ignore_index:
            bad += 1
    if bad:
        return bad
    for i in range(n):
        m = x[i, 0]
        for j in range(1, c):
            v = x[i, j]
            if v > m or v != v:
                if m == m:
                    m = v
        for j in range(c):
            y[i, j] = x[i, j] - m
    return 0


@jit
def row_sums(e, out):
    """out[i] = np.sum(e[i]) for e (N, C) C-contiguous: NumPy's pairwise order, from 0."""
    n, c = e.shape
    flat = e.reshape(-1)
    zero = e.dtype.type(0)
    for i in range(n):
        out[i] = zero + _pairwise(flat, i * c, c)


@jit
def finish_log_softmax(y, log_sums, target, picked):
    """y[i] -= log_sums[i] (the log-probabilities, in place); picked[i] = y[i, target[i]];
    returns np.sum(picked) (NumPy's pairwise order, from 0)."""
    n, c = y.shape
    for i in range(n):
        s = log_sums[i]
        for j in range(c):
            y[i, j] = y[i, j] - s
        picked[i] = y[i, target[i]]
    return y.dtype.type(0) + _pairwise(picked, 0, n)


@jit
def grad_from_probs(p, target, scale, g):
    """The gradient, in place of p = exp(log p) (N, C): ((p·k) - k·[j = tᵢ])·gᵢ with k the
    coefficient every target carries (1/N for 'mean', 1 otherwise) and g (N,) the incoming
    gradient per row (one value repeated for a reduced loss), NumPy's operations in order."""
    n, c = p.shape
    for i in range(n):
        t = target[i]
        gi = g[i]
        for j in range(c):
            v = p[i, j] * scale
            if j == t:
                v = v - scale
            p[i, j] = v * gi
