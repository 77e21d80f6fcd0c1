"""scikit-learn's 8x8 digits (stratified split) and the synthetic tasks."""

import sys

import numpy as np
import pytest

from backprop.data import DataLoader
from backprop.data.datasets import load_digits, parity, spirals, symmetry, xor
from backprop.data.datasets.digits import stratified_split

sklearn_datasets = pytest.importorskip("sklearn.datasets")
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(scope="module")
def digits():
    return load_digits(train=True), load_digits(train=False)


def _rows(data):
    """The images as a sorted multiset of byte strings (order-free comparison)."""
    return sorted(r.tobytes() for r in data.reshape(len(data), -1))


# --- digits ---


def test_digits_has_1797_images_split_80_20(digits):
    train, test = digits
    assert len(train) + len(test) == 1797
    assert (len(train), len(test)) == (1437, 360)
    assert train.data.shape == (1437, 1, 8, 8) and train.data.dtype == np.float32
    assert train.targets.dtype == np.int64 and train.classes == [str(d) for d in range(10)]
    assert train.data.min() == 0.0 and train.data.max() == 1.0


def test_digits_train_and_test_together_are_exactly_all_images(digits):
    train, test = digits
    bunch = sklearn_datasets.load_digits()
    everything = (bunch.images / 16.0).astype(np.float32)
    assert _rows(np.concatenate([train.data, test.data])) == _rows(everything)
    counts = np.bincount(train.targets, minlength=10) + np.bincount(test.targets, minlength=10)
    assert counts.tolist() == DIGIT_COUNTS


def test_digits_split_is_stratified(digits):
    _, test = digits
    test_counts = np.bincount(test.targets, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * np.array(DIGIT_COUNTS)) < 1)


def test_digits_split_is_reproducible_and_depends_on_the_seed(digits):
    train, _ = digits
    again = load_digits(train=True, seed=0)
    np.testing.assert_array_equal(again.data, train.data)
    np.testing.assert_array_equal(again.targets, train.targets)
    other = load_digits(train=True, seed=1)
    assert _rows(other.data) != _rows(train.data)


def test_digits_test_size_sets_the_held_out_share():
    assert len(load_digits(train=False, test_size=0.5)) == 899  # ceil(0.5 * 1797)


def test_digits_without_sklearn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()


def test_digits_go_through_the_loader(digits):
    x, y = next(iter(DataLoader(digits[0], batch_size=32, shuffle=True, seed=0)))
    assert x.shape == (32, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64


@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.5])
def test_stratified_split_keeps_each_class_share(rng, test_size):
    targets = rng.choice(4, size=203, p=[0.55, 0.3, 0.1, 0.05])
    train_idx, test_idx = stratified_split(targets, test_size, seed=3)
    assert len(test_idx) == int(np.ceil(test_size * 203))
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(203))
    expected = test_size * np.bincount(targets)
    assert np.all(np.abs(np.bincount(targets[test_idx], minlength=4) - expected) < 1)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5])
def test_stratified_split_rejects_test_size_outside_0_1(bad):
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(np.zeros(10), bad, seed=0)


# --- synthetic tasks ---


def test_xor_is_the_truth_table():
    ds = xor()
    assert ds.data.dtype == np.float32 and ds.targets.dtype == np.int64
    assert ds.data.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert ds.targets.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("n_bits", [1, 3, 8])
def test_parity_enumerates_every_pattern_with_its_parity(n_bits):
    ds = parity(n_bits)
    assert ds.data.shape == (2**n_bits, n_bits)
    assert len({r.tobytes() for r in ds.data}) == 2**n_bits
    np.testing.assert_array_equal(ds.targets, ds.data.sum(axis=1).astype(np.int64) % 2)


def test_symmetry_marks_palindromes():
    ds = symmetry(6)
    assert len(ds) == 64 and ds.targets.sum() == 8  # 2**3 palindromes of 6 bits
    for row, label in zip(ds.data, ds.targets):
        assert label == int(np.array_equal(row, row[::-1]))


@pytest.mark.parametrize("bad", [0, 21, 2.0, True])
def test_bit_tasks_reject_bad_widths(bad):
    with pytest.raises(ValueError, match="n_bits"):
        parity(bad)
    with pytest.raises(ValueError, match="n_bits"):
        symmetry(bad)


def test_spirals_shape_balance_and_seeding():
    ds = spirals(n=50, classes=4, noise=0.1, seed=2)
    assert ds.data.shape == (200, 2) and ds.data.dtype == np.float32
    assert np.bincount(ds.targets).tolist() == [50] * 4 and len(ds.classes) == 4
    assert np.all(np.hypot(ds.data[:, 0], ds.data[:, 1]) <= 1.0 + 1e-6)
    np.testing.assert_array_equal(spirals(50, 4, 0.1, seed=2).data, ds.data)
    assert not np.array_equal(spirals(50, 4, 0.1, seed=3).data, ds.data)


def test_spirals_without_noise_lie_on_their_arm():
    ds = spirals(n=20, classes=2, noise=0.0)
    r = np.hypot(ds.data[:, 0], ds.data[:, 1])
    theta = np.arctan2(ds.data[:, 0], ds.data[:, 1])
    expected = 4.0 * ds.targets + 4.0 * r
    np.testing.assert_allclose(np.angle(np.exp(1j * (theta - expected)))[r > 0], 0, atol=1e-5)


def test_spirals_reject_bad_arguments():
    with pytest.raises(ValueError, match="spirals"):
        spirals(n=0)
