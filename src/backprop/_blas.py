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

Settings (environment, read at the first product; or ``set_blas_threads``):
    ``BACKPROP_BLAS_THREADS=auto`` (default): the size rule above.
    ``BACKPROP_BLAS_THREADS=N``: always N threads.
    ``BACKPROP_BLAS_THREADS=default``: leave the BLAS alone (``OMP_NUM_THREADS`` and friends).

threadpoolctl (installed with scikit-learn) does the switching; without it nothing changes.
"""

from __future__ import annotations

import os

LARGE_MACS = 1 << 26
"""Products with at least this many multiply-adds (m·n·k, about 67 million: 512x512x256) use
every BLAS thread; smaller ones one thread."""

_lib = None  # threadpoolctl's controller of NumPy's BLAS (None: not found)
_default = 1  # the BLAS's own thread count when first seen
_current = None  # threads set now (None: not initialised yet; -1: unknown)
_small = _large = 1  # threads for a product below / from LARGE_MACS
_enabled = False


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


def _apply(threads) -> None:
    global _small, _large, _enabled, _current
    if threads == "auto":
        _small, _large = 1, _default
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


def blas_threads_for(macs: int) -> int | None:
    """The thread count the current policy gives a product of ``macs`` multiply-adds (None
    when the BLAS is left alone or cannot be controlled)."""
    if _current is None:
        _init()
    if not _enabled:
        return None
    return _large if macs >= LARGE_MACS else _small
