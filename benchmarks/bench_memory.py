"""Peak memory of one training step (``tracemalloc``), this checkout against another version.

Run by hand (never imported by the tests)::

    git worktree add ../base <commit>
    python benchmarks/bench_memory.py --base ../base

Each measurement runs in a fresh process importing one version's ``backprop`` (``src/``). It
builds the model, takes two warm-up steps (so the optimizer's momentum buffers and the
parameters' ``.grad`` exist and are not counted as growth), then traces one more step and
reports ``tracemalloc``'s peak above what was allocated when the step began: the graph's
intermediates, the saved tensors and the gradients in flight. NumPy reports its array buffers to
``tracemalloc``, so this counts array memory, not only Python objects.

Workloads: LeNet-5 (batch 64, 1x28x28, SGD with momentum, cross-entropy) and a chain of twenty
``h = h + 1.0`` on a 4 MB tensor followed by ``backward`` (issue 10's example).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAD = HERE.parent


def _lenet_step():
    import numpy as np

    import backprop as bp

    nn = bp.nn
    bp.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    opt = bp.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = bp.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
    y = bp.tensor(rng.integers(0, 10, 64))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def _chain_step():
    import numpy as np

    import backprop as bp

    x = bp.tensor(np.ones(1 << 20, np.float32), requires_grad=True)  # 4 MiB

    def step():
        h = x
        for _ in range(20):
            h = h + 1.0
        h.sum().backward()
        x.grad = None

    return step


WORKLOADS = {"lenet": (_lenet_step, "LeNet-5 step, batch 64"),
             "chain": (_chain_step, "20 chained adds on 4 MiB, then backward")}


def worker(name: str) -> None:
    import gc
    import tracemalloc

    step = WORKLOADS[name][0]()
    step()
    step()
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"peak": peak - base}))


def measure(root: Path, name: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", name],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, help="a checkout of the version to compare with")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return
    print(f"{'workload':<44}{'this checkout':>15}{'base':>12}{'ratio':>8}")
    for name, (_, label) in WORKLOADS.items():
        head = measure(HEAD, name)
        if args.base:
            base = measure(args.base, name)
            print(f"{label:<44}{head / 2**20:>11.2f} MiB{base / 2**20:>8.2f} MiB"
                  f"{head / base:>8.2f}")
        else:
            print(f"{label:<44}{head / 2**20:>11.2f} MiB")


if __name__ == "__main__":
    main()
