"""What every kernel module shares: numba's decorators with our settings, and how a parallel
kernel is launched.

Imported only by kernel modules, so only when the fast path is on.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba

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
# the workqueue layer aborts the process when two threads launch parallel kernels at once
_launch_lock = threading.Lock()


def threads_for(n: int) -> int:
    """The thread count for a kernel over ``n`` elements, from the size only (never load): one
    thread below ``PARALLEL_MIN`` elements, every core from there up."""
    return _all_threads if n >= PARALLEL_MIN else 1


@contextlib.contextmanager
def launch(n: int):
    """Run one parallel kernel over ``n`` elements: sets numba's thread count by
    ``threads_for`` and yields it (kernels split their work into that many blocks), holding a
    lock so that parallel launches from several Python threads take turns."""
    k = threads_for(n)
    with _launch_lock:
        numba.set_num_threads(k)
        yield k
