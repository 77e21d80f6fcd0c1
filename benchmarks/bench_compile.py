"""backprop.compile against eager backprop, PyTorch and a NumPy floor, on issue 12's workloads.

The same ``nn`` + ``optim.SGD(momentum=0.9)`` training step, written the same way for both
libraries: zero_grad, forward, loss, backward, step. Workloads: tiny MLP 2-16-16-1 tanh (batch
1, MSE), MLP 784-512-256-10 ReLU (batch 128, cross-entropy), LeNet-5 (batch 64, cross-entropy),
LSTM 32->128 (sequence 64, batch 32, MSE on the last output). Implementations: ours eager, ours
compiled (``backprop.compile``), both again without the numba kernels when the ``[fast]`` extra
is installed ("no-fast"), torch eager (``torch.set_num_threads(2)``), and for tiny and mlp a
hand-written NumPy step (the floor). Rounds are interleaved (the order reverses every
round; each block of timed steps follows 0.2 s of rest and 0.1 s of untimed steps of the same
implementation); the report gives each median and the median of the per-round paired ratios
torch / ours (> 1: we are faster).

``--busy`` starts two CPU-bound processes for the whole run (the issue's "two other processes
keep both cores busy") and stops them at the end. Also reported: forward+backward time over
forward time (ours and torch's), and ``import backprop`` over ``import numpy``.

A compiled step's first capture sets glibc's malloc to keep freed memory (``backprop._malloc``,
as ``backprop train`` does), process-wide: every row of a workload, torch's included, runs with
it. ``BACKPROP_MALLOC=default`` measures without it.

    python benchmarks/bench_compile.py                 # all four, 5 rounds
    python benchmarks/bench_compile.py --busy          # the same with two CPU hogs
    python benchmarks/bench_compile.py --only tiny mlp --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import backprop as bp
from backprop import optim
from backprop.backends import fast
from backprop.nn import functional as F

WORKLOADS = {  # name: (steps per block, unit)
    "tiny": (400, "us"),
    "mlp": (10, "ms"),
    "lenet": (5, "ms"),
    "lstm": (3, "ms"),
}


# --- the models, written the same way for both libraries ---

def _tiny(lib):
    return lib.nn.Sequential(lib.nn.Linear(2, 16), lib.nn.Tanh(), lib.nn.Linear(16, 16),
                             lib.nn.Tanh(), lib.nn.Linear(16, 1))


def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(784, 512), lib.nn.ReLU(), lib.nn.Linear(512, 256),
                             lib.nn.ReLU(), lib.nn.Linear(256, 10))


def _lenet(lib):
    m = lib.nn
    return m.Sequential(m.Conv2d(1, 6, 5, padding=2), m.ReLU(), m.MaxPool2d(2),
                        m.Conv2d(6, 16, 5), m.ReLU(), m.MaxPool2d(2), m.Flatten(),
                        m.Linear(400, 120), m.ReLU(), m.Linear(120, 84), m.ReLU(),
                        m.Linear(84, 10))


def _lstm(lib):
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lib.nn.LSTM(32, 128)
            self.head = lib.nn.Linear(128, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out[-1])

    return Net()


def data(name: str, seed: int = 0):
    """(x, y) as NumPy arrays: y class indices (int64) or regression targets."""
    rng = np.random.default_rng(seed)
    f = np.float32
    if name == "tiny":
        return rng.standard_normal((1, 2)).astype(f), rng.standard_normal((1, 1)).astype(f)
    if name == "mlp":
        return rng.standard_normal((128, 784)).astype(f), rng.integers(0, 10, 128)
    if name == "lenet":
        return rng.standard_normal((64, 1, 28, 28)).astype(f), rng.integers(0, 10, 64)
    return rng.standard_normal((64, 32, 32)).astype(f), rng.standard_normal((32, 1)).astype(f)


MODELS = {"tiny": _tiny, "mlp": _mlp, "lenet": _lenet, "lstm": _lstm}
CLASSIFY = {"mlp", "lenet"}


def ours(name: str, compiled: bool):
    bp.manual_seed(0)
    model = MODELS[name](bp)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = F.cross_entropy if name in CLASSIFY else F.mse_loss
    x, y = (bp.tensor(a) for a in data(name))

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = bp.compile(step) if compiled else step

    def forward():
        return loss_fn(model(x), y)

    return (lambda: fn(x, y)), forward


def theirs(torch, name: str):
    torch.manual_seed(0)
    model = MODELS[name](torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = (torch.nn.functional.cross_entropy if name in CLASSIFY
               else torch.nn.functional.mse_loss)
    x, y = (torch.from_numpy(a) for a in data(name))

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step, (lambda: loss_fn(model(x), y))


def floor(name: str):
    """A hand-written NumPy step (forward, backward, SGD with momentum): kernel cost only."""
    if name not in ("tiny", "mlp"):
        return None
    rng = np.random.default_rng(0)
    sizes = [2, 16, 16, 1] if name == "tiny" else [784, 512, 256, 10]
    ws = [(rng.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32)
          for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o, np.float32) for o in sizes[1:]]
    params = ws + bs
    bufs = [np.zeros_like(p) for p in params]
    x, y = data(name)
    n = x.shape[0]

    def step():
        hs = [x]
        for k, (w, b) in enumerate(zip(ws, bs)):
            z = hs[-1] @ w
            z += b
            if k < len(ws) - 1:
                np.tanh(z, out=z) if name == "tiny" else np.maximum(z, 0, out=z)
            hs.append(z)
        z = hs[-1]
        if name == "tiny":
            g = (2.0 / z.size) * (z - y)
        else:
            e = np.exp(z - z.max(1, keepdims=True))
            g = e / e.sum(1, keepdims=True)
            g[np.arange(n), y] -= 1
            g /= n
        gw, gb = [], []
        for k in range(len(ws) - 1, -1, -1):
            gw.append(hs[k].T @ g)
            gb.append(g.sum(0))
            if k:
                g = g @ ws[k].T
                g *= (1 - hs[k] * hs[k]) if name == "tiny" else (hs[k] > 0)
        grads = gw[::-1] + gb[::-1]
        for p, b, gr in zip(params, bufs, grads):
            b *= 0.9
            b += gr
            p -= 0.01 * b

    return step


def _without_fast(step):
    def run():
        fast.set_enabled(False)
        return step()
    return run


def _with_fast(step):
    def run():
        fast.set_enabled(True)
        return step()
    return run


WARM_SECONDS = 0.1


def interleaved(impls: dict, rounds: int, steps: int) -> dict:
    for f in impls.values():
        for _ in range(3):
            f()
    times = {k: [] for k in impls}
    names = list(impls)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            time.sleep(0.2)  # let the other library's spinning threads go idle
            # then untimed steps: on the KVM guest of docs/benchmarks.md, two threads woken
            # after an idle pause run for about 50 ms as if they shared one core (a training
            # loop, which runs its steps back to back, sees that once)
            warm = time.perf_counter() + WARM_SECONDS
            while time.perf_counter() < warm:
                impls[k]()
            t0 = time.perf_counter()
            for _ in range(steps):
                impls[k]()
            times[k].append((time.perf_counter() - t0) / steps)
    return times


def import_times(rounds: int = 5) -> tuple[float, float]:
    def t(stmt):
        out = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmt], check=True)
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    return t("import numpy"), t("import backprop")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--busy", action="store_true", help="two CPU-bound processes beside it")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch = None
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(2)
        except ImportError:
            print("torch not importable: its rows are left out")
    hogs = []
    if args.busy:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(2)]
        time.sleep(1.0)
    try:
        if not args.child:
            print(f"numpy {np.__version__}, torch {getattr(torch, '__version__', '-')}, "
                  f"nproc {os.cpu_count()}, busy={args.busy}, "
                  f"BACKPROP_BLAS_THREADS={os.environ.get('BACKPROP_BLAS_THREADS', 'auto')}, "
                  f"numba (the [fast] extra) {'yes' if fast.is_available() else 'no'}, "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
        if len(args.only) > 1:
            # one process per workload: in one process, torch's step after another workload
            # was measured up to 10x slower than alone (threads of both libraries left spinning)
            flags = [f"--rounds={args.rounds}"] + (["--no-torch"] if args.no_torch else [])
            for name in args.only:
                subprocess.run([sys.executable, __file__, "--only", name, "--child", *flags],
                               check=True)
        for name in (args.only if len(args.only) == 1 else ()):
            steps, unit = WORKLOADS[name]
            scale = 1e6 if unit == "us" else 1e3
            impls, fwd = {}, {}
            impls["ours eager"], fwd["ours"] = ours(name, compiled=False)
            impls["ours compiled"], _ = ours(name, compiled=True)
            if fast.is_available():  # the same two without the numba kernels of [fast]
                impls["eager no-fast"] = _without_fast(ours(name, compiled=False)[0])
                impls["compiled no-fast"] = _without_fast(ours(name, compiled=True)[0])
                for k in ("ours eager", "ours compiled"):
                    impls[k] = _with_fast(impls[k])
                # the forward too: the no-fast rows switch the path off for the whole process,
                # and a forward timed after them ran on the NumPy path (LSTM: 0.90 as the ratio)
                fwd["ours"] = _with_fast(fwd["ours"])
            if torch is not None:
                impls["torch"], fwd["torch"] = theirs(torch, name)
            f = floor(name)
            if f is not None:
                impls["numpy floor"] = f
            times = interleaved(impls, args.rounds, steps)
            print(f"\n== {name} ({unit}/step, median of {args.rounds} interleaved rounds) ==")
            for k, v in times.items():
                line = f"  {k:16s} {statistics.median(v) * scale:9.1f}"
                if "torch" in times and k != "torch":
                    paired = statistics.median(t / o for t, o in zip(times["torch"], v))
                    line += f"   torch/this {paired:5.2f}x (paired)"
                print(line)
            if "torch" in times:
                f_times = interleaved({k: fwd[k] for k in fwd}, args.rounds, steps)
                for k in fwd:
                    full = times["ours eager" if k == "ours" else "torch"]
                    ratio = statistics.median(full) / statistics.median(f_times[k])
                    print(f"  (forward+backward+update) / forward, {k}: {ratio:.2f}")
        if args.child:
            return
        t_np, t_bp = import_times()
        print(f"\nimport numpy {t_np * 1e3:.0f} ms, import backprop {t_bp * 1e3:.0f} ms "
              f"(process start included), ratio {t_bp / t_np:.2f}")
    finally:
        for h in hogs:
            h.kill()
            h.wait()


if __name__ == "__main__":
    main()
