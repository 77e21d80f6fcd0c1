"""What every kernel module shares: numba's decorators with our settings, and the thread rule.

Imported only by kernel modules, so only when the fast path is on.
"""

from __future__ import annotations

import numba

from backprop._fast import PARALLEL_MIN

# No fastmath: the kernels must agree with NumPy to float rounding, and fastmath would let LLVM
# reassociate sums and flush subnormals. cache=True keeps compiled kernels across processes.
jit = numba.njit(cache=True, nogil=True)
parallel_jit = numba.njit(cache=True, nogil=True, parallel=True)
prange = numba.prange

_all_threads = numba.config.NUMBA_NUM_THREADS


def threads_for(n: int) -> None:
    """Set the thread count of the next parallel kernel from its work size only (never load):
    one thread below ``PARALLEL_MIN`` elements, every core from there up."""
    numba.set_num_threads(_all_threads if n >= PARALLEL_MIN else 1)
