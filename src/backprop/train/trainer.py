"""``Trainer`` and ``fit``: the training loop, with metrics, callbacks and exact resume.

One loop serves batch gradient descent (``batch_size="full"``), mini-batch and pure stochastic
gradient descent (``batch_size=1``). A checkpoint (``save_checkpoint``) holds everything the
loop depends on: weights, optimizer and callback state (so the scheduler and early stopping),
the global and the data loader's RNG states, the position inside the epoch and the metrics
summed so far. ``load_checkpoint`` followed by ``fit`` therefore ends with exactly the weights
an uninterrupted run would have had, even when the checkpoint was taken mid-epoch.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterable

import numpy as np

from backprop import _faults
from backprop import random as _random
from backprop._malloc import retain_freed_memory
from backprop.autograd.grad_mode import no_grad
from backprop.data.dataloader import DataLoader
from backprop.data.dataset import Dataset, random_split
from backprop.tensor import Tensor
from backprop.train._signals import SIGNAL_NAMES, StopSignals, TrainingInterrupted
from backprop.train.callbacks import Callback, ProgressBar
from backprop.train.checkpoint import load_checkpoint, save_checkpoint
from backprop.train.history import History


class TrainingError(RuntimeError):
    """Training cannot go on: the loss became NaN or infinite. The message names the step."""


def _correct(out: Tensor, y: Tensor) -> int | None:
    """How many rows of logits ``out`` (N, C) pick the class index in ``y`` (N,); None when the
    batch is not a classification batch."""
    o, t = out.data, y.data
    if o.ndim == 2 and t.ndim == 1 and t.dtype.kind in "iu" and len(o) == len(t):
        return int((o.argmax(axis=1) == t).sum())
    return None


def _pair(batch, where: str) -> tuple:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    got = f"a {len(batch)}-tuple" if isinstance(batch, (tuple, list)) else type(batch).__name__
    raise TypeError(f"{where}: each batch must be a pair (inputs, targets), got {got}")


class Trainer:
    """Train ``model`` on ``loss_fn(model(x), y)`` with ``optimizer``; evaluate, predict,
    checkpoint and resume.

    Args:
        model: an ``nn.Module`` mapping inputs (N, ...) to outputs (N, ...), e.g. logits (N, C).
        loss_fn: ``loss_fn(outputs, targets)`` -> scalar Tensor, averaged over the batch
            (``nn.CrossEntropyLoss()``, ``F.mse_loss``, ...).
        optimizer: an optimizer over ``model.parameters()``.
        callbacks: ``Callback`` objects (``EarlyStopping``, ``ModelCheckpoint``,
            ``LRSchedulerStep``, ``GradientClipping``, ``CSVLogger``, ``ProgressBar``...).
        seed: seeds the data order (the DataLoader ``fit`` builds) and the validation split;
            None draws it from ``backprop.manual_seed``'s generator.
        progress: add a ``ProgressBar`` (drawn only when stderr is a terminal).
        config: anything JSON-like (and arrays) to keep in checkpoints, e.g. the run's settings.
        handle_sigterm: also stop cleanly on SIGTERM (as on Ctrl-C, which ``fit`` always
            handles): ``fit`` raises ``TrainingInterrupted`` between two steps instead of the
            process being killed. For programs that checkpoint when a scheduler stops them.
        compile: run each step's forward, loss and backward, and then its update, as
            ``backprop.compile``d steps (captured once per batch shape, then replayed without
            building a graph); the results are bit-identical to ``compile=False``. Callbacks
            run between the two as usual; a step that cannot be captured runs eagerly: with
            ``"auto"`` (the default) silently, with ``True`` with a ``CompileWarning`` naming
            the reason (as Keras's ``jit_compile="auto"`` and ``True``).

    Attributes:
        history: a ``History`` of the finished epochs.
        epoch: epochs finished; ``step``: optimizer steps taken; ``batch_in_epoch``: batches of
            the current epoch done; ``stop_training``: set by a callback to stop.

    Accuracy is recorded when targets are class indices (N,) and outputs are (N, C) scores.

    Ctrl-C (SIGINT) during ``fit`` raises ``TrainingInterrupted`` (a ``KeyboardInterrupt``)
    between two steps, never halfway through an update: a step still computing is abandoned
    and what its forward pass changed (RNG draws, BatchNorm statistics) undone; a step already
    updating is finished first. ``save_checkpoint`` then saves the last completed step.

    Example:
        >>> import backprop as bp
        >>> from backprop.data.datasets import xor
        >>> _ = bp.manual_seed(0)
        >>> model = bp.nn.Sequential(bp.nn.Linear(2, 8), bp.nn.Tanh(), bp.nn.Linear(8, 2))
        >>> trainer = Trainer(model, bp.nn.CrossEntropyLoss(),
        ...                   bp.optim.Adam(model.parameters(), lr=0.05), seed=0)
        >>> history = trainer.fit(xor(), epochs=200, batch_size="full")
        >>> history["accuracy"][-1], trainer.step
        (1.0, 200)
    """

    def __init__(self, model, loss_fn, optimizer, *, callbacks: Iterable[Callback] = (),
                 seed: int | None = None, progress: bool = True,
                 config: dict | None = None, handle_sigterm: bool = False,
                 compile: bool | str = "auto") -> None:
        if compile not in (True, False, "auto"):
            raise ValueError(f"Trainer: compile must be True, False or 'auto', got {compile!r}")
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback objects, got "
                                f"{type(cb).__name__}")
        if progress and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.append(ProgressBar())
        # stable: equal orders keep the user's order
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.seed, self.config = seed, dict(config or {})
        self.handle_sigterm = handle_sigterm
        self._signals = StopSignals(sigterm=False)  # replaced by an active one during fit
        self._buffers: list[Tensor] = []  # the model's buffers, snapshot before each step
        self.history = History()
        self.epoch = self.step = self.batch_in_epoch = 0
        self.epochs = 0
        self.batches_per_epoch: int | None = None
        self.stop_training = False
        self.epoch_samples = 0  # samples seen in the last finished epoch
        self.loader = None
        self._epoch_start_state = None  # the loader's RNG state when the epoch began
        self._sums = self._zero_sums()
        self._pending: dict | None = None  # RNG state from a checkpoint, applied by fit
        self.compile = compile
        self._compiled = None  # (forward_backward, update) once fit has made them

    def _steps(self) -> tuple:
        """The two halves of a step, compiled or not: ``forward_backward(x, y) -> (loss,
        out)`` and ``update()``. Between them the loss is checked (no update with a NaN) and
        the ``on_after_backward`` callbacks run (clipping, gradient monitors)."""
        if self._compiled is None:
            def forward_backward(x, y):
                out = self.model(x)
                loss = self.loss_fn(out, y)
                self.optimizer.zero_grad()
                loss.backward()
                return loss, out

            def update():
                self.optimizer.step()

            if self.compile:
                from backprop._compile import CompiledFunction

                quiet = self.compile == "auto"
                forward_backward = CompiledFunction(forward_backward, quiet=quiet)
                # a step replaced on the instance is the user's Python: it must run each time
                if "step" not in vars(self.optimizer):
                    update = CompiledFunction(update, quiet=quiet)
            self._compiled = (forward_backward, update)
        return self._compiled

    # --- metrics ---
    @staticmethod
    def _zero_sums() -> dict:
        return {"loss": 0.0, "correct": 0, "count": 0, "classified": True, "elapsed": 0.0}

    def running_metrics(self) -> dict:
        """The current epoch's mean loss and accuracy so far."""
        s = self._sums
        if not s["count"]:
            return {}
        out = {"loss": s["loss"] / s["count"]}
        if s["classified"]:
            out["accuracy"] = s["correct"] / s["count"]
        return out

    # --- data ---
    def _loader(self, data, batch_size, *, shuffle: bool, who: str) -> Iterable:
        """A DataLoader over ``data`` (a DataLoader is used as it is). A shuffled one draws its
        order from the trainer's seed; an in-order one gets seed 0, so that building it leaves
        backprop's global RNG alone."""
        if isinstance(data, DataLoader):
            return data
        if not isinstance(data, Dataset):
            raise TypeError(f"{who}: the data must be a Dataset or a DataLoader, got "
                            f"{type(data).__name__}")
        if batch_size in ("full", None):
            batch_size = max(len(data), 1)
        elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"{who}: batch_size must be a positive int (1 = pure SGD) or "
                             f"'full' (batch gradient descent), got {batch_size!r}")
        return DataLoader(data, batch_size=int(batch_size), shuffle=shuffle,
                          seed=self.seed if shuffle else 0)

    # --- the loop ---
    def fit(self, train_data, *, val_data=None, val_split: float = 0.0, epochs: int = 10,
            batch_size: int | str | None = 32, shuffle: bool = True) -> History:
        """Train until ``epochs`` epochs are finished in all (counting resumed ones).

        Args:
            train_data: a ``Dataset`` of (input, target) pairs, or a ``DataLoader`` (then
                ``batch_size`` and ``shuffle`` are the loader's own).
            val_data: a ``Dataset`` or ``DataLoader`` evaluated after every epoch
                (``val_loss``, ``val_accuracy``).
            val_split: instead of ``val_data``, hold out this fraction of ``train_data`` (a
                Dataset) as validation data, split with the trainer's seed (0 if None).
            epochs: the total number of epochs: a trainer resumed at epoch 3 with ``epochs=5``
                trains epochs 4 and 5.
            batch_size: samples per step: 1 is pure SGD, ``"full"`` (or None) the whole set
                (batch gradient descent), anything between is mini-batch.
            shuffle: reshuffle the data every epoch.

        Returns:
            ``self.history``.

        Raises:
            TrainingError: the loss became NaN or infinite (no update is made with it).
            TrainingInterrupted: Ctrl-C (or SIGTERM, with ``handle_sigterm``); the trainer
                holds the state after its last completed step.
            ValueError: bad arguments, or no training data.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
        if val_split:
            if val_data is not None:
                raise ValueError("fit: give val_data or val_split, not both")
            if not isinstance(train_data, Dataset) or not 0.0 < val_split < 1.0:
                raise ValueError(f"fit: val_split needs a Dataset as train_data and a "
                                 f"fraction in (0, 1), got {val_split!r}")
            train_data, val_data = random_split(train_data, [1.0 - val_split, val_split],
                                                seed=0 if self.seed is None else self.seed)
        retain_freed_memory()  # no page faults for each step's fresh arrays (see _malloc)
        loader = self._loader(train_data, batch_size, shuffle=shuffle, who="fit")
        if hasattr(loader, "__len__") and len(loader) == 0:
            raise ValueError("fit: the training data are empty (0 batches per epoch); there "
                             "is nothing to train on")
        val_loader = None if val_data is None else self._loader(val_data, 256, shuffle=False,
                                                                  who="fit (val_data)")
        self.loader, self.epochs = loader, epochs
        self.batches_per_epoch = len(loader) if hasattr(loader, "__len__") else None
        generator = getattr(loader, "generator", None)
        if self._pending is not None:  # resumed: RNGs as they were at the checkpoint
            self._restore_rngs(self._pending, generator)
            self._pending = None
        elif generator is not None and self.batch_in_epoch == 0:
            self._epoch_start_state = copy.deepcopy(generator.bit_generator.state)
        if self.stop_training or self.epoch >= epochs:
            if self.stop_training:  # resumed from the stopping epoch: end as that run did
                for cb in self.callbacks:
                    cb.on_train_end(self)
            return self.history
        with StopSignals(sigterm=self.handle_sigterm) as self._signals:
            for cb in self.callbacks:
                cb.on_train_begin(self)
            try:
                while self.epoch < epochs and not self.stop_training:
                    self._run_epoch(loader, val_loader, generator)
            except TrainingInterrupted as exc:
                raise TrainingInterrupted(exc.signum, self._interrupted(exc.signum)) from None
            finally:
                for cb in self.callbacks:
                    cb.on_train_end(self)
        return self.history

    def _interrupted(self, signum: int) -> str:
        """Where the run stopped, in words: every epoch, batch and step named exists."""
        name = SIGNAL_NAMES.get(signum, f"signal {signum}")
        if self.batch_in_epoch:
            of = f" of {self.batches_per_epoch}" if self.batches_per_epoch else ""
            where = (f"in epoch {self.epoch + 1} of {self.epochs}, after batch "
                     f"{self.batch_in_epoch}{of} (step {self.step})")
        elif self.step:
            where = f"after epoch {self.epoch} of {self.epochs} (step {self.step})"
        else:
            where = "before the first step"
        return f"stopped by {name} {where}"

    def _step_snapshot(self) -> tuple:
        """What a forward pass may change that a checkpoint holds: the global RNG state
        (dropout) and the buffers (BatchNorm's running statistics)."""
        return (_random.default_generator().bit_generator.state,
                [(b, b.data.copy()) for b in self._buffers])

    def _undo_step(self, snapshot: tuple) -> None:
        rng, buffers = snapshot
        _random.default_generator().bit_generator.state = rng
        for b, data in buffers:
            np.copyto(b.data, data)

    def _run_epoch(self, loader, val_loader, generator) -> None:
        epoch = self.epoch + 1
        skip = self.batch_in_epoch  # > 0 only when resuming mid-epoch
        if skip == 0:
            self._sums = self._zero_sums()
            if generator is not None:
                self._epoch_start_state = copy.deepcopy(generator.bit_generator.state)
        elif generator is not None:
            generator.bit_generator.state = copy.deepcopy(self._epoch_start_state)
        self.model.train()
        for cb in self.callbacks:
            cb.on_epoch_begin(self, epoch)
        sums, t0 = self._sums, time.perf_counter()
        after_backward = [cb for cb in self.callbacks
                          if type(cb).on_after_backward is not Callback.on_after_backward]
        batch_end = [cb for cb in self.callbacks
                     if type(cb).on_batch_end is not Callback.on_batch_end]
        pause_at = _faults.pause_steps()
        signals = self._signals
        self._buffers = [b for b in self.model.buffers() if b is not None]
        forward_backward, update = self._steps()
        for i, batch in enumerate(loader):
            if i < skip:
                continue
            before = self._step_snapshot()
            try:  # a signal in here abandons the step
                x, y = _pair(batch, "fit")
                loss, out = forward_backward(x, y)
                value = loss.item()
                if not math.isfinite(value):
                    sums["elapsed"] += time.perf_counter() - t0
                    raise TrainingError(self._diverged(value, epoch, i + 1))
                signals.deferring = True  # from here on the step is finished, then stopped
            except TrainingInterrupted:
                signals.deferring = True  # a second Ctrl-C must not cut the undoing short
                self._undo_step(before)
                raise
            for cb in after_backward:
                cb.on_after_backward(self)
            update()
            n = len(y.data) if isinstance(y, Tensor) and y.data.ndim else 1
            sums["loss"] += value * n
            sums["count"] += n
            if sums["classified"]:
                correct = _correct(out, y)
                if correct is None:
                    sums["classified"] = False
                else:
                    sums["correct"] += correct
            self.step += 1
            self.batch_in_epoch = i + 1
            if batch_end:
                logs = {"loss": value, "batch": i + 1, "size": n, "step": self.step}
                for cb in batch_end:
                    cb.on_batch_end(self, logs)
            if self.step in pause_at:
                _faults.pause(self.step)
            signals.raise_pending()
            if self.stop_training:
                break
        signals.deferring = True  # the epoch's end (validation, callbacks) runs whole
        sums["elapsed"] += time.perf_counter() - t0
        row = {"epoch": epoch, **self.running_metrics()}
        if val_loader is not None:
            row.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
        row["lr"] = float(self.optimizer.param_groups[0]["lr"])
        row["time"] = sums["elapsed"]
        self.epoch, self.batch_in_epoch = epoch, 0
        self.epoch_samples = sums["count"]
        self._sums = self._zero_sums()
        if generator is not None:
            self._epoch_start_state = copy.deepcopy(generator.bit_generator.state)
        self.history.rows.append(row)  # the row itself: callbacks' columns reach checkpoints
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, row)
        self.history.rows[-1] = dict(row)  # callbacks may add columns (grad_norm)
        signals.raise_pending()

    def _diverged(self, value: float, epoch: int, batch: int) -> str:
        total = f" of {self.batches_per_epoch}" if self.batches_per_epoch else ""
        lr = self.optimizer.param_groups[0]["lr"]
        return (
            f"the loss became {value} at epoch {epoch}, batch {batch}{total} (step "
            f"{self.step + 1}); training stopped before that step's update and nothing was "
            f"saved after it. Lower the learning rate (it is {lr:g}), clip the gradients, or "
            "check the data for NaN/inf"
        )

    # --- evaluation ---
    def evaluate(self, data, batch_size: int | str | None = 256) -> dict:
        """Mean loss (and accuracy, for classification) over ``data``, in eval mode, no grad.

        Args:
            data: a ``Dataset`` or ``DataLoader`` of (input, target) pairs.
            batch_size: for a Dataset, samples per forward pass.

        Returns:
            ``{"loss": float, "accuracy": float}`` (accuracy only for classification).
        """
        loader = self._loader(data, batch_size, shuffle=False, who="evaluate")
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct, count, classified = 0.0, 0, 0, True
        try:
            with no_grad():
                for batch in loader:
                    x, y = _pair(batch, "evaluate")
                    out = self.model(x)
                    n = len(y.data) if y.data.ndim else 1
                    loss_sum += self.loss_fn(out, y).item() * n
                    count += n
                    c = _correct(out, y) if classified else None
                    classified = c is not None
                    correct += c or 0
        finally:
            self.model.train(was_training)
        if not count:
            raise ValueError("evaluate: the data are empty")
        result = {"loss": loss_sum / count}
        if classified:
            result["accuracy"] = correct / count
        return result

    def predict(self, data, batch_size: int = 256) -> np.ndarray:
        """The model's outputs for every sample, in eval mode, as one ndarray (N, ...).

        Args:
            data: an ndarray or Tensor of inputs (N, ...), or a Dataset/DataLoader whose
                samples are (input, target) pairs or bare inputs.
        """
        if isinstance(data, (np.ndarray, Tensor)):
            arr = data.data if isinstance(data, Tensor) else data
            batches = (Tensor(arr[i:i + batch_size]) for i in range(0, len(arr), batch_size))
        else:
            batches = (b[0] if isinstance(b, (tuple, list)) else b
                       for b in self._loader(data, batch_size, shuffle=False, who="predict"))
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                outs = [self.model(x).data for x in batches]
        finally:
            self.model.train(was_training)
        return np.concatenate(outs) if outs else np.empty((0,), dtype=np.float32)

    # --- checkpoints ---
    def _callback_keys(self) -> list[tuple[str, Callback]]:
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append((name if seen[name] == 1 else f"{name}#{seen[name]}", cb))
        return keys

    def state_dict(self) -> dict:
        """Everything ``fit`` needs to continue exactly: weights, optimizer, callbacks, RNG
        states, counters, the epoch's partial metrics, the history and ``config``."""
        generator = getattr(self.loader, "generator", None)
        # the state the current epoch's order is drawn from: the loader's generator has moved
        # on as soon as the epoch's first batch was fetched (a step may stop right there)
        loader_state = self._epoch_start_state
        if loader_state is None and generator is not None:
            loader_state = generator.bit_generator.state
        callbacks = {}
        for key, cb in self._callback_keys():
            state = cb.state_dict()
            if state is not None:
                callbacks[key] = state
        return {
            "trainer": {"epoch": self.epoch, "step": self.step,
                        "batch_in_epoch": self.batch_in_epoch,
                        "stop_training": self.stop_training, "seed": self.seed},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "callbacks": callbacks,
            "rng": {"global": _random.default_generator().bit_generator.state,
                    "loader_epoch_start": loader_state},
            "epoch_sums": dict(self._sums),
            "history": self.history.rows,
            "config": self.config,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``: weights and optimizer at once, RNG states at the next
        ``fit`` (after it has built its data loader)."""
        t = state["trainer"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved = state.get("callbacks", {})
        for key, cb in self._callback_keys():
            if key in saved:
                cb.load_state_dict(saved[key])
        self.epoch, self.step = t["epoch"], t["step"]
        self.batch_in_epoch, self.stop_training = t["batch_in_epoch"], t["stop_training"]
        self._sums = dict(state["epoch_sums"])
        self.history = History(state["history"])
        self.config = dict(state.get("config") or {})
        self._pending = state["rng"]
        self._restore_rngs(state["rng"], None)

    def _restore_rngs(self, rng: dict, generator) -> None:
        _random.default_generator().bit_generator.state = copy.deepcopy(rng["global"])
        self._epoch_start_state = copy.deepcopy(rng["loader_epoch_start"])
        if generator is not None and self._epoch_start_state is not None:
            generator.bit_generator.state = copy.deepcopy(self._epoch_start_state)

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write ``state_dict()`` to a ``.safetensors`` file, atomically (see
        ``backprop.train.save_checkpoint``)."""
        save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load a checkpoint written by ``save_checkpoint``; the next ``fit`` continues from it.

        Raises:
            CheckpointError: missing, truncated or corrupted file (nothing is loaded).
        """
        self.load_state_dict(load_checkpoint(path))


def fit(model, loss_fn, optimizer, train_data, *, val_data=None, val_split: float = 0.0,
        epochs: int = 10, batch_size: int | str | None = 32, shuffle: bool = True,
        callbacks: Iterable[Callback] = (), seed: int | None = None,
        progress: bool = True) -> History:
    """Train ``model`` and return its ``History`` (``Trainer(...).fit(...)`` in one call).

    See ``Trainer`` and ``Trainer.fit`` for the arguments. ``batch_size=1`` is pure SGD,
    ``batch_size="full"`` batch gradient descent.

    Example:
        >>> import backprop as bp
        >>> from backprop.data.datasets import spirals
        >>> _ = bp.manual_seed(0)
        >>> model = bp.nn.Sequential(bp.nn.Linear(2, 64), bp.nn.ReLU(), bp.nn.Linear(64, 3))
        >>> history = fit(model, bp.nn.CrossEntropyLoss(), bp.optim.Adam(model.parameters(),
        ...               lr=0.01), spirals(), epochs=60, batch_size=32, seed=0)
        >>> history["accuracy"][-1] > 0.9
        True
    """
    trainer = Trainer(model, loss_fn, optimizer, callbacks=callbacks, seed=seed,
                      progress=progress)
    return trainer.fit(train_data, val_data=val_data, val_split=val_split, epochs=epochs,
                       batch_size=batch_size, shuffle=shuffle)
