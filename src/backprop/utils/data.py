"""``backprop.utils.data``: PyTorch's ``torch.utils.data`` names for ``backprop.data``.

Everything here *is* the object in ``backprop.data`` (``backprop.utils.data.DataLoader is
backprop.data.DataLoader``): ``torch.utils.data.DataLoader`` works after
``import backprop as torch``, and ``from torch.utils.data import DataLoader`` becomes
``from backprop.utils.data import DataLoader``.

Example:
    >>> import backprop as bp
    >>> from backprop.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(bp.arange(6.0).reshape(3, 2), bp.tensor([0, 1, 0]))
    >>> x, y = next(iter(DataLoader(ds, batch_size=2, num_workers=2)))
    >>> x.shape, y.tolist()
    ((2, 2), [0, 1])
"""

from backprop.data import (
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)
from backprop.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
)

__all__ = ["BatchSampler", "DataLoader", "Dataset", "RandomSampler", "Sampler",
           "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset",
           "default_collate", "random_split"]
