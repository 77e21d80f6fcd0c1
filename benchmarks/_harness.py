"""Shared timing harness for the layer benchmarks (bench_cnn.py, bench_lstm.py), and the CPU name
that every benchmark prints.

Import it before NumPy: ``set_blas_threads()`` must run before OpenBLAS loads, because OpenBLAS
reads its thread count once, at load time.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time


def set_blas_threads(argv=None) -> str:
    """Set NumPy's BLAS thread count from ``--blas-threads N`` (default: the environment's
    OPENBLAS_NUM_THREADS, else 2, as torch uses); returns it. Call before importing NumPy."""
    argv = sys.argv if argv is None else argv
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "2")
    for k, a in enumerate(argv):
        if a.startswith("--blas-threads="):
            threads = a.split("=", 1)[1]
        elif a == "--blas-threads" and k + 1 < len(argv):
            threads = argv[k + 1]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    return threads


def time_block(step, n: int, pause_s: float = 0.2) -> float:
    """Seconds per call of ``step`` over ``n`` calls, after a pause that lets the other
    library's spinning BLAS threads go idle."""
    time.sleep(pause_s)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def interleaved(impls: dict, rounds: int, steps: int, warmup: int) -> dict:
    """Time every implementation once per round, alternating the order between rounds.

    Returns {name: [seconds per step, one per round]}.
    """
    for step in impls.values():  # warm-up: caches, BLAS threads, the allocator
        for _ in range(warmup):
            step()
    times = {k: [] for k in impls}
    names = list(impls)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            times[k].append(time_block(impls[k], steps))
    return times


def print_medians(times: dict, batch: int, per: str) -> dict:
    """Print each implementation's median ms/step, throughput and spread; returns the medians."""
    med = {k: statistics.median(v) for k, v in times.items()}
    width = max(len(k) for k in med)
    for k, t in med.items():
        spread = f"{min(times[k]) * 1e3:.1f}-{max(times[k]) * 1e3:.1f}"
        print(f"  {k:{width}s} {t * 1e3:8.2f} ms/step  ({batch / t:8.0f} {per}/s; rounds "
              f"{spread} ms)")
    return med


def parse_args(doc: str, steps: int, argv=None):
    """The flags every layer benchmark takes: --quick, --rounds, --steps, --profile,
    --blas-threads (already applied by ``set_blas_threads``). Returns (args, rounds, steps)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds of 3 steps")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--profile", action="store_true", help=f"cProfile {steps} of our steps")
    ap.add_argument("--blas-threads", default=None,
                    help="NumPy BLAS threads (default 2, as torch; read before NumPy loads)")
    args = ap.parse_args(argv)
    rounds, n = (3, 3) if args.quick else (args.rounds, args.steps)
    return args, rounds, n


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for the benchmark's header."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
