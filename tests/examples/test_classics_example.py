"""Smoke tests of examples/classics.py (the real runs are by hand: see README "Examples")."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "classics.py"
MNIST_DIR = Path(os.environ.get("BACKPROP_MNIST_DIR", ROOT.parent / "shared" / "data" / "mnist"))


def _load():
    spec = importlib.util.spec_from_file_location("classics_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tasks_are_the_papers():
    example = _load()
    x, y = example.symmetry_task()
    assert x.shape == (64, 6) and y.sum() == 8  # 2^3 palindromes of 6 bits
    x, y = example.encoder_task()
    assert (x == np.eye(8)).all() and (y == x).all()


def test_xor_is_solved_and_the_criterion_holds():
    example = _load()
    task, sizes, eps, cap = example.TASKS["xor 2-2-1"]
    sweeps = example.sweeps_to_solve(task, sizes, eps, cap, seed=0)
    assert sweeps is not None and 10 < sweeps < cap
    assert example.sweeps_to_solve(task, sizes, eps, sweeps, seed=0) is None  # not one sooner


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"MNIST not found in {MNIST_DIR} "
                    "(set BACKPROP_MNIST_DIR)")
def test_nielsen_network2_one_epoch(capsys):
    accs = _load().nielsen(str(MNIST_DIR), "network2", epochs=1)
    assert accs[0] > 0.93
