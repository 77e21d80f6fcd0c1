"""Keep freed memory in the process while training: no page faults for the next step's arrays.

Every op returns a fresh NumPy array. glibc's malloc serves large ones (above its mmap
threshold, 128 KiB to begin with) from fresh pages, and gives freed memory back to the kernel,
so each step faults its big arrays in again: about 800 page faults and 1 ms a step for LeNet-5
at batch 64 (measured on the 2-core machine of docs/benchmarks.md; the whole step went from
11.8 to 9.4 ms with the settings below). Raising the mmap threshold to 64 MiB and the trim
threshold to 256 MiB makes malloc reuse the freed blocks instead, as PyTorch's and
TensorFlow's caching allocators do for their tensors. The cost: up to that much freed memory
stays with the process until it exits (a training run's peak is kept anyway).

Process-wide, so only training sets it: the first backward pass (``autograd.engine.backward``:
``loss.backward()`` in a user's own loop; the eager LSTM step of ``benchmarks/bench_lstm.py``
went from 14-16.5 to 8.9 ms, its 4 MB input projection faulted in afresh every step), the
training product (``Trainer.fit``, and so ``backprop train``) and a step's first capture by
``backprop.compile`` (the LeNet-5 and LSTM steps of ``benchmarks/bench_compile.py`` took 0.81x
their time with it). As PyTorch's caching allocator keeps its tensors' memory, so this keeps
freed memory with the process. ``BACKPROP_MALLOC=default`` leaves malloc alone. Only glibc has
these settings: elsewhere (macOS, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20
TOP_PAD = 64 << 20

_done: bool | None = None


def retain_freed_memory() -> bool:
    """Set glibc's malloc to keep and reuse freed blocks (once per process); True when it is
    set, False where it cannot be (not glibc) or ``BACKPROP_MALLOC=default`` says not to."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("BACKPROP_MALLOC", "").strip().lower() == "default":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only (musl has no mallopt settings)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                 and mallopt(_M_TOP_PAD, TOP_PAD))
    return _done
