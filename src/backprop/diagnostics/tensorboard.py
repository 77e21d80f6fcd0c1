"""``TensorBoardLogger``: a training callback that writes TensorBoard event files.

Losses (per step and per epoch), the epoch's metrics (accuracy, validation loss, ...), the
learning rate, and per-layer histograms of gradients and weights, through tensorboardX (the
``tensorboard`` extra: ``pip install 'backprop[tensorboard]'``), imported when the logger is
made. Read them with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import os

from backprop.train.callbacks import Callback

__all__ = ["TensorBoardLogger"]

INSTALL_HINT = ("TensorBoard logging needs tensorboardX: pip install 'backprop[tensorboard]' "
                "(or pip install tensorboardX)")


class TensorBoardLogger(Callback):
    """Write a run's scalars and histograms as TensorBoard event files.

    Args:
        log_dir: the directory of the event files.
        model: whose parameters get histograms (gradients and weights, one tag per parameter,
            ``grad/0.weight`` and ``weight/0.weight``); None for scalars only.
        histogram_every: write histograms every this many steps (and at step 1).

    Scalars: ``train/loss`` per step, ``lr`` per step (the first parameter group's), and per
    epoch every entry of the history row (``epoch/loss``, ``epoch/accuracy``,
    ``epoch/val_loss``, ...).

    Raises:
        ImportError: tensorboardX is not installed (the message says how to install it).
    """

    order = 85  # after the scheduler stepped and the history row was written

    def __init__(self, log_dir: str | os.PathLike, model=None, histogram_every: int = 50):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        self.writer = SummaryWriter(logdir=str(log_dir))
        self.model, self.histogram_every = model, max(1, int(histogram_every))

    def on_after_backward(self, trainer) -> None:
        """Histograms of this step's gradients and the weights they came with."""
        step = trainer.step + 1  # the step being taken
        if self.model is None or not (step == 1 or step % self.histogram_every == 0):
            return
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                self.writer.add_histogram(f"grad/{name}", p.grad.data, step)
            self.writer.add_histogram(f"weight/{name}", p.data, step)

    def on_batch_end(self, trainer, logs: dict) -> None:
        """The step's loss and learning rate."""
        self.writer.add_scalar("train/loss", float(logs["loss"]), logs["step"])
        if trainer.optimizer is not None and trainer.optimizer.param_groups:
            self.writer.add_scalar("lr", float(trainer.optimizer.param_groups[0]["lr"]),
                                   logs["step"])

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        """Every number of the epoch's history row."""
        for key, value in logs.items():
            if key not in ("epoch", "time") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"epoch/{key}", float(value), epoch)
        self.writer.flush()

    def on_train_end(self, trainer) -> None:
        """Flush and close the files."""
        self.writer.flush()
        self.writer.close()
