"""``backprop.train``: the training loop (``fit``, ``Trainer``), callbacks, ``History`` and
crash-safe checkpoints.

Example:
    >>> import backprop as bp
    >>> from backprop.data.datasets import xor
    >>> from backprop.train import fit
    >>> _ = bp.manual_seed(0)
    >>> model = bp.nn.Sequential(bp.nn.Linear(2, 8), bp.nn.Tanh(), bp.nn.Linear(8, 2))
    >>> history = fit(model, bp.nn.CrossEntropyLoss(), bp.optim.Adam(model.parameters(), lr=0.05),
    ...               xor(), epochs=200, batch_size="full", seed=0)
    >>> history["accuracy"][-1]
    1.0
"""

from backprop.train._signals import TrainingInterrupted
from backprop.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    EpochLogger,
    GradientClipping,
    LRSchedulerStep,
    ModelCheckpoint,
    ProgressBar,
)
from backprop.train.checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from backprop.train.history import History
from backprop.train.trainer import Trainer, TrainingError, fit

__all__ = [
    "CSVLogger", "Callback", "CheckpointError", "EarlyStopping", "EpochLogger",
    "GradientClipping", "History", "LRSchedulerStep", "ModelCheckpoint", "ProgressBar",
    "Trainer", "TrainingError", "TrainingInterrupted", "atomic_write", "fit", "load_checkpoint",
    "read_metadata", "save_checkpoint",
]
