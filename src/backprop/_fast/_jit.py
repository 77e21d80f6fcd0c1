"""What every kernel module shares: numba's decorators with our settings, and how a parallel
kernel is launched.

Imported only by kernel modules, so only when the fast path is on.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba

from backprop import _blas, _pair
from backprop._fast import PARALLEL_MIN

# numba's default OpenMP layer spins its threads between parallel regions; with other processes
# holding the cores every launch then waits for descheduled spinners (measured on the 2-core
# machine at load 3.6: 10.9 ms a launch against 3.0 ms on one thread). The workqueue layer
# sleeps instead: 3.0 ms there, and the same speed as OpenMP on a quiet machine. A user's own
# NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# No fastmath: the kernels must agree with NumPy to float rounding, and fastmath would let LLVM
# reassociate sums and flush subnormals. cache=True keeps compiled kernels across processes.
jit = numba.njit(cache=True, nogil=True)
parallel_jit = numba.njit(cache=True, nogil=True, parallel=True)
prange = numba.prange

_all_threads = numba.config.NUMBA_NUM_THREADS
# Parallel kernels pay only with threads that start at once: numba's OpenMP (or TBB) layer, which
# only the user can choose, since its spinning threads collapse when other processes hold the
# cores. On any other layer every kernel runs on the calling thread, its serial form.
parallel = os.environ.get("NUMBA_THREADING_LAYER", "").strip().lower() in ("omp", "tbb")
# the workqueue layer aborts the process when two threads launch parallel kernels at once
_launch_lock = threading.Lock()


def threads_for(n: int) -> int:
    """The thread count for a kernel over ``n`` elements, from the settings and the size only
    (never load): every core from ``PARALLEL_MIN`` elements up on a layer chosen for parallel
    kernels (``parallel``), one thread otherwise."""
    return _all_threads if parallel and n >= PARALLEL_MIN else 1


@contextlib.contextmanager
def launch(k: int):
    """Run one parallel kernel on ``k`` threads (from ``threads_for``): sets numba's thread
    count, holding a lock so that parallel launches from several Python threads take turns."""
    with _launch_lock:
        numba.set_num_threads(k)
        yield k


PAIR_MIN = 1 << 16
"""Elements from which a serial kernel runs as two blocks of planes, the second on
``backprop._pair``'s helper thread. Below, a block is a few microseconds of work; above, the
caller loses at most the post when the helper is slow to wake, since it takes the block back.
(LeNet-5 batch 64 compiled step: 0.91x its time with every kernel on one thread, 8 pairs of
runs; 2^16 and 2^18 measured alike.)"""


def in_two_blocks(serial, args: tuple, planes: int, size: int):
    """``serial(*args, p0, p1)`` over planes [0, planes) (``size`` elements in all): on the
    calling thread, or from ``PAIR_MIN`` elements as two blocks of planes on two threads, the
    second on ``backprop._pair``'s helper (each plane computed alike, so the same bits). A
    plane is whatever the kernel splits its work by: a convolution's image plane, a
    normalisation's channel."""
    if size >= PAIR_MIN and planes > 1 and _blas.pairs_allowed():
        h = planes // 2
        return _pair.run_pair(lambda: serial(*args, 0, h), lambda: serial(*args, h, planes))
    return serial(*args, 0, planes)
