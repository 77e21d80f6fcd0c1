"""Two threads for one piece of work: the caller's and one helper thread of ours.

``run_pair(first, second)`` runs ``first()`` on the calling thread while a helper thread runs
``second()``, and returns when both are done. The two must write to disjoint memory and release
the GIL while they work (a BLAS call through NumPy, a ``nogil`` numba kernel), or nothing runs
in parallel. Users: ``_blas.matmul`` (a product's two column blocks) and the ``[fast]``
convolution and pooling kernels (two blocks of planes).

Why not the BLAS's or numba's own threads: those spin while they wait for each other, and when
other processes hold the cores a descheduled thread stalls every launch (docs/benchmarks.md:
the MNIST MLP step twice as slow with two OpenBLAS threads on a busy machine, numba's OpenMP
kernels 35-55 ms a LeNet-5 step). Here nothing spins: the helper sleeps on an event between
jobs, and when it has not taken its job by the time the caller has finished ``first``, the
caller runs ``second`` itself, so a helper that was not scheduled costs nothing; the caller only
waits for a job the helper is already running. Which thread runs ``second`` never changes what
it computes, so results do not depend on timing or load.

One pair at a time: while a pair runs, a pair asked for on another thread runs both halves on
its own thread. A forked child (a DataLoader worker) starts its own helper when it needs one.
"""

from __future__ import annotations

import os
import threading

__all__ = ["available", "run_pair"]

HELPER_NAME = "backprop-helper"

_pair_lock = threading.Lock()  # held by the caller of the running pair
_job_lock = threading.Lock()  # guards _job: whoever takes it out runs it
_job = None  # the posted ``second``, or None once taken
_wake = threading.Event()
_done = threading.Event()
_failure = None  # what the helper's job raised, re-raised by the caller
_helper = None  # the thread: None until the first pair, and again in a forked child
_cores = None


def available() -> bool:
    """True when this process may run on more than one core (a pair can then gain)."""
    global _cores
    if _cores is None:
        _cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)
    return _cores > 1


def _helper_loop() -> None:
    global _job, _failure
    while True:
        _wake.wait()
        _wake.clear()  # before taking: a job posted after this sets it again
        with _job_lock:
            job, _job = _job, None
        if job is None:  # the caller took it back
            continue
        try:
            job()
        except BaseException as e:  # noqa: BLE001 - handed to the caller, which re-raises
            _failure = e
        finally:
            _done.set()


def _forget_helper() -> None:
    global _helper, _pair_lock, _job_lock, _job, _wake, _done, _failure
    _helper = _job = _failure = None
    _pair_lock, _job_lock = threading.Lock(), threading.Lock()
    _wake, _done = threading.Event(), threading.Event()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def run_pair(first, second):
    """Run ``first()`` here and ``second()`` on the helper thread (or here, after ``first``,
    when the helper has not started it); return ``first()``'s result once both are done.
    An exception from either reaches the caller; ``second`` never outlives the call."""
    global _helper, _job, _failure
    if not _pair_lock.acquire(blocking=False):  # another thread's pair is running
        result = first()
        second()
        return result
    try:
        if _helper is None:
            _helper = threading.Thread(target=_helper_loop, name=HELPER_NAME, daemon=True)
            _helper.start()
        _done.clear()
        with _job_lock:
            _job = second
        _wake.set()
        try:
            result = first()
        finally:  # even when first() raised: the helper must not be left writing
            with _job_lock:
                job, _job = _job, None
            if job is None:
                _done.wait()
        if job is not None:
            job()
        elif _failure is not None:
            e, _failure = _failure, None
            raise e
        return result
    finally:
        _pair_lock.release()
