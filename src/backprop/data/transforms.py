"""Transforms on batches or whole datasets: ``Normalize``, ``flatten``, ``one_hot``.

Each takes an ndarray or a Tensor and returns the same kind. Applying one to a dataset's whole
``.data`` array once (``train.data = Normalize(0.1307, 0.3081)(train.data)``) is the fastest way;
applied to a Tensor batch it records the ops like any other (Normalize is differentiable).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backprop.tensor import Tensor


def _channel_shape(ndim: int, size: int) -> tuple[int, ...]:
    """Where per-channel statistics broadcast: dim -3 of images (..., C, H, W), else the last
    dim (features of an (N, F) table)."""
    if ndim >= 3:
        return (size, 1, 1)
    return (size,)


class Normalize:
    """``(x - mean) / std``, per channel, keeping float32 (torchvision's Normalize).

    Args:
        mean: one number, or one per channel.
        std: one number, or one per channel (non-zero).

    Per-channel values apply along dim -3 of an input with at least 3 dims ((N, C, H, W) or
    (C, H, W)), and along the last dim of a 1-D or 2-D input ((N, F) features).

    Example:
        >>> import numpy as np
        >>> from backprop.data.transforms import Normalize
        >>> Normalize(0.5, 0.25)(np.array([0.0, 0.5, 1.0], dtype=np.float32))
        array([-2.,  0.,  2.], dtype=float32)
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if len(self.mean) == 0 or len(self.std) == 0:
            raise ValueError("Normalize: mean and std need at least one value each")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    @classmethod
    def fit(cls, data, per_channel: bool = True) -> Normalize:
        """The Normalize that standardises ``data`` (training data: apply it to the test data too).

        Statistics are per channel (dim -3 of images, last dim of (N, F) tables), or over all
        values with ``per_channel=False``. A constant channel gets std 1.
        """
        arr = data.data if isinstance(data, Tensor) else np.asarray(data)
        if not per_channel:
            mean, std = arr.mean(dtype=np.float64), arr.std(dtype=np.float64)
        else:
            dim = arr.ndim - 3 if arr.ndim >= 3 else arr.ndim - 1
            axes = tuple(d for d in range(arr.ndim) if d != dim)
            mean = arr.mean(axis=axes, dtype=np.float64)
            std = arr.std(axis=axes, dtype=np.float64)
        return cls(mean, np.where(np.asarray(std) == 0, 1.0, std))

    def __call__(self, x):
        arr = x.data if isinstance(x, Tensor) else x
        mean, std = self.mean, self.std
        size = max(len(mean), len(std))
        if size > 1:
            shape = _channel_shape(arr.ndim, size)
            channels = arr.shape[arr.ndim - len(shape)] if arr.ndim >= len(shape) else None
            if channels != size:
                raise ValueError(
                    f"Normalize: {size} per-channel values, but the input of shape "
                    f"{tuple(arr.shape)} has {channels} channels (dim {-len(shape)})"
                )
        else:
            shape = ()
        mean = mean.reshape(shape) if len(mean) > 1 else mean[0]
        std = std.reshape(shape) if len(std) > 1 else std[0]
        if isinstance(x, Tensor):
            return (x - Tensor(np.asarray(mean, dtype=np.float32))) / \
                Tensor(np.asarray(std, dtype=np.float32))
        return ((np.asarray(x) - mean) / std).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def flatten(x, start_dim: int = 1):
    """Merge the dims from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W) by default.

    Example:
        >>> import numpy as np
        >>> from backprop.data.transforms import flatten
        >>> flatten(np.zeros((5, 1, 8, 8))).shape
        (5, 64)
    """
    if isinstance(x, Tensor):
        return x.flatten(start_dim)
    x = np.asarray(x)
    start = start_dim % x.ndim if x.ndim else 0
    return x.reshape(*x.shape[:start], -1)


def one_hot(labels, num_classes: int = -1, dtype=np.int64):
    """One-hot rows for integer class labels: (...,) -> (..., num_classes).

    Args:
        labels: integer labels in 0..num_classes-1 (ndarray or Tensor).
        num_classes: the width; -1 takes ``labels.max() + 1`` (PyTorch's default).
        dtype: int64 as in PyTorch; pass ``np.float32`` for targets of an MSE loss.

    Example:
        >>> import numpy as np
        >>> from backprop.data.transforms import one_hot
        >>> one_hot(np.array([0, 2]), 3)
        array([[1, 0, 0],
               [0, 0, 1]])
    """
    arr = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got {arr.dtype}")
    if num_classes == -1:
        num_classes = int(arr.max()) + 1 if arr.size else 0
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"one_hot: labels must lie in 0..{num_classes - 1}, found {arr.min()}..{arr.max()}"
        )
    out = (arr[..., None] == np.arange(num_classes)).astype(dtype)
    return Tensor(out) if isinstance(labels, Tensor) else out
