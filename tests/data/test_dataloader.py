"""Dataset, TensorDataset, Subset, random_split and DataLoader."""

import numpy as np
import pytest

import backprop as bp
from backprop.data import (
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


def _ids_dataset(n=103, features=3, rng=None):
    """Features whose first column is the sample's id, labels = id, so batches can be traced."""
    rng = rng or np.random.default_rng(0)
    x = rng.standard_normal((n, features))
    x[:, 0] = np.arange(n)
    return TensorDataset(x, np.arange(n))


def _epoch_ids(loader):
    return np.concatenate([y.numpy() for _, y in loader])


class NoPerSampleAccess(TensorDataset):
    """Fails the test if the loader ever falls back to one __getitem__ per sample."""

    def __getitem__(self, index):
        raise AssertionError("DataLoader indexed a single sample: the batching is not vectorised")


class PlainDataset(Dataset):
    """A dataset with __getitem__ only: the loader must fall back to collating samples."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


# --- epochs, order, seeds ---


@pytest.mark.parametrize("shuffle", [False, True])
def test_epoch_covers_every_sample_exactly_once(shuffle):
    ds = _ids_dataset()
    ids = _epoch_ids(DataLoader(ds, batch_size=10, shuffle=shuffle, seed=1))
    assert len(ids) == len(ds)
    np.testing.assert_array_equal(np.sort(ids), np.arange(len(ds)))


def test_batches_pair_each_label_with_its_own_features():
    ds = _ids_dataset()
    for x, y in DataLoader(ds, batch_size=16, shuffle=True, seed=2):
        np.testing.assert_array_equal(x.numpy()[:, 0], y.numpy().astype(np.float32))
        np.testing.assert_array_equal(x.numpy(), ds.arrays[0][y.numpy()].astype(np.float32))


def test_unshuffled_loader_keeps_dataset_order():
    ids = _epoch_ids(DataLoader(_ids_dataset(), batch_size=7))
    np.testing.assert_array_equal(ids, np.arange(103))


def test_same_seed_gives_same_order_and_another_seed_a_different_one():
    ds = _ids_dataset()
    a = _epoch_ids(DataLoader(ds, batch_size=8, shuffle=True, seed=5))
    b = _epoch_ids(DataLoader(ds, batch_size=8, shuffle=True, seed=5))
    c = _epoch_ids(DataLoader(ds, batch_size=8, shuffle=True, seed=6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(len(ds)))


def test_each_epoch_draws_a_new_order_reproducibly():
    ds = _ids_dataset()
    loader = DataLoader(ds, batch_size=8, shuffle=True, seed=7)
    first, second = _epoch_ids(loader), _epoch_ids(loader)
    assert not np.array_equal(first, second)
    again = DataLoader(ds, batch_size=8, shuffle=True, seed=7)
    np.testing.assert_array_equal(_epoch_ids(again), first)
    np.testing.assert_array_equal(_epoch_ids(again), second)


def test_manual_seed_makes_an_unseeded_loader_reproducible():
    ds = _ids_dataset()
    bp.manual_seed(123)
    a = _epoch_ids(DataLoader(ds, batch_size=8, shuffle=True))
    bp.manual_seed(123)
    b = _epoch_ids(DataLoader(ds, batch_size=8, shuffle=True))
    bp.manual_seed(124)
    c = _epoch_ids(DataLoader(ds, batch_size=8, shuffle=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --- batch sizes ---


@pytest.mark.parametrize(
    "n, batch_size, drop_last, sizes",
    [
        (10, 4, False, [4, 4, 2]),
        (10, 4, True, [4, 4]),
        (12, 4, False, [4, 4, 4]),
        (12, 4, True, [4, 4, 4]),
        (3, 5, False, [3]),
        (3, 5, True, []),
        (5, 1, False, [1, 1, 1, 1, 1]),
    ],
)
def test_last_batch_and_drop_last_sizes(n, batch_size, drop_last, sizes):
    loader = DataLoader(_ids_dataset(n), batch_size=batch_size, shuffle=True,
                        drop_last=drop_last, seed=0)
    got = [len(y) for _, y in loader]
    assert got == sizes
    assert len(loader) == len(sizes)


def test_drop_last_drops_only_the_short_tail():
    ids = _epoch_ids(DataLoader(_ids_dataset(10), batch_size=4, shuffle=True, drop_last=True,
                                seed=3))
    assert len(ids) == 8 and len(np.unique(ids)) == 8


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_batch_size_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(_ids_dataset(), batch_size=bad)


# --- dtypes and tensors ---


@pytest.mark.parametrize("x_dtype", [np.float64, np.float32, np.float16, np.uint8])
def test_batches_are_float32_features_and_int64_labels(x_dtype):
    x = np.arange(24).reshape(6, 4).astype(x_dtype)
    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.int32)
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=4):
        assert isinstance(xb, bp.Tensor) and isinstance(yb, bp.Tensor)
        expected = np.float32 if x_dtype != np.uint8 else np.int64
        assert xb.dtype == expected
        assert yb.dtype == np.int64
        assert not xb.requires_grad


def test_batch_shapes_keep_sample_dims():
    ds = TensorDataset(np.zeros((9, 1, 8, 8), np.float32), np.zeros(9, np.int64))
    shapes = [(x.shape, y.shape) for x, y in DataLoader(ds, batch_size=4)]
    assert shapes == [((4, 1, 8, 8), (4,)), ((4, 1, 8, 8), (4,)), ((1, 1, 8, 8), (1,))]


def test_tensor_dataset_item_is_a_tuple_of_tensors():
    ds = TensorDataset(bp.tensor([[1.0, 2.0], [3.0, 4.0]]), np.array([7, 8], dtype=np.int32))
    x, y = ds[1]
    assert x.tolist() == [3.0, 4.0] and y.item() == 8 and y.dtype == np.int64
    assert len(ds) == 2 and len(ds.tensors) == 2


def test_tensor_dataset_rejects_arrays_of_different_lengths():
    with pytest.raises(ValueError, match=r"same length.*\(3, 2\), \(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))


# --- the vectorised path and the fallbacks ---


def test_loader_batches_arrays_without_touching_single_samples():
    x, y = np.random.default_rng(1).standard_normal((50, 3)), np.arange(50)
    ids = _epoch_ids(DataLoader(NoPerSampleAccess(x, y), batch_size=8, shuffle=True, seed=0))
    np.testing.assert_array_equal(np.sort(ids), np.arange(50))


def test_subset_of_an_array_dataset_batches_without_touching_single_samples():
    x, y = np.random.default_rng(2).standard_normal((50, 3)), np.arange(50)
    sub = Subset(NoPerSampleAccess(x, y), [49, 3, 17, 8])
    batches = [yb.tolist() for _, yb in DataLoader(sub, batch_size=3)]
    assert batches == [[49, 3, 17], [8]]


def test_plain_dataset_falls_back_to_collating_samples():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((11, 2)), rng.integers(0, 3, 11)
    plain = list(DataLoader(PlainDataset(x, y), batch_size=4, shuffle=True, seed=9))
    fast = list(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=9))
    assert len(plain) == len(fast) == 3
    for (xp, yp), (xf, yf) in zip(plain, fast):
        assert xp.dtype == np.float32 and yp.dtype == np.int64
        np.testing.assert_array_equal(xp.numpy(), xf.numpy())
        np.testing.assert_array_equal(yp.numpy(), yf.numpy())


def test_collate_fn_receives_the_list_of_samples():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return [int(y) for _, y in samples]

    batches = list(DataLoader(_ids_dataset(10), batch_size=4, collate_fn=collate))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and seen == [4, 4, 2]


def test_default_collate_stacks_tuples_and_dicts():
    x, y = default_collate([(np.zeros(3), 1), (np.ones(3), 2)])
    assert x.shape == (2, 3) and x.dtype == np.float32 and y.tolist() == [1, 2]
    d = default_collate([{"a": 1.5}, {"a": 2.5}])
    assert d["a"].tolist() == [1.5, 2.5] and d["a"].dtype == np.float32


def test_sampler_sets_the_order_every_epoch():
    loader = DataLoader(_ids_dataset(6), batch_size=4, sampler=[5, 0, 4, 1, 3])
    assert [y.tolist() for _, y in loader] == [[5, 0, 4, 1], [3]]
    assert [y.tolist() for _, y in loader] == [[5, 0, 4, 1], [3]]
    assert len(loader) == 2


def test_sampler_and_shuffle_exclude_each_other():
    with pytest.raises(ValueError, match="sampler and shuffle"):
        DataLoader(_ids_dataset(6), sampler=[0, 1], shuffle=True)


# --- Subset and random_split ---


def test_subset_indexes_into_its_dataset():
    sub = Subset(_ids_dataset(10), [7, 2])
    assert len(sub) == 2 and sub[0][1].item() == 7 and sub[1][1].item() == 2


def test_random_split_is_a_disjoint_cover():
    parts = random_split(_ids_dataset(20), [12, 5, 3], seed=0)
    assert [len(p) for p in parts] == [12, 5, 3]
    ids = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(ids), np.arange(20))


def test_random_split_fractions_hand_out_the_remainder_first_come():
    parts = random_split(_ids_dataset(10), [0.34, 0.33, 0.33], seed=0)
    assert [len(p) for p in parts] == [4, 3, 3]


def test_random_split_is_reproducible_by_seed_and_by_manual_seed():
    ds = _ids_dataset(30)
    a = random_split(ds, [20, 10], seed=4)[1].indices
    b = random_split(ds, [20, 10], seed=4)[1].indices
    c = random_split(ds, [20, 10], seed=5)[1].indices
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a), np.sort(c))
    bp.manual_seed(8)
    d = random_split(ds, [20, 10])[1].indices
    bp.manual_seed(8)
    np.testing.assert_array_equal(d, random_split(ds, [20, 10])[1].indices)


@pytest.mark.parametrize("lengths", [[5, 4], [6, 5], [-1, 11], [0.5, 0.6]])
def test_random_split_rejects_lengths_that_do_not_add_up(lengths):
    with pytest.raises(ValueError, match="random_split"):
        random_split(_ids_dataset(10), lengths, seed=0)


def test_loader_repr_names_its_settings():
    text = repr(DataLoader(_ids_dataset(10), batch_size=4, shuffle=True, seed=11))
    assert "batch_size=4" in text and "shuffle=True" in text and "seed=11" in text


def test_importing_the_datasets_leaves_sklearn_unimported():
    import subprocess
    import sys

    code = ("import sys, backprop.data.datasets, backprop.data; "
            "print(any(m.split('.')[0] == 'sklearn' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
