"""How parallel kernels are launched: the size rule for threads, and launches from several
Python threads at once (numba's workqueue layer aborts the process on concurrent launches)."""

import os
import subprocess
import sys

import pytest

from backprop import _fast


def test_thread_count_depends_on_size_only(needs_numba):
    from backprop._fast import _jit

    assert _jit.threads_for(_fast.PARALLEL_MIN - 1) == 1
    assert _jit.threads_for(_fast.PARALLEL_MIN) == _jit._all_threads
    with _jit.launch(10) as k:
        assert k == 1


def test_the_workqueue_layer_is_chosen_unless_the_user_chose(needs_numba):
    code = ("import numba, backprop._fast._jit; print(numba.config.THREADING_LAYER)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "workqueue"


@pytest.mark.slow
def test_parallel_kernels_launched_from_two_threads_at_once(needs_numba):
    # in a child process: without the launch lock the workqueue layer kills the process
    code = """
import threading
import numpy as np
import backprop as bp
from backprop import _fast
from backprop.nn import functional as F
_fast._wanted["conv"] = True  # the conv kernels on the workqueue layer, whose launches race
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
