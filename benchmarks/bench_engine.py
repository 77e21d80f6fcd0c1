"""Engine-overhead benchmark: full training steps of backprop beside PyTorch and a NumPy floor.

Run by hand (never imported by the tests)::

    python benchmarks/bench_engine.py                 # both workloads, 7 rounds
    python benchmarks/bench_engine.py --quick         # smoke run: few steps, 3 rounds
    python benchmarks/bench_engine.py --only tiny     # or --only mlp
    python benchmarks/bench_engine.py --profile       # also phase split and cProfile of our step
    python benchmarks/bench_engine.py --no-torch      # our figures and the floor only

Each step is complete: grads set to None, forward, loss, backward, and SGD with momentum 0.9 in
PyTorch's form (buf = 0.9·buf + grad; p -= lr·buf), lr 0.01. Every implementation cycles through
the same small pool of batches (64 samples for tiny, 4 batches for mlp), so the nets keep
learning instead of fitting one batch exactly. Workloads:

1. tiny: MLP 2-16-16-1, tanh, MSE loss, batch 1, float32. Pure per-op overhead (µs/step).
2. mlp:  MLP 784-512-256-10, ReLU, batch 128, float32, mean cross-entropy from logits
   (steps/s and samples/s). Overhead against BLAS-sized kernels.

Implementations, timed in interleaved rounds (each round runs N steps of every implementation in
turn, the order rotated from round to round, with a short pause before each block so that the
previous library's spinning BLAS/OpenMP worker threads do not steal the cores; the table gives
the median per-step time over the rounds):

- backprop: plain ops (``x @ W + b``), the update in place under ``no_grad``.
- torch: the same ops (``x @ W + b``, not ``nn.Linear``), once with ``torch.optim.SGD`` and once
  with the same hand-written in-place update as ours; for mlp also with the fused
  ``F.cross_entropy`` beside the composite ``-log_softmax(z)[arange(B), targets].mean()``.
  Imported lazily: without torch only our figures (and the floor) are printed.
- NumPy floor: hand-written forward and backward with no graph (fused softmax-cross-entropy
  gradient), the same update. The cost of the kernels alone: ours minus floor is engine overhead.

Before timing, one step of every implementation is run from the same initial weights and its
gradients and updated weights are compared with the floor's (np.allclose), so the benchmark cannot
silently time something wrong. Threads: torch gets 2 (``torch.set_num_threads(2)``); NumPy's BLAS
uses whatever the environment gives it (reported in the header).
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import itertools
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from _harness import cpu_model

import backprop as bp

LR = 0.01
MOMENTUM = 0.9
TORCH_THREADS = 2
PAUSE_S = 0.2  # between timed blocks: lets the previous library's BLAS/OpenMP workers stop spinning

# workload: layer sizes, activation, loss, batch, batches in the data pool, steps per round
# (full / --quick), warm-up steps, and the target for ours / torch step time
WORKLOADS = {
    "tiny": dict(
        title="tiny MLP 2-16-16-1, tanh, MSE, batch 1, float32",
        sizes=(2, 16, 16, 1), act="tanh", loss="mse", batch=1, pool=64, steps=2000,
        quick_steps=200, warmup=300, target=0.5,
    ),
    "mlp": dict(
        title="MLP 784-512-256-10, ReLU, cross-entropy, batch 128, float32",
        sizes=(784, 512, 256, 10), act="relu", loss="ce", batch=128, pool=4, steps=30,
        quick_steps=5, warmup=5, target=1.0,
    ),
}


@dataclass
class Impl:
    """One implementation of a workload's training step."""

    name: str
    step: Callable[[], None]
    params: Callable[[], list]  # current weights, as ndarrays
    grads: Callable[[], list]  # gradients of the last step, as ndarrays
    kind: str  # "ours", "torch" or "floor"
    times: list = field(default_factory=list)
    phases: tuple = ()


# --- problem setup (shared by every implementation) ---


def make_problem(spec: dict, seed: int = 0):
    """Initial weights (W as (in, out), b as (out,), uniform ±1/√fan_in) and a small pool of
    batches that every implementation cycles through in the same order (one fixed batch would
    be fitted exactly within a few thousand steps, leaving zero gradients to time)."""
    rng = np.random.default_rng(seed)
    sizes = spec["sizes"]
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        weights.append(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))
    xs, ys = [], []
    for _ in range(spec["pool"]):
        xs.append(rng.standard_normal((spec["batch"], sizes[0])).astype(np.float32))
        if spec["loss"] == "mse":
            ys.append(rng.standard_normal((spec["batch"], sizes[-1])).astype(np.float32))
        else:
            ys.append(rng.integers(0, sizes[-1], spec["batch"]).astype(np.int64))
    return weights, xs, ys


def _mlp(h, params, act):
    """Linear layers ``h @ W + b`` with ``act`` between them (the same code for both libraries)."""
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n - 1:
            h = act(h)
    return h


# --- backprop ---


def ours(spec: dict, weights, xs, ys) -> Impl:
    params = [bp.tensor(w, requires_grad=True) for w in weights]
    bufs = [bp.zeros(*w.shape) for w in weights]  # zeros: the first update is buf = grad
    batches = itertools.cycle([(bp.tensor(a), bp.tensor(b)) for a, b in zip(xs, ys)])
    act = bp.tanh if spec["act"] == "tanh" else bp.relu
    batch = spec["batch"]
    mse = spec["loss"] == "mse"

    def zero():
        for p in params:
            p.grad = None

    def forward():
        x, y = next(batches)
        out = _mlp(x, params, act)
        if mse:
            return ((out - y) ** 2).mean()
        logp = bp.log_softmax(out, dim=1)
        return -logp[bp.arange(batch), y].mean()

    def backward(loss):
        loss.backward()

    def update():
        with bp.no_grad():
            for p, buf in zip(params, bufs):
                buf.mul_(MOMENTUM).add_(p.grad)
                p.sub_(buf, alpha=LR)

    def step():
        zero()
        backward(forward())
        update()

    impl = Impl("backprop", step, lambda: [p.data for p in params],
                lambda: [p.grad.data for p in params], "ours")
    impl.phases = (zero, forward, backward, update)  # for --profile's phase split
    return impl


def ours_nn(spec: dict, weights, xs, ys) -> Impl:
    """The same step as a user writes it: nn.Linear layers, a functional loss, optim.SGD."""
    sizes = spec["sizes"]
    layers = []
    for i in range(len(sizes) - 1):
        lin = bp.nn.Linear(sizes[i], sizes[i + 1])
        lin.load_state_dict({"weight": weights[2 * i].T, "bias": weights[2 * i + 1]})
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(bp.nn.Tanh() if spec["act"] == "tanh" else bp.nn.ReLU())
    model = bp.nn.Sequential(*layers)
    linears = [m for m in model if isinstance(m, bp.nn.Linear)]
    opt = bp.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    batches = itertools.cycle([(bp.tensor(a), bp.tensor(b)) for a, b in zip(xs, ys)])
    loss_fn = bp.nn.functional.mse_loss if spec["loss"] == "mse" else bp.nn.functional.cross_entropy

    def zero():
        opt.zero_grad()

    def forward():
        x, y = next(batches)
        return loss_fn(model(x), y)

    def backward(loss):
        loss.backward()

    def update():
        opt.step()

    def step():
        zero()
        backward(forward())
        update()

    # the floor's layout: W as (in, out)
    impl = Impl("backprop, nn + optim.SGD", step,
                lambda: [a for m in linears for a in (m.weight.data.T, m.bias.data)],
                lambda: [a for m in linears for a in (m.weight.grad.data.T, m.bias.grad.data)],
                "ours")
    impl.phases = (zero, forward, backward, update)
    return impl


# --- PyTorch ---


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(TORCH_THREADS)
    return torch


def torch_impls(torch, spec: dict, weights, xs, ys) -> list[Impl]:
    import torch.nn.functional as F

    act = torch.tanh if spec["act"] == "tanh" else torch.relu
    batch = spec["batch"]
    losses = {"MSE": None} if spec["loss"] == "mse" else {"F.cross_entropy": "fused",
                                                          "composite CE": "composite"}
    impls = []
    for loss_name, ce in losses.items():
        for update in ("optim.SGD", "hand-written SGD"):
            impls.append(_torch_impl(torch, F, act, batch, ce, update, weights, xs, ys,
                                     loss_name if ce else None))
    return impls


def _torch_impl(torch, F, act, batch, ce, update, weights, xs, ys, loss_name) -> Impl:
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    batches = itertools.cycle([(torch.from_numpy(a.copy()), torch.from_numpy(b.copy()))
                               for a, b in zip(xs, ys)])
    if update == "optim.SGD":
        opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)
        bufs = None
    else:
        opt = None
        bufs = [torch.zeros_like(p) for p in params]

    def step():
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        else:
            for p in params:
                p.grad = None
        x, y = next(batches)
        out = _mlp(x, params, act)
        if ce is None:
            loss = ((out - y) ** 2).mean()
        elif ce == "fused":
            loss = F.cross_entropy(out, y)
        else:
            logp = torch.log_softmax(out, dim=1)
            loss = -logp[torch.arange(batch), y].mean()
        loss.backward()
        if opt is not None:
            opt.step()
        else:
            with torch.no_grad():
                for p, buf in zip(params, bufs):
                    buf.mul_(MOMENTUM).add_(p.grad)
                    p.sub_(buf, alpha=LR)

    name = "torch, " + (loss_name + ", " if loss_name else "") + update
    return Impl(name, step, lambda: [p.detach().numpy() for p in params],
                lambda: [p.grad.numpy() for p in params], "torch")


# --- NumPy floor: the same step with no graph ---


def floor(spec: dict, weights, xs, ys) -> Impl:
    params = [w.copy() for w in weights]
    bufs = [np.zeros_like(w) for w in weights]
    grads = [None] * len(params)
    n = len(params) // 2
    tanh = spec["act"] == "tanh"
    mse = spec["loss"] == "mse"
    rows = np.arange(spec["batch"])
    batches = itertools.cycle(list(zip(xs, ys)))

    def step():
        for i in range(len(grads)):
            grads[i] = None
        x, y = next(batches)
        hs = [x]
        h = x
        for i in range(n):
            z = h @ params[2 * i] + params[2 * i + 1]
            if i < n - 1:
                h = np.tanh(z) if tanh else np.maximum(z, 0)
                hs.append(h)
        if mse:
            d = z - y
            g = d * (2 / d.size)  # d(mean(d²))/dz
        else:  # softmax minus one-hot, over the batch size
            e = np.exp(z - z.max(axis=1, keepdims=True))
            g = e / e.sum(axis=1, keepdims=True)
            g[rows, y] -= 1
            g /= len(rows)
        for i in reversed(range(n)):
            grads[2 * i] = hs[i].T @ g
            grads[2 * i + 1] = g.sum(axis=0)
            if i > 0:
                g = g @ params[2 * i].T
                g = g * (1 - hs[i] * hs[i]) if tanh else g * (hs[i] > 0)
        for p, buf, gr in zip(params, bufs, grads):
            buf *= MOMENTUM
            buf += gr
            p -= LR * buf

    return Impl("NumPy floor (no graph)", step, lambda: params, lambda: grads, "floor")


# --- correctness guard ---


def check_same_step(spec: dict, torch) -> None:
    """One step of each implementation from the same weights: gradients and updated weights
    must match the floor's, or the benchmark stops."""
    weights, xs, ys = make_problem(spec, seed=1)
    ref = floor(spec, weights, xs, ys)
    ref.step()
    others = [ours(spec, weights, xs, ys), ours_nn(spec, weights, xs, ys)]
    if torch is not None:
        others += torch_impls(torch, spec, weights, xs, ys)
    for impl in others:
        impl.step()
        for what, got, want in (("gradient", impl.grads(), ref.grads()),
                                ("updated weight", impl.params(), ref.params())):
            for k, (a, b) in enumerate(zip(got, want)):
                if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-6):
                    err = np.max(np.abs(a - b)) if a.shape == b.shape else "shape mismatch"
                    sys.exit(f"correctness guard FAILED: {impl.name}, {spec['title']}: {what} "
                             f"of parameter {k} differs from the NumPy floor (max |diff| {err})")
    print(f"  correctness guard: one step of {len(others)} implementation(s) matches the NumPy "
          "floor (gradients and updated weights, np.allclose rtol=1e-4 atol=1e-6)")


# --- timing ---


def time_steps(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def run_workload(key: str, torch, rounds: int, quick: bool) -> dict:
    spec = WORKLOADS[key]
    steps = spec["quick_steps"] if quick else spec["steps"]
    print(f"\n== {spec['title']} ==")
    check_same_step(spec, torch)
    weights, xs, ys = make_problem(spec, seed=0)
    impls = [ours(spec, weights, xs, ys), ours_nn(spec, weights, xs, ys)]
    if torch is not None:
        impls += torch_impls(torch, spec, weights, xs, ys)
    impls.append(floor(spec, weights, xs, ys))
    warm = max(1, spec["warmup"] // (10 if quick else 1))
    for impl in impls:
        time_steps(impl.step, warm)
    for r in range(rounds):  # interleaved: every implementation once per round, order rotated
        for impl in impls[r % len(impls):] + impls[: r % len(impls)]:
            time.sleep(PAUSE_S)
            impl.times.append(time_steps(impl.step, steps))
    for impl in impls:  # the weights must still be finite after all that training
        if not all(np.isfinite(p).all() for p in impl.params()):
            sys.exit(f"{impl.name}: weights became non-finite during timing")
    print(f"  {rounds} rounds x {steps} steps per implementation (after {warm} warm-up steps), "
          f"interleaved in rotating order with a {PAUSE_S:g} s pause before each block; "
          "median per-step time over the rounds")
    report(spec, impls, key)
    return {impl.name: statistics.median(impl.times) for impl in impls}


def report(spec: dict, impls: list, key: str) -> None:
    med = {impl.name: statistics.median(impl.times) for impl in impls}
    ours_t = med["backprop"]
    torch_ref = next((i.name for i in impls if i.kind == "torch"), None)
    tiny = key == "tiny"
    unit, scale = ("µs", 1e6) if tiny else ("ms", 1e3)
    head = f"  {'implementation':<44} {'median ' + unit + '/step':>15} {'min-max':>17}"
    head += f" {'steps/s':>9}" + ("" if tiny else f" {'samples/s':>10}")
    head += f" {'ours/this':>10}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for impl in impls:
        t = med[impl.name]
        lo, hi = min(impl.times) * scale, max(impl.times) * scale
        row = f"  {impl.name:<44} {t * scale:>15.1f} {f'{lo:.1f}-{hi:.1f}':>17} {1 / t:>9.1f}"
        if not tiny:
            row += f" {spec['batch'] / t:>10.0f}"
        row += f" {ours_t / t:>9.2f}x" if impl.kind != "ours" else f" {'':>10}"
        print(row)
    fl = med["NumPy floor (no graph)"]
    print(f"  engine overhead (ours - floor): {(ours_t - fl) * scale:.1f} {unit}/step "
          f"({(ours_t - fl) / ours_t:.0%} of our step)")
    if torch_ref is None:
        print("  no torch: no comparison; the target cannot be checked")
        return
    print(f"  target: ours <= {spec['target']:.1f}x torch's step time (ratio of the medians; in "
          "brackets the median of the per-round ratios, robust to the machine changing speed)")
    for mine in (i for i in impls if i.kind == "ours"):
        print(f"  {mine.name}:")
        for impl in impls:
            if impl.kind == "torch":
                r = med[mine.name] / med[impl.name]
                paired = statistics.median(a / b for a, b in zip(mine.times, impl.times))
                verdict = "met" if r <= spec["target"] else "NOT met"
                print(f"    vs {impl.name:<42} ratio {r:5.2f} ({paired:4.2f})  {verdict}")
    print(f"  floor / torch ({torch_ref}): {fl / med[torch_ref]:.2f}x "
          f"(torch is {med[torch_ref] / fl:.2f}x the floor's time)")


# --- profile ---

_COMPONENTS = (
    ("autograd/function.py", "Function.apply, Context (autograd/function.py)"),
    ("autograd/engine.py", "engine (autograd/engine.py)"),
    ("autograd/grad_mode.py", "grad mode (autograd/grad_mode.py)"),
    ("backprop/tensor.py", "Tensor, _wrap, in-place ops (tensor.py)"),
    ("backprop/ops/", "op wrappers, forward+backward rules (ops/*.py)"),
    ("backprop/creation.py", "constructors (creation.py)"),
    ("bench_engine.py", "benchmark step function"),
)


def _component(filename: str, name: str) -> str:
    for frag, label in _COMPONENTS:
        if frag in filename.replace("\\", "/"):
            return label
    if filename == "~":
        return "C calls by name (numpy functions, isinstance, ...)"
    return "other Python (stdlib, numpy Python wrappers)"


def phase_split(impl: Impl, steps: int, rounds: int = 5) -> None:
    """Time our step's phases without a profiler (median of ``rounds`` blocks of ``steps``)."""
    zero, forward, backward, update = impl.phases
    clock = time.perf_counter
    names = ("zero grads", "forward + loss", "backward", "SGD update")
    blocks = []
    for _ in range(rounds):
        acc = [0.0] * 4
        for _ in range(steps):
            t0 = clock()
            zero()
            t1 = clock()
            loss = forward()
            t2 = clock()
            backward(loss)
            t3 = clock()
            update()
            t4 = clock()
            acc[0] += t1 - t0
            acc[1] += t2 - t1
            acc[2] += t3 - t2
            acc[3] += t4 - t3
        blocks.append([a / steps for a in acc])
    med = [statistics.median(b[k] for b in blocks) for k in range(4)]
    total = sum(med)
    print(f"  phase split of our step, no profiler ({rounds} x {steps} steps, median): "
          f"{total * 1e6:.0f} µs/step")
    for name, t in zip(names, med):
        print(f"  {t / total:>13.1%} {t * 1e6:>9.1f}             {name}")


def profile_ours(key: str, quick: bool, top: int = 20) -> None:
    """cProfile N steps of our implementation; print top functions by tottime and a breakdown.

    Note: in Python 3.11, cProfile sees calls to builtin functions and methods by name
    (np.sum, ndarray.reshape, isinstance) but not ufunc calls or operators on arrays (np.tanh,
    np.matmul, a + b): their kernel time is counted in the calling Python function's tottime.
    """
    spec = WORKLOADS[key]
    steps = spec["quick_steps"] if quick else spec["steps"] * (1 if key == "tiny" else 2)
    weights, xs, ys = make_problem(spec, seed=0)
    impl = ours(spec, weights, xs, ys)
    time_steps(impl.step, spec["warmup"])
    print(f"\n== profile of our step: {spec['title']} ==")
    phase_split(impl, steps)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        impl.step()
    prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt
    rows = []
    groups: dict = {}
    for (fn, line, name), (_cc, nc, tt, _ct, _callers) in st.stats.items():
        short = f"{os.path.relpath(fn) if fn != '~' else ''}:{line}({name})"
        if fn != "~" and "backprop" in fn:
            short = fn[fn.rindex("backprop"):] + f":{line}({name})"
        rows.append((tt, nc, short))
        comp = _component(fn, name)
        groups[comp] = groups.get(comp, 0.0) + tt
    rows.sort(reverse=True)
    print(f"  cProfile, {steps} steps ({total / steps * 1e6:.0f} µs/step under the profiler; "
          "shares are of the profiled time):")
    print(f"  {'tottime share':>13} {'µs/step':>9} {'calls/step':>10}  function")
    for tt, nc, short in rows[:top]:
        print(f"  {tt / total:>13.1%} {tt / steps * 1e6:>9.1f} {nc / steps:>10.1f}  {short}")
    print("  by component (tottime):")
    for comp, tt in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {tt / total:>13.1%} {tt / steps * 1e6:>9.1f}             {comp}")


# --- environment ---


def blas_info() -> str:
    """NumPy's BLAS and its thread count, cheaply (no extra dependency)."""
    name = "unknown BLAS"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:  # older NumPy: no dict mode
        pass
    threads = "unknown"
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower()}
        for path in libs:
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas_", "openblas_"):
                for suffix in ("64_", ""):
                    if hasattr(lib, f"{prefix}get_num_threads{suffix}"):
                        threads = str(getattr(lib, f"{prefix}get_num_threads{suffix}")())
                        core = getattr(lib, f"{prefix}get_corename{suffix}", None)
                        if core is not None:
                            core.restype = ctypes.c_char_p
                            name += f" (kernel {core().decode()})"
                        break
                else:
                    continue
                break
    except OSError:
        pass
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "MKL_NUM_THREADS") if k in os.environ}
    return f"{name}, {threads} thread(s) (as the environment gives it; env: {env or 'none set'})"


def code_version() -> str:
    """The commit of the backprop being measured, and whether src/ has uncommitted changes."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(bp.__file__)))
    try:
        head = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        diff = subprocess.run(["git", "-C", src, "diff", "HEAD", "--", "."],
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"backprop from {src} (not a git checkout)"
    if not diff:
        return f"backprop at commit {head}"
    import hashlib

    return (f"backprop at commit {head} + uncommitted changes in src/ "
            f"(diff sha1 {hashlib.sha1(diff).hexdigest()[:10]})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=None,
                    help="timing rounds (default 7, or 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="few steps per round (smoke run)")
    ap.add_argument("--only", choices=sorted(WORKLOADS), help="run one workload")
    ap.add_argument("--profile", action="store_true",
                    help="after timing, cProfile our step and print the top functions")
    ap.add_argument("--no-torch", action="store_true", help="do not import torch")
    args = ap.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    torch = None if args.no_torch else load_torch()
    print(f"backprop {bp.__version__} | numpy {np.__version__} | Python "
          f"{platform.python_version()} | {os.cpu_count()} CPUs: {cpu_model()}")
    print(f"code: {code_version()}")
    print(f"NumPy BLAS: {blas_info()}")
    if torch is None:
        why = "not used (--no-torch)" if args.no_torch else "not importable"
        print(f"torch: {why}; printing backprop and NumPy-floor figures only")
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
              "(torch.set_num_threads(2))")
    print(f"SGD lr={LR} momentum={MOMENTUM}; grads set to None each step; gc enabled")

    keys = [args.only] if args.only else list(WORKLOADS)
    for key in keys:
        run_workload(key, torch, args.rounds, args.quick)
    if args.profile:
        for key in keys:
            profile_ours(key, args.quick)


if __name__ == "__main__":
    main()
