"""``backprop.utils.data`` is PyTorch's ``torch.utils.data`` path to ``backprop.data``; the
DataLoader takes PyTorch's arguments; a TensorDataset of user Tensors keeps their dtype
(issue 15). Each checked against torch where torch has the same thing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
import backprop.data as bd

torch = pytest.importorskip("torch")
tud = pytest.importorskip("torch.utils.data")

NAMES = ["BatchSampler", "DataLoader", "Dataset", "RandomSampler", "Sampler",
         "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset",
         "default_collate", "random_split"]


def test_utils_data_holds_the_same_objects_as_backprop_data_under_torch_s_names():
    from backprop.utils.data import DataLoader

    assert DataLoader is bd.DataLoader
    for name in NAMES:
        assert getattr(bp.utils.data, name) is getattr(bd, name), name
        assert hasattr(tud, name), name  # every name is torch's


def test_import_backprop_loads_utils_only_on_first_use():
    code = ("import sys, backprop as bp; before = 'backprop.utils' in sys.modules; "
            "bp.utils.data.DataLoader; print(before, 'backprop.utils.data' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "True"]


def test_tensor_dataset_of_float64_tensors_yields_float64_batches_as_torch():
    x64 = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 1, 0])
    ours = bd.DataLoader(bd.TensorDataset(bp.tensor(x64), bp.tensor(y)), batch_size=4)
    theirs = tud.DataLoader(tud.TensorDataset(torch.tensor(x64), torch.tensor(y)),
                            batch_size=4)
    for (xb, yb), (txb, tyb) in zip(ours, theirs, strict=True):
        assert xb.dtype == np.float64 and str(txb.dtype) == "torch.float64"
        np.testing.assert_array_equal(xb.data, txb.numpy())
        np.testing.assert_array_equal(yb.data, tyb.numpy())
    # through random_split's Subsets, and item by item, the dtype stays
    part, _ = bd.random_split(bd.TensorDataset(bp.tensor(x64)), [4, 2], seed=0)
    (xb,) = next(iter(bd.DataLoader(part, batch_size=4)))
    assert xb.dtype == np.float64 and part[0][0].dtype == np.float64
    # a custom dataset returning float64 Tensors: default_collate keeps them too (as torch)
    batch = bd.default_collate([bp.tensor([1.0, 2.0], dtype=bp.float64)] * 3)
    assert batch.dtype == np.float64
    assert tud.default_collate([torch.tensor([1.0, 2.0], dtype=torch.float64)] * 3).dtype == \
        torch.float64
    # NumPy arrays keep backprop's batch dtypes; built-in datasets still yield float32
    (xa,) = next(iter(bd.DataLoader(bd.TensorDataset(x64), batch_size=2)))
    assert xa.dtype == np.float32


def test_dataloader_accepts_torch_s_worker_options_and_loads_the_same_batches():
    x = np.arange(20.0, dtype=np.float32).reshape(10, 2)
    ds = bd.TensorDataset(bp.tensor(x))
    plain = [b[0].data for b in bd.DataLoader(ds, batch_size=3)]
    for kw in ({"num_workers": 2}, {"num_workers": 2, "persistent_workers": True,
                                    "prefetch_factor": 4, "pin_memory": True},
               {"timeout": 5, "worker_init_fn": lambda i: None, "in_order": True}):
        loader = bd.DataLoader(ds, 3, **kw)
        got = [b[0].data for b in loader]
        assert len(got) == len(plain) == len(loader)
        for a, b in zip(got, plain):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [
    {"num_workers": -1},
    {"persistent_workers": True},          # needs workers
    {"prefetch_factor": 2},                # needs workers
    {"batch_sampler": [[0, 1]], "batch_size": 2},
    {"sampler": [0, 1], "shuffle": True},
    {"batch_size": 0},
])
def test_dataloader_raises_value_error_where_torch_does(kwargs):
    ds = tud.TensorDataset(torch.zeros(4, 1))
    with pytest.raises(ValueError):
        tud.DataLoader(ds, **kwargs)
    with pytest.raises(ValueError):
        bd.DataLoader(bd.TensorDataset(bp.zeros(4, 1)), **kwargs)


def test_generator_drives_shuffling_reproducibly():
    ds = bd.TensorDataset(bp.arange(50))

    def epoch(seed):
        loader = bd.DataLoader(ds, batch_size=7, shuffle=True,
                               generator=bp.Generator().manual_seed(seed))
        return np.concatenate([b[0].data for b in loader])

    a, b, c = epoch(1), epoch(1), epoch(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and sorted(a) == list(range(50))


def test_random_split_takes_a_generator_positionally_as_torch_programs_pass_it():
    ds = bd.TensorDataset(bp.arange(10))
    parts = [bd.random_split(ds, [0.7, 0.3], bp.Generator().manual_seed(42)) for _ in range(2)]
    np.testing.assert_array_equal(parts[0][0].indices, parts[1][0].indices)
    assert sorted(np.concatenate([p.indices for p in parts[0]])) == list(range(10))
    # fractional lengths are rounded as torch rounds them
    for lengths in ([0.7, 0.3], [0.34, 0.33, 0.33], [0.5, 0.5]):
        theirs = tud.random_split(range(11), lengths, torch.Generator().manual_seed(0))
        ours = bd.random_split(range(11), lengths, bp.Generator().manual_seed(0))
        assert [len(p) for p in ours] == [len(p) for p in theirs]
    with pytest.raises(ValueError):
        bd.random_split(ds, [3, 3])
    with pytest.raises(ValueError):
        tud.random_split(tud.TensorDataset(torch.arange(10)), [3, 3])


def test_samplers_match_torch():
    assert list(bd.SequentialSampler(range(5))) == list(tud.SequentialSampler(range(5)))
    for drop in (False, True):
        assert list(bd.BatchSampler(range(7), 3, drop)) == list(tud.BatchSampler(range(7), 3,
                                                                                     drop))
        assert len(bd.BatchSampler(range(7), 3, drop)) == len(tud.BatchSampler(range(7), 3,
                                                                                 drop))
    sub = bd.SubsetRandomSampler([2, 5, 7], generator=bp.Generator().manual_seed(0))
    assert sorted(sub) == [2, 5, 7] and len(sub) == 3
    rs = bd.RandomSampler(range(4), replacement=True, num_samples=9)
    assert len(list(rs)) == len(rs) == 9 and set(rs) <= set(range(4))
    assert sorted(bd.RandomSampler(range(6))) == list(range(6))
    # a sampler and a batch sampler drive the loader
    ds = bd.TensorDataset(bp.arange(10))
    got = [b[0].tolist() for b in bd.DataLoader(ds, sampler=bd.SubsetRandomSampler([1, 3, 5]),
                                                 batch_size=2)]
    assert sorted(sum(got, [])) == [1, 3, 5]
    got = [b[0].tolist() for b in bd.DataLoader(ds, batch_sampler=[[0, 9], [4]])]
    assert got == [[0, 9], [4]]
    with pytest.raises(ValueError):
        bd.RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError):
        tud.RandomSampler(range(3), num_samples=0)
