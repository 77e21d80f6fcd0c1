"""Callbacks: code that runs at fixed points of ``Trainer.fit`` (Keras's hooks, PyTorch names).

A callback subclasses ``Callback`` and overrides any of ``on_train_begin``, ``on_epoch_begin``,
``on_after_backward`` (gradients computed, optimizer step not yet taken), ``on_batch_end``,
``on_epoch_end`` and ``on_train_end``; each gets the trainer, and the batch/epoch ones a dict
of metrics (``logs``). Setting ``trainer.stop_training = True`` ends the run after the current
batch.

A run resumed from a mid-epoch checkpoint calls ``on_epoch_begin`` again for that epoch, with
``trainer.batch_in_epoch > 0``: a callback that resets per-epoch state checks it.

Callbacks run in the order of their ``order`` attribute (then as given), so that a checkpoint
sees the scheduler already stepped and early stopping already updated, whatever order the user
listed them in. A callback with state that must survive a resume defines ``state_dict`` and
``load_state_dict``; the trainer saves it in every checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

from backprop.nn.utils import clip_grad_norm_, clip_grad_value_


class Callback:
    """Base class: every hook does nothing.

    Attributes:
        order: when this callback runs relative to others at the same hook (lower first).
            Scheduler stepping 10, early stopping 20, default 50, checkpoint 80, CSV log 90.
    """

    order = 50

    def on_train_begin(self, trainer) -> None:
        """Before the first epoch of ``fit``."""

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based)."""

    def on_after_backward(self, trainer) -> None:
        """After ``loss.backward()``, before ``optimizer.step()``: gradients are in ``.grad``."""

    def on_batch_end(self, trainer, logs: dict) -> None:
        """After the optimizer step. ``logs``: ``loss`` of the batch, ``batch`` (1-based in the
        epoch), ``size`` (samples), ``step`` (global step)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        """After epoch ``epoch``; ``logs`` is its history row (already in ``trainer.history``)."""

    def on_train_end(self, trainer) -> None:
        """After the last epoch (also after an early stop)."""

    def state_dict(self) -> dict | None:
        """State to save in checkpoints (None: nothing to save)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""


def _monitored(logs: dict, monitor: str, who: str) -> float:
    if monitor not in logs or logs[monitor] is None:
        have = sorted(k for k, v in logs.items() if isinstance(v, (int, float)))
        hint = " (validation metrics need val_data or val_split)" if monitor.startswith(
            "val_") else ""
        raise ValueError(f"{who}: monitor={monitor!r} is not among the epoch's metrics "
                         f"{have}{hint}")
    return float(logs[monitor])


def _check_mode(mode: str, monitor: str, who: str) -> str:
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"{who}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """Stop when a metric has not improved for ``patience`` epochs; optionally go back to the
    weights of the best epoch.

    Args:
        monitor: the metric to watch (a column of the history, e.g. ``"val_loss"``).
        patience: stop after this many epochs in a row without improvement (as Keras).
        min_delta: an improvement smaller than this does not count.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, else min).
        restore_best_weights: when training stops early, load the weights (parameters and
            buffers) of the best epoch into the model. A run that reaches its last epoch keeps
            the last weights, as in Keras.

    Attributes:
        best: the best value seen; ``best_epoch``: its epoch; ``stopped_epoch``: the epoch
            training stopped after (0 if it did not stop early).
    """

    order = 20

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True) -> None:
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode = _check_mode(mode, monitor, "EarlyStopping")
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights: dict | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.data.copy()
                                     for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:  # Keras: patience epochs without improvement
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
        self.best_weights = state["best_weights"]


class LRSchedulerStep(Callback):
    """Step a learning-rate scheduler once per epoch or once per batch.

    Args:
        scheduler: a ``backprop.optim.lr_scheduler`` scheduler over the trainer's optimizer.
        interval: ``"epoch"`` (after each epoch) or ``"batch"`` (after each optimizer step, for
            OneCycleLR and warm-ups).
        monitor: for ``ReduceLROnPlateau``, the metric passed to its ``step``.
    """

    order = 10

    def __init__(self, scheduler, interval: str = "epoch", monitor: str = "val_loss") -> None:
        if interval not in ("epoch", "batch"):
            raise ValueError(f"LRSchedulerStep: interval must be 'epoch' or 'batch', got "
                             f"{interval!r}")
        self.scheduler, self.interval, self.monitor = scheduler, interval, monitor
        self._plateau = type(scheduler).__name__ == "ReduceLROnPlateau"
        if self._plateau and interval != "epoch":
            raise ValueError("LRSchedulerStep: ReduceLROnPlateau steps once per epoch on a "
                             "metric; use interval='epoch'")

    def on_batch_end(self, trainer, logs: dict) -> None:
        if self.interval == "batch":
            self.scheduler.step()

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.interval == "epoch":
            if self._plateau:
                self.scheduler.step(_monitored(logs, self.monitor, "LRSchedulerStep"))
            else:
                self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


class GradientClipping(Callback):
    """Clip the gradients before every optimizer step: by their joint norm, or elementwise.

    Args:
        max_norm: rescale so that the joint ``norm_type`` norm is at most this
            (``nn.utils.clip_grad_norm_``); the norm before clipping is kept in
            ``last_norm`` and reported as ``grad_norm`` in the epoch's logs (its maximum).
        clip_value: clamp each gradient element to [-clip_value, clip_value] instead.
        norm_type: the p of the norm.
    """

    order = 30

    def __init__(self, max_norm: float | None = None, clip_value: float | None = None,
                 norm_type: float = 2.0) -> None:
        if (max_norm is None) == (clip_value is None):
            raise ValueError("GradientClipping: give exactly one of max_norm and clip_value")
        for name, v in (("max_norm", max_norm), ("clip_value", clip_value)):
            if v is not None and not v > 0:
                raise ValueError(f"GradientClipping: {name} must be positive, got {v!r}")
        self.max_norm, self.clip_value, self.norm_type = max_norm, clip_value, norm_type
        self.last_norm = math.nan
        self.max_seen = 0.0

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if trainer.batch_in_epoch == 0:  # not when resuming mid-epoch
            self.max_seen = 0.0

    def state_dict(self) -> dict:
        return {"max_seen": self.max_seen}

    def load_state_dict(self, state: dict) -> None:
        self.max_seen = state["max_seen"]

    def on_after_backward(self, trainer) -> None:
        params = [p for p in trainer.model.parameters() if p.grad is not None]
        if self.max_norm is not None:
            self.last_norm = float(clip_grad_norm_(params, self.max_norm, self.norm_type).item())
            self.max_seen = max(self.max_seen, self.last_norm)
        else:
            clip_grad_value_(params, self.clip_value)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.max_norm is not None:
            logs["grad_norm"] = self.max_seen


class ModelCheckpoint(Callback):
    """Save the whole training state (``Trainer.save_checkpoint``) to a ``.safetensors`` file.

    Written atomically at the end of every epoch and, with ``every_n_steps``, every that many
    optimizer steps: resuming from it continues the run exactly.

    Args:
        path: the checkpoint file.
        every_n_steps: also save every this many steps (None: epoch ends only).
        save_best_only: save at an epoch end only when ``monitor`` improved (for keeping the
            best model rather than the latest state).
        monitor, mode: the metric and direction for ``save_best_only``.
    """

    order = 80

    def __init__(self, path: str | os.PathLike, every_n_steps: int | None = None,
                 save_best_only: bool = False, monitor: str = "val_loss",
                 mode: str = "auto") -> None:
        if every_n_steps is not None and (not isinstance(every_n_steps, int)
                                          or every_n_steps < 1):
            raise ValueError(f"ModelCheckpoint: every_n_steps must be a positive int or None, "
                             f"got {every_n_steps!r}")
        self.path = Path(path)
        self.every_n_steps, self.save_best_only = every_n_steps, save_best_only
        self.monitor, self.mode = monitor, _check_mode(mode, monitor, "ModelCheckpoint")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saves = 0

    def on_batch_end(self, trainer, logs: dict) -> None:
        if self.every_n_steps and not self.save_best_only and \
                trainer.step % self.every_n_steps == 0:
            self._save(trainer)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not (value < self.best if self.mode == "min" else value > self.best):
                return
            self.best = value
        self._save(trainer)

    def _save(self, trainer) -> None:
        trainer.save_checkpoint(self.path)
        self.saves += 1

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]


class CSVLogger(Callback):
    """Rewrite the history as CSV after every epoch (atomically), as Keras's CSVLogger.

    It runs after checkpoints, so the file never has rows that the last checkpoint lacks for
    long: on resume the trainer's history (from the checkpoint) is what gets written.
    """

    order = 90

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_train_begin(self, trainer) -> None:
        if len(trainer.history):  # resumed: drop rows written after the checkpoint
            trainer.history.to_csv(self.path)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        trainer.history.to_csv(self.path)


def _format_logs(logs: dict, keys=("loss", "accuracy", "val_loss", "val_accuracy")) -> str:
    parts = []
    for k in keys:
        v = logs.get(k)
        if v is not None:
            parts.append(f"{k} {v:.4f}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm progress bar per epoch with the live loss, accuracy and samples/s.

    Quiet when ``file`` (default stderr) is not a terminal, so logs and CI output stay clean;
    also quiet if tqdm is not installed.

    Args:
        file: the stream to draw on.
        force: draw even when ``file`` is not a terminal (for tests and demos).
    """

    def __init__(self, file=None, force: bool = False) -> None:
        self.file, self.force = file, force
        self._bar = None

    def _enabled(self) -> bool:
        stream = self.file if self.file is not None else sys.stderr
        return self.force or bool(getattr(stream, "isatty", lambda: False)())

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if not self._enabled():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=trainer.batches_per_epoch, desc=f"epoch {epoch}/{trainer.epochs}",
                         file=self.file if self.file is not None else sys.stderr,
                         leave=False, unit="batch", dynamic_ncols=True,
                         initial=trainer.batch_in_epoch)
        self._t0, self._samples = time.perf_counter(), 0

    def on_batch_end(self, trainer, logs: dict) -> None:
        bar = self._bar
        if bar is None:
            return
        self._samples += logs["size"]
        bar.update(1)
        if bar.n == bar.total or logs["batch"] % 10 == 0:  # formatting costs more than a step
            rate = self._samples / max(time.perf_counter() - self._t0, 1e-9)
            running = trainer.running_metrics()
            text = _format_logs(running, ("loss", "accuracy"))
            # the last batch forces a redraw: tqdm would skip it inside its 0.1 s interval
            bar.set_postfix_str(f"{text}  {rate:,.0f} samples/s", refresh=bar.n == bar.total)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        self._close()

    def on_train_end(self, trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EpochLogger(Callback):
    """Print one line per epoch: its metrics, learning rate and wall-clock time.

    Args:
        print_fn: called with each line (default ``print``).
        every: print every this many epochs only (and always the first and the last), for
            runs of hundreds of short epochs.
    """

    order = 95

    def __init__(self, print_fn=print, every: int = 1) -> None:
        self.print_fn, self.every = print_fn, every

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if epoch % self.every and epoch not in (1, trainer.epochs) and not trainer.stop_training:
            return
        width = len(str(trainer.epochs))
        rate = trainer.epoch_samples / logs["time"] if logs.get("time") else 0.0
        extra = f"  {rate:,.0f} samples/s" if rate else ""
        self.print_fn(f"epoch {epoch:{width}d}/{trainer.epochs}  {_format_logs(logs)}  "
                      f"lr {logs['lr']:.3g}  {logs['time']:.1f}s{extra}")
