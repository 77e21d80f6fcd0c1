"""Two threads for one piece of work: the caller's and one helper thread of ours.

``run_pair(first, second)`` runs ``first()`` on the calling thread while a helper thread runs
``second()``, and returns when both are done. The two must write to disjoint memory and release
the GIL while they work (a BLAS call through NumPy, a ``nogil`` numba kernel), or nothing runs
in parallel. Users: ``_blas.matmul`` (a product's two column blocks) and the ``[fast]``
convolution and pooling kernels (two blocks of planes).

Why not the BLAS's or numba's own threads: those spin while they wait for each other, and when
other processes hold the cores a descheduled thread stalls every launch (docs/benchmarks.md:
the MNIST MLP step twice as slow with two OpenBLAS threads on a busy machine, numba's OpenMP
kernels 35-55 ms a LeNet-5 step). Here the helper never makes the caller wait for it: when it
has not taken its job by the time the caller has finished ``first``, the caller runs ``second``
itself, so a helper that was not scheduled costs nothing; the caller only waits for a job the
helper is already running. Which thread runs ``second`` never changes what it computes, so
results do not depend on timing or load.

Products (``run_products``, with the ``[fast]`` extra): the helper's block goes to it as a
gemm descriptor, which it runs from compiled code without the GIL (``_fast/_pair_gemm.py``),
and after each block it spins for about 0.25 ms, without the GIL, in case another comes (the
next product of a step usually does), before it sleeps on its event. A Python job posted
meanwhile brings it out of the spin at once. The spin is bounded, so on a busy machine it
costs at most that per product.

One pair at a time: while a pair runs, a pair asked for on another thread runs both halves on
its own thread. A forked child (a DataLoader worker) starts its own helper when it needs one.
"""

from __future__ import annotations

import os
import threading

from backprop import _fast

__all__ = ["available", "run_pair", "run_products"]

HELPER_NAME = "backprop-helper"

_pair_lock = threading.Lock()  # held by the caller of the running pair
_job_lock = threading.Lock()  # guards _job: whoever takes it out runs it
_job = None  # the posted ``second``, or None once taken
_wake = threading.Event()
_done = threading.Event()
_failure = None  # what the helper's job raised, re-raised by the caller
_helper = None  # the thread: None until the first pair, and again in a forked child
_server = None  # (the _fast._pair_gemm module, its job array) when the fast path is on
_cores = None


def available() -> bool:
    """True when this process may run on more than one core (a pair can then gain)."""
    global _cores
    if _cores is None:
        _cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)
    return _cores > 1


def _gemm_server():
    """The fast path's GIL-free product pair (``_fast/_pair_gemm.py``) and its job array, or
    None without numba (or with ``BACKPROP_FAST=0``)."""
    mod = _fast.kernels("_pair_gemm")
    if mod is None:
        return None
    job = mod.new_job()
    mod.serve(job, 0)  # loaded here, not in the helper's first wait
    return mod, job


def _helper_loop(server) -> None:
    global _job, _failure
    while True:
        # with the fast path: products' blocks without the GIL, spinning a while between them,
        # until a Python job is posted or nothing came for a while; then asleep until a post
        if (server is None or not _fast.is_enabled()
                or server[0].serve(server[1], server[0].CYCLES) == 0):
            _wake.wait()
        _wake.clear()  # before taking: a job posted after this sets it again
        if server is not None:
            server[1][server[0].PY] = 0
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
    global _helper, _pair_lock, _job_lock, _job, _wake, _done, _failure, _server
    _helper = _job = _failure = _server = None
    _pair_lock, _job_lock = threading.Lock(), threading.Lock()
    _wake, _done = threading.Event(), threading.Event()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def _start_helper() -> None:
    global _helper, _server
    if _helper is None:
        _server = _gemm_server()
        _helper = threading.Thread(target=_helper_loop, args=(_server,), name=HELPER_NAME,
                                   daemon=True)
        _helper.start()


def run_products(a1, b1, out1, a2, b2, out2, addr: int, epilogue=None) -> bool:
    """out1 = a1 @ b1 here and out2 = a2 @ b2 on the helper without the GIL (the fast path's
    ``_pair_gemm``), through the CBLAS gemm at ``addr``; the helper's block comes back here
    when it has not started it. Returns False, having done nothing, when that path is not
    there, another pair is running, or an operand is not one the gemm takes as it is (the
    caller then uses ``run_pair``). One float dtype; 2-D operands.

    ``epilogue`` (epi, bias1, bias2): each block then goes through the epilogue ``epi``
    (``_pair_gemm.EPI_BIAS`` or ``EPI_BIAS_RELU``) with its bias, in place, on the thread
    that computed it (``_pair_gemm.bias_act``)."""
    if not _pair_lock.acquire(blocking=False):
        return False
    try:
        _start_helper()
        if _server is None:
            return False
        mod, job = _server
        if epilogue is None:
            if not mod.blasable(a1, b1, out1) or not mod.post(job, addr, a2, b2, out2):
                return False
            _wake.set()  # after the post: a helper gone to sleep meanwhile wakes to find it
            mod.finish(job, addr, a1, b1, out1)
            return True
        epi, bias1, bias2 = epilogue
        if not (mod.blasable(a1, b1, out1) and mod.bias_fits(out1, bias1)) \
                or not mod.post_with_epilogue(job, addr, a2, b2, out2, epi, bias2):
            return False
        _wake.set()
        mod.finish_with_epilogue(job, addr, a1, b1, out1, epi, bias1)
        return True
    finally:
        _pair_lock.release()


def run_pair(first, second):
    """Run ``first()`` here and ``second()`` on the helper thread (or here, after ``first``,
    when the helper has not started it); return ``first()``'s result once both are done.
    An exception from either reaches the caller; ``second`` never outlives the call."""
    global _job, _failure
    if not _pair_lock.acquire(blocking=False):  # another thread's pair is running
        result = first()
        second()
        return result
    try:
        _start_helper()
        _done.clear()
        with _job_lock:
            _job = second
        if _server is not None:
            _server[1][_server[0].PY] = 1  # the helper leaves its spin for it
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
