"""The 8x8 handwritten digits that ship with scikit-learn (UCI "optdigits" test set, 1,797 images).

Real data with no download: scikit-learn carries the file, and is a dependency of this package.
It is imported only when ``load_digits`` runs, so ``import backprop`` stays NumPy-only.
"""

from __future__ import annotations

import numpy as np

from backprop.data.dataset import LabeledDataset


def stratified_split(targets: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Seeded stratified train/test indices: each class keeps its share in both parts.

    The test part has ``ceil(test_size * N)`` samples (scikit-learn's rounding); class k gets
    ``floor(test_size * n_k)`` of them plus, largest fractional remainder first, one more until
    the total is reached. Both index arrays are sorted.

    Args:
        targets: (N,) class labels.
        test_size: fraction in (0, 1) held out for the test part.
        seed: seeds the per-class shuffles.

    Returns:
        (train_indices, test_indices), int64.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    targets = np.asarray(targets)
    classes, counts = np.unique(targets, return_counts=True)
    exact = test_size * counts
    per_class = np.floor(exact).astype(np.int64)
    short = int(np.ceil(test_size * len(targets))) - per_class.sum()
    # stable sort: ties in remainder go to the lower class, so the split is fully determined
    per_class[np.argsort(-(exact - per_class), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    test = [rng.permutation(np.flatnonzero(targets == c))[:k] for c, k in zip(classes, per_class)]
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(targets)), test_idx)
    return train_idx.astype(np.int64), test_idx.astype(np.int64)


def load_digits(train: bool = True, test_size: float = 0.2, seed: int = 0) -> LabeledDataset:
    """The 1,797 real 8x8 handwritten digits bundled with scikit-learn, split train/test.

    The split is stratified (each digit keeps its share in both parts) and fixed by ``seed``, so
    ``train=True`` and ``train=False`` with the same arguments are disjoint and together cover all
    1,797 images.

    Args:
        train: the training part (1 - test_size of the images), else the test part.
        test_size: the fraction held out for the test part (default 0.2: 360 images).
        seed: seeds the split.

    Returns:
        a ``LabeledDataset``: ``data`` (N, 1, 8, 8) float32 in [0, 1] (pixel / 16), ``targets``
        (N,) int64 digits, ``classes`` "0".."9".

    Raises:
        ImportError: scikit-learn is not installed (the message says how to install it).

    Example:
        >>> from backprop.data.datasets import load_digits
        >>> train = load_digits()
        >>> len(train), train.data.shape[1:], train.data.dtype
        (1437, (1, 8, 8), dtype('float32'))
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        raise ImportError(
            "load_digits needs scikit-learn, which ships the 8x8 digits: install it with "
            "`pip install scikit-learn` (it is a dependency of backprop, so "
            "`pip install backprop` brings it too)"
        ) from exc
    bunch = _sk_load_digits()
    images = np.asarray(bunch.images)  # (1797, 8, 8) float64 in 0..16
    targets = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(targets, test_size, seed)
    idx = train_idx if train else test_idx
    data = np.divide(images[idx], 16.0).astype(np.float32)[:, None, :, :]
    return LabeledDataset(data, targets[idx], [str(d) for d in range(10)],
                          name=f"digits({'train' if train else 'test'})")
