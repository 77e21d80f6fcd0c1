"""The results table: run the ``backprop train`` commands the README reports, time them, and
print test accuracy against each target.

    python benchmarks/bench_results.py --data-dir ../shared/data/mnist [--only digits-mlp]

Each row is one real command line, run as a user would (a fresh process, default thread count
unless OMP_NUM_THREADS is set), in a temporary directory; the accuracy is read from the run's
``metrics.json``. Wall-clock includes start-up and data loading. These are long runs (the MNIST
ones take minutes), so they live here and not in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (name, target accuracy, flags after `backprop train`; {mnist} is the data directory)
RUNS = [
    ("digits-mlp", 0.975, ""),
    ("mnist-mlp", 0.983, "--dataset mnist --data-dir {mnist}"),
    ("mnist-cnn", 0.990, "--model cnn --dataset mnist --data-dir {mnist}"),
]


def run_one(flags: str, workdir: Path) -> tuple[dict, float]:
    out = workdir / "run"
    cmd = [sys.executable, "-m", "backprop", "train", *shlex.split(flags), "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr}")
    return json.loads((out / "metrics.json").read_text()), seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data-dir", default=os.environ.get("BACKPROP_MNIST_DIR",
                                                        "../shared/data/mnist"),
                   help="directory with MNIST's IDX files")
    p.add_argument("--only", choices=[name for name, _, _ in RUNS], action="append",
                   help="run only these rows (repeatable)")
    args = p.parse_args(argv)
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} cores")
    print("| command | test accuracy | target | epochs | wall-clock |")
    print("| --- | --- | --- | --- | --- |")
    for name, target, flags in RUNS:
        if args.only and name not in args.only:
            continue
        flags = flags.format(mnist=args.data_dir)
        with tempfile.TemporaryDirectory() as tmp:
            metrics, seconds = run_one(flags, Path(tmp))
        acc = metrics["test_accuracy"]
        verdict = "met" if acc >= target else "NOT MET"
        command = f"backprop train {flags}".strip()
        print(f"| `{command}` | {100 * acc:.2f}% | "
              f"{100 * target:.1f}% ({verdict}) | {metrics['epochs']} | {seconds:.0f} s |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
