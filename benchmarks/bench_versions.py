"""This checkout's training step against another version of backprop (a git worktree), in one
interleaved run: did a change make the engine slower?

Run by hand (never imported by the tests)::

    git worktree add ../base <commit>          # the version to compare with
    python benchmarks/bench_versions.py --base ../base
    python benchmarks/bench_versions.py --base ../base --only tiny --rounds 15

Each round runs every workload in two fresh worker processes, one importing this checkout's
``backprop`` (``src/``) and one the other version's, in alternating order (A-B, then B-A), so
slow drifts of the machine's speed hit both alike. A worker builds the step of
``bench_engine.py`` (the same code for both versions), warms up, and times a block of steps.
The table gives the median per-step time of each version and the median, min and max over the
rounds of the paired ratio head / base (below 1: this checkout is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAD = HERE.parent

IMPLS = ("plain", "nn")  # bench_engine's `ours` (x @ W + b, hand-written SGD) and `ours_nn`


def worker(workload: str, impl: str, steps: int) -> None:
    """Time ``steps`` steps of one workload with whichever backprop is on sys.path."""
    sys.path.insert(0, str(HERE))
    import bench_engine as be

    spec = be.WORKLOADS[workload]
    weights, xs, ys = be.make_problem(spec)
    make = be.ours if impl == "plain" else be.ours_nn
    run = make(spec, weights, xs, ys)
    for _ in range(spec["warmup"]):
        run.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        run.step()
    per_step = (time.perf_counter() - t0) / steps
    import backprop

    print(json.dumps({"per_step": per_step, "backprop": str(Path(backprop.__file__).parent)}))


def _time(root: Path, workload: str, impl: str, steps: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", workload, impl, str(steps)],
        env=env, capture_output=True, text=True, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["backprop"].startswith(str(root)):
        raise RuntimeError(f"the worker imported backprop from {result['backprop']}, not from "
                           f"{root}: is an installed copy shadowing PYTHONPATH?")
    return result["per_step"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="root of the other version (required)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--only", choices=("tiny", "mlp"))
    ap.add_argument("--worker", nargs=3, metavar=("WORKLOAD", "IMPL", "STEPS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        workload, impl, steps = args.worker
        worker(workload, impl, int(steps))
        return
    if args.base is None:
        ap.error("--base is required")
    sys.path.insert(0, str(HERE))
    import bench_engine as be
    from _harness import cpu_model

    base = args.base.resolve()
    workloads = [args.only] if args.only else ["tiny", "mlp"]
    print(f"# head {HEAD} vs base {base}")
    print(f"# {cpu_model()}, {os.cpu_count()} cores, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.rounds} rounds")
    times = {(w, i, v): [] for w in workloads for i in IMPLS for v in ("head", "base")}
    for r in range(args.rounds):
        for w in workloads:
            steps = be.WORKLOADS[w]["steps"]
            for impl in IMPLS:
                order = [("head", HEAD), ("base", base)]
                if r % 2:
                    order.reverse()
                for version, root in order:
                    times[(w, impl, version)].append(_time(root, w, impl, steps))
        print(f"# round {r + 1}/{args.rounds} done", file=sys.stderr)
    print("| workload | step | head per step | base per step | head / base (median, min-max "
          "over rounds) |")
    print("| --- | --- | --- | --- | --- |")
    for w in workloads:
        for impl in IMPLS:
            head, base_t = times[(w, impl, "head")], times[(w, impl, "base")]
            ratios = [h / b for h, b in zip(head, base_t)]
            name = "x @ W + b, hand SGD" if impl == "plain" else "nn + optim.SGD"
            print(f"| {w} | {name} | {_fmt(statistics.median(head))} | "
                  f"{_fmt(statistics.median(base_t))} | {statistics.median(ratios):.3f} "
                  f"({min(ratios):.3f}-{max(ratios):.3f}) |")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    main()
