"""Shared builders for the backprop.train tests."""

import numpy as np

import backprop as bp
from backprop.data import TensorDataset
from backprop.train import Callback


def blobs(n=50, features=4, classes=3, seed=0):
    """A small, easily separable classification set of exactly ``n`` samples."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.standard_normal((classes, features)) * 3
    x = centers[y] + rng.standard_normal((n, features))
    return TensorDataset(x.astype(np.float32), y.astype(np.int64))


def mlp(inp=4, hidden=16, out=3, dropout=0.0, seed=0):
    bp.manual_seed(seed)
    layers = [bp.nn.Linear(inp, hidden), bp.nn.ReLU()]
    if dropout:
        layers.append(bp.nn.Dropout(dropout))
    layers.append(bp.nn.Linear(hidden, out))
    return bp.nn.Sequential(*layers)


def weights(model):
    """A deep copy of the model's parameters and buffers as ndarrays."""
    return {k: np.array(v.data, copy=True) for k, v in model.state_dict().items()}


def assert_weights_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs"


def weights_differ(a, b):
    return any(not np.array_equal(a[k], b[k]) for k in a)


class Snapshots(Callback):
    """Records the weights at the end of every epoch (after every other callback)."""

    order = 99

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.by_epoch[epoch] = weights(trainer.model)


class CountSteps(Callback):
    """Counts the optimizer steps (on_batch_end calls) per epoch and the batch sizes."""

    def __init__(self):
        self.per_epoch, self.sizes = {}, []

    def on_batch_end(self, trainer, logs):
        self.per_epoch[trainer.epoch + 1] = self.per_epoch.get(trainer.epoch + 1, 0) + 1
        self.sizes.append(logs["size"])
