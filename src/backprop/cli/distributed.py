"""``backprop train --distributed`` under ``mpirun -n N``: one process per rank, each training
the same model on its own shard of every batch (``DistributedDataParallel``), rank 0 alone
owning the run directory and printing.

``--batch-size`` is per rank (PyTorch's convention): N ranks step as one process with batch
N·B. BatchNorm becomes ``SyncBatchNorm``. Reported losses and accuracies are reduced over the
ranks. A rank that dies or hangs makes the others stop within ``--dist-timeout`` seconds with
one error line naming it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from backprop.train.callbacks import Callback


class ReduceMetrics(Callback):
    """Before any other callback sees an epoch's row: the loss and accuracy over every rank's
    samples (each rank's mean weighted by its sample count)."""

    order = 0

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        from backprop import distributed as dist

        n = float(trainer.epoch_samples)
        vec = np.array([logs.get("loss", 0.0) * n, logs.get("accuracy", 0.0) * n, n])
        dist.all_reduce(vec, what=f"the metrics of epoch {epoch}")
        if vec[2]:
            logs["loss"] = vec[0] / vec[2]
            if "accuracy" in logs:
                logs["accuracy"] = vec[1] / vec[2]


class SetEpoch(Callback):
    """Give the ``DistributedSampler`` each epoch's number, so every epoch has a new order
    (and a resumed run the order the epoch had)."""

    order = 0

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def shard_loader(train, settings: dict):
    """(this rank's DataLoader, its sampler) over ``train``; ``--batch-size`` per rank."""
    from backprop import distributed as dist
    from backprop.data import DataLoader

    sampler = dist.DistributedSampler(train, seed=settings["seed"])
    batch = len(sampler) if settings["batch_size"] == "full" else settings["batch_size"]
    return DataLoader(train, batch_size=max(1, batch), sampler=sampler), sampler


def split_validation(train, settings: dict):
    """(train part, validation part or None): the split ``Trainer.fit(val_split=...)`` makes."""
    from backprop.data.dataset import random_split

    if not settings["val_split"]:
        return train, None
    v = settings["val_split"]
    return tuple(random_split(train, [1.0 - v, v], seed=settings["seed"]))


def evaluate_global(trainer, data) -> dict:
    """``trainer.evaluate`` on this rank's share of ``data`` (rank r: samples r, r+N, ...),
    reduced over the ranks: the loss and accuracy of the whole set."""
    from backprop import distributed as dist
    from backprop.data.dataset import Subset

    share = Subset(data, np.arange(dist.rank(), len(data), dist.world_size()))
    n = float(len(share))
    local = trainer.evaluate(share) if n else {"loss": 0.0, "accuracy": 0.0}
    vec = np.array([local["loss"] * n, local.get("accuracy", 0.0) * n, n])
    dist.all_reduce(vec, what="the test-set metrics")
    return {"loss": vec[0] / vec[2], "accuracy": vec[1] / vec[2]}


def wrap_model(model):
    """BatchNorm -> SyncBatchNorm, then DistributedDataParallel (rank 0's weights on every
    rank); returns the bare model (what checkpoints hold) and the wrapper."""
    from backprop import distributed as dist

    model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, dist.DistributedDataParallel(model, broadcast_buffers=False)


class FollowerRun:
    """What ranks other than 0 have instead of the run directory's lock: its path only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def prepare_new_run(self) -> None:
        return None

    def tidy_after_failure(self) -> None:
        pass

    def release(self) -> None:
        pass


def n_train_after_split(n: int, val_split: float) -> int:
    return n - (math.floor(n * val_split) if val_split else 0)


def cmd_train_distributed(args, out, claim, train) -> int:
    """Run ``train(run, settings, flags, file_values, out)`` on every rank; rank 0 claims the
    run directory with ``claim(args)`` and tells the others its path."""
    from backprop import distributed as dist
    from backprop.cli.errors import RunError

    try:
        dist.init(timeout=args.dist_timeout)
    except dist.DistributedError as exc:
        raise RunError(str(exc)) from None
    try:
        if dist.rank() == 0:
            try:
                run, settings, flags, file_values = claim(args)
            except BaseException as exc:
                dist.broadcast_object({"error": str(exc)}, what="the start of the run")
                raise
            try:
                dist.broadcast_object({"run_dir": str(run.path)}, what="the start of the run")
                return train(run, settings, flags, file_values, out)
            except BaseException:
                run.tidy_after_failure()
                raise
            finally:
                run.release()
        told = dist.broadcast_object(None, what="the start of the run")
        if "error" in told:
            return 1  # rank 0 reports it
        _, settings, flags, file_values = claim(args, claim_dir=False)
        with open(os.devnull, "w") as quiet:
            return train(FollowerRun(Path(told["run_dir"])), settings, flags, file_values,
                         quiet)
    except dist.DistributedTimeoutError as exc:
        # MPI's orderly shutdown would wait for the absent rank: report and leave at once
        print(f"backprop train: error: {exc}", file=sys.stderr)
        dist.abort(1)
        raise  # not reached
