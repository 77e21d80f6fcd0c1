"""backprop._blas: the BLAS thread count is a function of the product's size and the setting."""

import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import _blas


@pytest.fixture
def policy():
    yield _blas
    _blas.set_blas_threads("auto")


def test_auto_runs_small_products_on_one_thread(policy):
    policy.set_blas_threads("auto")
    if policy.blas_threads_for(1) is None:
        pytest.skip("no controllable BLAS (threadpoolctl cannot see NumPy's)")
    assert policy.blas_threads_for(128 * 784 * 512) == 1
    assert policy.blas_threads_for(policy.LARGE_MACS) == policy._default
    policy.set_blas_threads(3)
    assert policy.blas_threads_for(10) == policy.blas_threads_for(10**12) == 3
    policy.set_blas_threads("default")
    assert policy.blas_threads_for(10) is None


@pytest.mark.parametrize("bad", [0, -1, 2.5, "two", True])
def test_bad_settings_are_refused(policy, bad):
    with pytest.raises(ValueError, match="set_blas_threads"):
        bp.set_blas_threads(bad)


def test_bad_environment_setting_names_the_variable():
    code = "import backprop as bp; (bp.ones(2, 2) @ bp.ones(2, 2))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"BACKPROP_BLAS_THREADS": "many", "PATH": ""})
    assert r.returncode != 0 and "BACKPROP_BLAS_THREADS" in r.stderr


def test_a_setting_gives_the_same_bits_every_time(policy, rng):
    """The thread count follows sizes and settings, so a run repeats bit for bit. (A different
    thread count may change the last bits: OpenBLAS splits some products' sums between threads,
    e.g. 128x784 @ 784x512 float32, the MNIST MLP's first layer.)"""
    a = bp.tensor(rng.standard_normal((128, 784)).astype(np.float32))
    b = bp.tensor(rng.standard_normal((784, 512)).astype(np.float32))
    for threads in (1, 2):
        policy.set_blas_threads(threads)
        first = (a @ b).data.copy()
        for _ in range(3):
            assert (a @ b).data.tobytes() == first.tobytes()


def test_set_num_threads_one_keeps_everything_on_the_calling_thread(policy):
    """PyTorch's torch.set_num_threads(1) carries over: no BLAS threads, no two-block products
    or kernels; set_num_threads(2) is back to the auto policy."""
    bp.set_num_threads(1)
    assert bp.get_num_threads() == 1
    assert not policy.pairs_allowed() and not policy._split
    if policy.blas_threads_for(1) is not None:
        assert policy.blas_threads_for(policy.LARGE_MACS) == 1
    bp.set_num_threads(2)
    assert policy._one_thread is False
    if policy._pair.available():
        assert bp.get_num_threads() == 2 and policy.pairs_allowed()
    if policy.blas_threads_for(1) is not None:
        assert policy.blas_threads_for(policy.LARGE_MACS) == min(2, policy._default)


def test_set_num_threads_caps_the_blas_threads_of_large_products(policy, monkeypatch):
    if policy.blas_threads_for(1) is None:
        pytest.skip("no controllable BLAS (threadpoolctl cannot see NumPy's)")
    monkeypatch.setattr(policy, "_default", 8)
    bp.set_num_threads(4)
    assert policy.blas_threads_for(policy.LARGE_MACS) == 4 and bp.get_num_threads() == 4
    assert policy.blas_threads_for(1) == 1
    bp.set_num_threads(16)
    assert policy.blas_threads_for(policy.LARGE_MACS) == 8


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True, None])
def test_set_num_threads_refuses_what_is_not_a_positive_int(policy, bad):
    with pytest.raises(ValueError, match=r"set_num_threads: expected a positive int.*"
                                         r"bp\.set_num_threads\(1\)"):
        bp.set_num_threads(bad)
