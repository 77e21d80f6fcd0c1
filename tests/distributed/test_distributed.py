"""backprop.distributed: DDP over a real ``mpirun -n 2``, DistributedSampler, SyncBatchNorm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import backprop as bp
from backprop import distributed as dist
from tests.distributed.mpi import WORKER, run_mpi

# --- one process: a world of one ----------------------------------------------------------


def test_world_of_one_outside_mpirun():
    dist.init()
    assert (dist.rank(), dist.world_size(), dist.is_initialized()) == (0, 1, True)
    a = np.arange(3.0)
    assert dist.all_reduce(a) is a and a.tolist() == [0.0, 1.0, 2.0]


def test_init_under_mpirun_without_mpi4py_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from backprop import distributed as dist\n"
            "try:\n    dist.init()\nexcept dist.DistributedError as e:\n    print(e)\n")
    env = {**os.environ, "OMPI_COMM_WORLD_SIZE": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert "pip install 'backprop[mpi]'" in out.stdout, out.stdout + out.stderr


def test_ddp_state_dict_has_module_prefix_and_loads_into_the_bare_model():
    bp.manual_seed(0)
    net = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.ReLU(), bp.nn.Linear(4, 2))
    ddp = dist.DistributedDataParallel(net)
    assert list(ddp.state_dict()) == ["module.0.weight", "module.0.bias", "module.2.weight",
                                      "module.2.bias"]
    assert [id(p) for p in ddp.parameters()] == [id(p) for p in net.parameters()]
    fresh = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.ReLU(), bp.nn.Linear(4, 2))
    fresh.load_state_dict(ddp.module.state_dict())
    x = bp.randn(5, 3)
    np.testing.assert_array_equal(fresh(x).detach().numpy(), ddp(x).detach().numpy())


def test_ddp_buckets_go_backwards_and_the_first_is_small():
    net = bp.nn.Sequential(bp.nn.Linear(784, 512), bp.nn.Linear(512, 256), bp.nn.Linear(256, 10))
    ddp = dist.DistributedDataParallel(net)
    # the output layer's gradients come first in backward, so they are in the first bucket;
    # the 1 MiB cap of the first bucket keeps 784x512 (1.5 MiB) out of it
    assert ddp.buckets[0][:2] == ["2.bias", "2.weight"]
    assert ddp.buckets[-1] == ["0.weight"]
    assert sorted(sum(ddp.buckets, [])) == sorted(n for n, _ in net.named_parameters())


def test_distributed_sampler_shards_are_disjoint_cover_and_change_per_epoch():
    data = range(10)
    shards = [dist.DistributedSampler(data, num_replicas=3, rank=r, seed=5) for r in range(3)]
    first = [s.indices() for s in shards]
    assert all(len(s) == 4 for s in shards)  # padded to 12 = 3 x 4
    assert set(np.concatenate(first)) == set(range(10))
    # disjoint but for the padding: 2 indices repeated to make 12
    assert sorted(np.bincount(np.concatenate(first), minlength=10)) == [1] * 8 + [2] * 2
    for s in shards:
        s.set_epoch(1)
    assert not all(np.array_equal(a, s.indices()) for a, s in zip(first, shards))
    # N shards of per-rank batch B together are the one-process batches of N·B
    one = dist.DistributedSampler(range(12), num_replicas=1, rank=0, seed=5).indices()
    two = [dist.DistributedSampler(range(12), 2, r, seed=5).indices() for r in range(2)]
    for k in range(3):
        assert set(one[4 * k:4 * k + 4]) == set(two[0][2 * k:2 * k + 2]) | set(
            two[1][2 * k:2 * k + 2])
    assert len(dist.DistributedSampler(range(10), 3, 0, drop_last=True)) == 3
    with pytest.raises(ValueError, match="rank must be in"):
        dist.DistributedSampler(data, num_replicas=2, rank=2)


def test_sync_batch_norm_op_gradcheck_in_a_world_of_one(rng):
    x = bp.tensor(rng.normal(size=(4, 3, 2, 2)), requires_grad=True)
    w = bp.tensor(rng.normal(size=3), requires_grad=True)
    b = bp.tensor(rng.normal(size=3), requires_grad=True)
    assert bp.gradcheck(lambda x, w, b: dist.sync_batch_norm(x, w, b)[0], (x, w, b))
    # and it is the fused batch_norm of one process, values and gradients
    y, mu, var = dist.sync_batch_norm(x, w, b)
    ref = bp.nn.functional.batch_norm(x, None, None, w, b, training=True)
    xa = x.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(mu.numpy(), xa.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), xa.var(axis=(0, 2, 3)), rtol=1e-12)


def test_sync_batch_norm_is_batch_norm_in_one_process_and_converts(rng):
    bp.manual_seed(0)
    net = bp.nn.Sequential(bp.nn.Conv2d(2, 3, 3), bp.nn.BatchNorm2d(3), bp.nn.ReLU())
    x = bp.tensor(rng.normal(size=(4, 2, 5, 5)).astype(np.float32))
    ref = net(x).detach().numpy()
    converted = bp.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert type(converted[1]).__name__ == "SyncBatchNorm"
    np.testing.assert_allclose(converted(x).detach().numpy(), ref, rtol=1e-6, atol=1e-6)
    assert list(converted.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                            "1.running_mean", "1.running_var",
                                            "1.num_batches_tracked"]


def test_collective_timeout_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        dist.set_timeout(0)


# --- a real mpirun -n 2 --------------------------------------------------------------------


@pytest.fixture(scope="module")
def equivalence_run(tmp_path_factory):
    """One mpirun -n 2 and one single process of the worker (shared by the tests below)."""
    out = tmp_path_factory.mktemp("ddp")
    two = run_mpi(2, sys.executable, str(WORKER), "equivalence", str(out))
    assert two.returncode == 0, two.stdout + two.stderr
    one = subprocess.run([sys.executable, str(WORKER), "equivalence", str(out)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stdout + one.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_two_ranks_give_the_weights_of_one_process_with_twice_the_batch(equivalence_run,
                                                                        dtype, tol):
    one = np.load(equivalence_run / f"{dtype}-world1-rank0.npz")
    ranks = [np.load(equivalence_run / f"{dtype}-world2-rank{r}.npz") for r in range(2)]
    assert list(one) == list(ranks[0])
    moved = 0
    for key in one:
        ref = one[key]
        for state in ranks:
            scale = max(np.abs(ref).max(), 1e-30)
            assert np.abs(state[key] - ref).max() / scale <= tol, (key, dtype)
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])  # ranks agree exactly
        moved += key.endswith("running_mean") and np.abs(ref).max() > 0
    assert moved == 2  # SyncBatchNorm's running statistics were trained and compared too


@pytest.mark.slow
def test_first_bucket_all_reduce_starts_before_backward_ends(equivalence_run):
    for r in range(2):
        result = json.loads((equivalence_run / f"overlap-world2-rank{r}.json").read_text())
        assert len(result["buckets"]) == 2
        # init() limits each rank to one thread, in every BLAS loaded (NumPy's, and SciPy's
        # when numba's kernels bring it in later)
        assert all(n == 1 for n in result["blas_threads"]), result["blas_threads"]
        for t in result["timelines"]:
            first_start = t["buckets"][0][0]
            assert first_start < t["backward_end"], t
            assert t["first_grad_ready"] <= first_start


@pytest.mark.slow
def test_no_sync_keeps_local_gradients_and_the_next_backward_averages_them(equivalence_run):
    r0, r1 = (json.loads((equivalence_run / f"overlap-world2-rank{r}.json").read_text())
              for r in range(2))
    assert not np.allclose(r0["no_sync_local"], r1["no_sync_local"])
    np.testing.assert_array_equal(r0["after_sync"], r1["after_sync"])
    # the average of what each rank accumulated: (2·local₀ + 2·local₁) / 2
    np.testing.assert_allclose(r0["after_sync"], np.add(r0["no_sync_local"],
                                                        r1["no_sync_local"]), rtol=1e-5)


@pytest.mark.slow
def test_a_hanging_rank_makes_the_other_stop_within_the_timeout_naming_it(tmp_path):
    t0 = time.monotonic()
    out = run_mpi(2, sys.executable, str(WORKER), "hang", str(tmp_path),
                  env={"TEST_DIST_TIMEOUT": "2"}, timeout=60)
    elapsed = time.monotonic() - t0
    assert out.returncode != 0
    assert "rank 1 did not reach the test's all-reduce within 2 s" in out.stdout, out.stdout
    assert "ranks=(1,)" in out.stdout
    assert elapsed < 30
