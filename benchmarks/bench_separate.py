"""Ours compiled against PyTorch, each in its own process, steps back to back.

``bench_compile.py`` runs every implementation in one process, in interleaved blocks with rests
between them. This one starts a fresh process per measurement instead (ours compiled, or torch
on 2 threads), runs 1 s of untimed steps, then 15 timed blocks, and reports the median block;
the processes alternate ours/torch, torch/ours, ... and the report gives the median of the
per-pair ratios torch / ours (> 1: we are faster). Neither library's threads, allocator state or
caches can then affect the other's figures, which on a noisy machine differ between the two
methods (docs/benchmarks.md, session of 2026-12-06 14:02).

    python benchmarks/bench_separate.py mlp --pairs 6
    python benchmarks/bench_separate.py lenet lstm --pairs 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

_CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[3])
which, name = sys.argv[1], sys.argv[2]
import bench_compile as bc
if which == "torch":
    import torch
    torch.set_num_threads(2)
    run, _ = bc.theirs(torch, name)
else:
    run, _ = bc.ours(name, True)
steps = bc.WORKLOADS[name][0]
end = time.perf_counter() + 1.0
while time.perf_counter() < end:
    run()
times = []
for _ in range(15):
    t0 = time.perf_counter()
    for _ in range(steps):
        run()
    times.append((time.perf_counter() - t0) / steps)
print(json.dumps(statistics.median(times)))
"""


def measure(which: str, name: str) -> float:
    """One fresh process's median step time (s) of ``which`` ("ours" or "torch")."""
    out = subprocess.run([sys.executable, "-c", _CHILD, which, name, HERE],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="+", choices=["tiny", "mlp", "lenet", "lstm"])
    ap.add_argument("--pairs", type=int, default=6)
    args = ap.parse_args(argv)
    for name in args.workloads:
        times = {"ours": [], "torch": []}
        for p in range(args.pairs):
            for which in (("ours", "torch") if p % 2 == 0 else ("torch", "ours")):
                times[which].append(measure(which, name))
        ratios = [t / o for t, o in zip(times["torch"], times["ours"])]
        print(f"{name}: ours compiled {statistics.median(times['ours']) * 1e3:.2f} ms, torch "
              f"{statistics.median(times['torch']) * 1e3:.2f} ms, torch/ours "
              f"{statistics.median(ratios):.2f}x (pairs: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})", flush=True)


if __name__ == "__main__":
    main()
