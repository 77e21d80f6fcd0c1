"""Ready-made datasets: real digits (scikit-learn's 8x8, MNIST and Fashion-MNIST from their IDX
files), synthetic tasks, and a user's own CSV table. Each returns a ``LabeledDataset``."""

from backprop.data.dataset import DatasetError, LabeledDataset
from backprop.data.datasets.csv import load_csv
from backprop.data.datasets.digits import load_digits
from backprop.data.datasets.idx import MNIST, FashionMNIST, read_idx
from backprop.data.datasets.synthetic import parity, spirals, symmetry, xor

__all__ = [
    "MNIST", "DatasetError", "FashionMNIST", "LabeledDataset", "load_csv", "load_digits",
    "parity", "read_idx", "spirals", "symmetry", "xor",
]
