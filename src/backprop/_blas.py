"""How many threads NumPy's BLAS uses for each matrix product: a size threshold, never load.

Multi-threaded OpenBLAS on small and medium matrices is slow when other processes hold the
cores: its threads spin-wait at every synchronisation point while they (or the thread they
wait for) are descheduled. Measured on the 2-core VM of docs/benchmarks.md with other work
running, the 784-512-256-10 MLP step took 2x as long with 2 BLAS threads as with 1, and every
GEMM from 32x128x512 to 1024x1024x1024 was slower with 2. So, by default, a product below
``LARGE_MACS`` multiply-adds runs on one thread and a larger one on the BLAS's own default
count. The choice depends on the operands' sizes and the settings only, never on measured load:
runs stay reproducible bit for bit. (Another thread count may change the last bits: OpenBLAS
splits the sums of some products between threads, e.g. the MNIST MLP's 128x784 @ 784x512.)

Two cores without the BLAS's threads (``matmul``, under ``auto``): a product from ``SPLIT_MACS``
up to ``LARGE_MACS`` is cut into two blocks of columns (of rows when it has too few columns);
the calling thread computes the first while a helper thread computes the second
(``backprop._pair``, which lets the caller take the block back when the helper has not started
it; with the fast path the helper runs it from compiled code without the GIL), each a
one-thread BLAS call. Cutting the columns halves the operand the
BLAS packs: on the MNIST MLP's shapes each block took 49-52% of the whole product's time on one
thread (a row cut leaves each thread packing all of B: 53-58%), and the step's five products
0.74x their one-thread time. The cut depends on the shapes only, and each block is the same
one-thread BLAS call whichever thread runs it, so results repeat bit for bit (and, with
OpenBLAS, mostly equal the uncut product's: not always, e.g. float64 37x1000 @ 1000x300 differs
in the last bit). Where the BLAS's own default is at most two threads (what
the pair gives anyway), products from ``LARGE_MACS`` up are cut the same way instead of waking
the BLAS's pool: its threads spin for a while after every call, and beside the pair's helper
(the recurrent kernels' batch halves) that made the benchmark LSTM step 1.26x slower, where
cutting its 132-million weight-gradient product too made it 0.75x the old time (measured).

Settings (environment, read at the first product; or ``set_blas_threads``):
    ``BACKPROP_BLAS_THREADS=auto`` (default): the size rules above.
    ``BACKPROP_BLAS_THREADS=N``: always N BLAS threads, no cut; with N = 1 the ``[fast]``
    kernels' pairs (``pairs_allowed``) stay on the calling thread too: everything on one.
    ``BACKPROP_BLAS_THREADS=default``: leave the BLAS alone (``OMP_NUM_THREADS`` and friends).

A dense layer (``linear``, for Addmm) is cut the same way, each thread then adding the bias to
its block (and ReLU, when the compiled step fuses the two) while the block is in its cache.

threadpoolctl does the switching; where it cannot see NumPy's BLAS nothing changes (no cut
either, since each block would run on every BLAS thread).
"""

from __future__ import annotations

import os

import numpy as np

from backprop import _fast, _pair

LARGE_MACS = 1 << 26
"""Products with at least this many multiply-adds (m·n·k, about 67 million: 512x512x256) use
every BLAS thread; smaller ones one thread. (Under ``auto`` with a BLAS of at most two threads,
``matmul`` cuts them in two blocks instead.)"""

SPLIT_MACS = 1 << 22
"""Products from this many multiply-adds (about 4 million, 128x128x256) up to ``LARGE_MACS`` run
as two blocks on two threads under the ``auto`` setting (``matmul``). Smaller ones would post
the helper too little work: at worst the caller takes the block back, but each post costs a
few microseconds. (LeNet-5's first convolution, 6x25x50176 = 7.5 million, gains from the cut,
being slow for its size: the compiled step took 0.89x the time with this threshold than with
2^23.)"""
SPLIT_COLS = 64
"""The fewest output columns a product needs to be cut in two column blocks (the left one a
multiple of 16 wide); with fewer, and at least this many rows, it is cut into two row blocks."""

_lib = None  # threadpoolctl's controller of NumPy's BLAS (None: not found)
_default = 1  # the BLAS's own thread count when first seen
_current = None  # threads set now (None: not initialised yet; -1: unknown)
_small = _large = 1  # threads for a product below / from LARGE_MACS
_enabled = False
_split = False  # cut products between SPLIT_MACS and LARGE_MACS into two blocks
_cut_large = False  # ... and larger ones too, instead of waking the BLAS's own threads
_one_thread = False  # the setting is 1: backprop's own kernels stay on one thread too


def _init() -> None:
    global _lib, _default, _current
    _current = -1
    try:
        from threadpoolctl import ThreadpoolController

        libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    except Exception:  # threadpoolctl missing, or unable to inspect this process
        libs = []
    if libs:
        # NumPy's own BLAS (another library, e.g. torch's MKL, may be loaded too)
        libs.sort(key=lambda c: "numpy" not in c.filepath)
        _lib = libs[0]
        _default = _lib.num_threads
    setting = os.environ.get("BACKPROP_BLAS_THREADS", "auto").strip().lower()
    if setting not in ("auto", "default"):
        try:
            setting = int(setting)
        except ValueError:
            setting = 0
    try:
        _apply(setting)
    except ValueError:
        # not a ValueError: matmul turns those into shape messages
        raise RuntimeError(f"BACKPROP_BLAS_THREADS must be 'auto', 'default' or a positive "
                         f"integer, got {os.environ['BACKPROP_BLAS_THREADS']!r}") from None


def _apply(threads, cap: int | None = None) -> None:
    global _small, _large, _enabled, _current, _split, _one_thread, _cut_large
    _split = _cut_large = False
    _one_thread = threads == 1 and not isinstance(threads, bool)
    if threads == "auto":
        _small, _large = 1, _default if cap is None else min(_default, cap)
        _split = _lib is not None and _pair.available()
        _cut_large = _split and _large <= 2
    elif isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        _small = _large = threads
    elif threads == "default":
        if _lib is not None and _current not in (None, -1, _default):
            _lib.set_num_threads(_default)
        _enabled = False
        _current = -1
        return
    else:
        raise ValueError(f"set_blas_threads: expected 'auto', 'default' or a positive int, "
                         f"got {threads!r}")
    _enabled = _lib is not None
    _current = -1


def pairs_allowed() -> bool:
    """True when backprop's own kernels may run as two blocks on two threads (``_pair``):
    there are two cores or more and the setting is not 1 (``BACKPROP_BLAS_THREADS=1`` or
    ``set_blas_threads(1)`` keeps everything on the calling thread)."""
    if _current is None:
        _init()
    return not _one_thread and _pair.available()


def pairs_of_products_allowed(macs: int) -> bool:
    """True when two threads (``_pair``) may each run BLAS products of ``macs`` multiply-adds:
    pairs are allowed and such a product runs on one BLAS thread (with BLAS threads in each
    half, under a fixed count or the BLAS left alone, the two would fight)."""
    return pairs_allowed() and blas_threads_for(macs) == 1


def gemm_threads(macs: int) -> None:
    """Set the BLAS thread count for a product of ``macs`` multiply-adds (call before it)."""
    global _current
    if _current is None:
        _init()
    if not _enabled:
        return
    want = _large if macs >= LARGE_MACS else _small
    if want != _current:
        _lib.set_num_threads(want)
        _current = want


def set_blas_threads(threads: int | str = "auto") -> None:
    """Choose the BLAS thread policy: ``"auto"`` (one thread below ``LARGE_MACS``
    multiply-adds, the BLAS's default count above), an int (always that many) or
    ``"default"`` (leave the BLAS as ``OMP_NUM_THREADS`` and friends configured it).

    Example:
        >>> import backprop as bp
        >>> bp.set_blas_threads(1)  # every product on one thread
        >>> bp.set_blas_threads("auto")
    """
    if _current is None:
        _init()
    _apply(threads)


def set_num_threads(threads: int) -> None:
    """Use at most ``threads`` threads for backprop's work (PyTorch's ``torch.set_num_threads``):
    1 keeps every product and kernel on the calling thread (``set_blas_threads(1)``); 2 or more
    is the ``auto`` policy with the BLAS's large products on at most ``threads`` threads (the
    two-block products and kernels use two). The choice never depends on load.

    Example:
        >>> import backprop as bp
        >>> bp.set_num_threads(1)
        >>> bp.get_num_threads()
        1
        >>> bp.set_num_threads(2)
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {threads!r} "
                         f"(e.g. bp.set_num_threads(1) for one thread)")
    if _current is None:
        _init()
    if threads == 1:
        _apply(1)
    else:
        _apply("auto", cap=threads)


def get_num_threads() -> int:
    """The most threads backprop's work uses under the current setting (PyTorch's
    ``torch.get_num_threads``): 1 after ``set_num_threads(1)``; under ``auto``, 2 on a machine
    with two cores or more (the two-block products and kernels), or the BLAS's thread count for
    large products if that is more; the BLAS's own count when it is left alone."""
    if _current is None:
        _init()
    if _one_thread:
        return 1
    pair = 2 if _pair.available() else 1
    if not _enabled:
        return max(_default, pair)
    if _small == _large:  # a fixed count (set_blas_threads(N))
        return _large
    return max(_large, pair)


def library_path() -> str | None:
    """The file of NumPy's BLAS as threadpoolctl found it (None when it cannot see it)."""
    if _current is None:
        _init()
    return None if _lib is None else _lib.filepath


def blas_threads_for(macs: int) -> int | None:
    """The thread count the current policy gives a product of ``macs`` multiply-adds (None
    when the BLAS is left alone or cannot be controlled)."""
    if _current is None:
        _init()
    if not _enabled:
        return None
    return _large if macs >= LARGE_MACS else _small


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` under the thread policy: the BLAS thread count for its size
    (``gemm_threads``), and from ``SPLIT_MACS`` to ``LARGE_MACS`` multiply-adds under ``auto``
    (and above, with a BLAS of at most two threads), the two blocks of the module docstring.
    a (m, k) or (1, m, k), b (k, n) or (1, k, n) for a cut; any shapes ``np.matmul`` takes
    otherwise."""
    if _current is None:
        _init()
    nd = a.ndim
    if not _split or nd != b.ndim or nd not in (2, 3) or (nd == 3 and (a.shape[0] != 1
                                                                       or b.shape[0] != 1)):
        gemm_threads(a.size * (b.shape[-1] if b.ndim > 1 else 1))
        return np.matmul(a, b, out=out)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    macs = m * k * n
    if (macs < SPLIT_MACS or (macs >= LARGE_MACS and not _cut_large) or max(m, n) < SPLIT_COLS
            or b.shape[-2] != k or a.dtype != b.dtype or a.dtype.char not in "fd"):
        gemm_threads(macs)
        return np.matmul(a, b, out=out)
    gemm_threads(1)  # each block is a one-thread BLAS call
    if out is None:
        out = np.empty(a.shape[:-2] + (m, n), dtype=a.dtype)
    if nd == 3:
        a, b, out2 = a[0], b[0], out[0]
    else:
        out2 = out
    if n >= SPLIT_COLS:
        h = (n // 2 + 15) // 16 * 16
        _two_blocks(a, b[:, :h], out2[:, :h], a, b[:, h:], out2[:, h:])
    else:  # too few columns (a convolution's weight gradient): two blocks of rows
        h = (m // 2 + 15) // 16 * 16
        _two_blocks(a[:h], b, out2[:h], a[h:], b, out2[h:])
    return out


def linear(x, w, b, relu: bool = False):
    """A dense layer's output act(x @ wᵀ + b) (act: ReLU when ``relu``, else none) as
    ``matmul``'s two column blocks, each thread adding the bias to its block (and ReLU) right
    after computing it, while the block is in its core's cache (``_pair_gemm.bias_act``); None
    when that does not apply (the caller then computes the product and adds b itself).
    x (n, k), w (m, k), b (m,) -> (n, m).

    The same products as ``matmul(x, w.T)`` and the same additions as ``y += b``, so the same
    bits; it saves the pass that reads the whole output back on one thread (half of it from
    the other core's cache) to add the bias, and ReLU's. Applies where ``matmul`` would cut the
    product in column blocks, with the fast path's GIL-free helper (``_pair.run_products``)
    and one float dtype."""
    if _current is None:
        _init()
    if not _split or x.ndim != 2 or w.ndim != 2 or b.ndim != 1:
        return None
    n, k = x.shape
    m = w.shape[0]
    macs = n * k * m
    if (macs < SPLIT_MACS or (macs >= LARGE_MACS and not _cut_large) or m < SPLIT_COLS
            or w.shape[1] != k or b.shape[0] != m or not (x.dtype == w.dtype == b.dtype)
            or x.dtype.char not in "fd"):
        return None
    addr = _gemm_address(x.dtype)
    if not addr:
        return None
    gemm_threads(1)
    h = (m // 2 + 15) // 16 * 16
    y = np.empty((n, m), dtype=x.dtype)
    wt = w.T
    epi = _fast.kernels("_pair_gemm")
    kind = epi.EPI_BIAS_RELU if relu else epi.EPI_BIAS
    if not _pair.run_products(x, wt[:, :h], y[:, :h], x, wt[:, h:], y[:, h:], addr,
                              (kind, b[:h], b[h:])):
        return None
    return y


def _two_blocks(a1, b1, out1, a2, b2, out2) -> None:
    """out1 = a1 @ b1 here and out2 = a2 @ b2 on the helper thread (backprop._pair)."""
    # With the fast path the helper runs its block from compiled code (``_pair.run_products``):
    # through Python it started 36-63 µs late, waiting for the GIL (an earlier helper that
    # polled without the GIL but still ran its block through Python was no faster). Otherwise,
    # or for operands the gemm cannot take as they are, each block is an np.matmul.
    if a1.dtype == out1.dtype and out2.dtype == out1.dtype:
        addr = _gemm_address(a1.dtype)
        if addr and _pair.run_products(a1, b1, out1, a2, b2, out2, addr):
            return
    _pair.run_pair(lambda: np.matmul(a1, b1, out=out1), lambda: np.matmul(a2, b2, out=out2))


def _gemm_address(dtype) -> int:
    """The fast path's address of NumPy's CBLAS gemm for ``dtype`` (0 without the fast path)."""
    gemm = _fast.kernels("_gemm")
    return 0 if gemm is None else gemm.address(dtype)
