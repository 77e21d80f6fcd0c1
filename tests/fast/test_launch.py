"""How kernels are launched: serially on the default threading layer, in parallel by the
settings-and-size rule on a user-chosen OpenMP layer, and parallel launches from several Python
threads at once (numba's workqueue layer aborts the process on concurrent launches)."""

import os
import subprocess
import sys

import pytest

from backprop import _fast


def test_thread_count_depends_on_settings_and_size_only(needs_numba, monkeypatch):
    from backprop._fast import _jit

    assert not _jit.parallel  # the default layer: every kernel serial
    assert _jit.threads_for(1 << 30) == 1
    monkeypatch.setattr(_jit, "parallel", True)  # as with NUMBA_THREADING_LAYER=omp
    assert _jit.threads_for(_fast.PARALLEL_MIN - 1) == 1
    assert _jit.threads_for(_fast.PARALLEL_MIN) == _jit._all_threads
    with _jit.launch(1) as k:
        assert k == 1


def test_a_user_chosen_openmp_layer_runs_the_parallel_kernels(needs_numba):
    code = ("import backprop._fast._jit as j;"
            "print(j.parallel, j.threads_for(1 << 20) == j._all_threads)")
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP_FAST"}
    env["NUMBA_THREADING_LAYER"] = "omp"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.strip()
    assert out == "True True"


def test_the_workqueue_layer_is_chosen_unless_the_user_chose(needs_numba):
    code = ("import numba, backprop._fast._jit; print(numba.config.THREADING_LAYER)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "workqueue"


def test_the_conv_kernels_serve_the_ops_on_the_default_threading_layer():
    # serially: parallel launches only on a layer whose threads start at once (OpenMP), chosen
    # by the user; and BACKPROP_FAST=0 keeps numba out of the process
    code = ("import sys, backprop as bp; from backprop import _fast;"
            "bp.nn.functional.max_pool2d(bp.ones(64, 16, 32, 32), 2);"
            "print(_fast.kernels('conv') is None, 'numba' in sys.modules)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_THREADING_LAYER", "BACKPROP_FAST")}
    run = lambda: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True).stdout.strip()
    if _fast.is_available():
        assert run() == "False True"
    env["BACKPROP_FAST"] = "0"
    assert run() == "True False"


@pytest.mark.slow
def test_parallel_kernels_launched_from_two_threads_at_once(needs_numba):
    # in a child process: without the launch lock the workqueue layer kills the process
    code = """
import threading
import numpy as np
import backprop as bp
from backprop import _fast
from backprop.nn import functional as F
from backprop._fast import _jit
_jit.parallel = True  # parallel conv kernels on the workqueue layer, whose launches race
assert _fast.kernels("conv") is not None
x = bp.tensor(np.random.default_rng(0).standard_normal((64, 16, 32, 32)).astype(np.float32))
want = F.max_pool2d(x, 2).data
bad = []
def work():
    for _ in range(30):
        if not np.array_equal(F.max_pool2d(x, 2).data, want):
            bad.append(1)
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print("ok", len(bad))
"""
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP_FAST"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok 0"
