"""``backprop.data``: datasets, ``DataLoader`` (vectorised, seeded), ready-made datasets and
transforms, with PyTorch's names.

Example:
    >>> import backprop as bp
    >>> from backprop.data import DataLoader
    >>> from backprop.data.datasets import spirals
    >>> loader = DataLoader(spirals(n=50), batch_size=64, shuffle=True, seed=0)
    >>> x, y = next(iter(loader))
    >>> x.shape, x.dtype, y.dtype, len(loader)
    ((64, 2), dtype('float32'), dtype('int64'), 3)
"""

import importlib

from backprop.data import transforms
from backprop.data.dataloader import DataLoader, default_collate
from backprop.data.dataset import (
    Dataset,
    DatasetError,
    LabeledDataset,
    Subset,
    TensorDataset,
    random_split,
)
from backprop.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
)

__all__ = [
    "DataLoader", "Dataset", "DatasetError", "LabeledDataset", "Subset", "TensorDataset",
    "datasets", "default_collate", "random_split", "transforms",
    "BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
]


def __getattr__(name: str):
    # ``datasets`` is imported on first use: its file readers (gzip, csv, pathlib) would add
    # about 25 ms to every ``import backprop``.
    if name == "datasets":
        return importlib.import_module("backprop.data.datasets")
    raise AttributeError(f"module 'backprop.data' has no attribute {name!r}")
