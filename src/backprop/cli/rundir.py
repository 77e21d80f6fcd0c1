"""The run directory of ``backprop train``: owned by one process at a time, reused only when it
holds no run, cleared of a killed write's leftovers, and read only through checks.

A run directory holds ``checkpoint.safetensors``, ``config.toml``, ``history.csv``,
``metrics.json``, ``curves.png`` and ``.lock``. The lock is an OS lock (``fcntl.flock``) on
``.lock``, held while a ``train`` (or ``train --resume``) runs: the kernel drops it when the
process ends, however it ends, so a crash never leaves a stale lock behind. The file itself stays
and holds the PID of the last process that took it, only to name it in messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from backprop.cli import config as cfg
from backprop.cli.errors import RunError, UsageError

CHECKPOINT = "checkpoint.safetensors"
FILES = ("checkpoint.safetensors", "config.toml", "history.csv", "metrics.json", "curves.png")
LOCK = ".lock"


def _leftover(name: str) -> bool:
    """A temporary file ``atomic_write`` left when its process died before the rename."""
    from backprop.serialization import TEMPORARY_MARK

    base, mark, pid = name.partition(TEMPORARY_MARK)
    return bool(mark) and base[:1] == "." and base[1:] in FILES and pid.isdigit()


class RunDirectory:
    """A run directory taken by this process (``claim``) until ``release`` or exit.

    Attributes:
        path: the directory.
        created: whether this process created it (``tidy_after_failure`` removes it again).
    """

    def __init__(self, path: Path, fd: int | None, created: bool, lock_created: bool) -> None:
        self.path, self._fd, self.created = path, fd, created
        self.lock_created = lock_created

    @classmethod
    def claim(cls, path: Path, create: bool) -> RunDirectory:
        """Take ``path`` for this process, creating it first if ``create``; then remove the
        leftovers of writes killed before their rename.

        Raises:
            RunError: another process holds it (the message names its PID), or the directory
                cannot be created or written.
            UsageError: ``path`` exists and is not a directory.
        """
        created = False
        if create:
            try:
                if path.exists() and not path.is_dir():
                    raise UsageError(f"--out: {path} exists and is not a directory; choose "
                                     "another --out")
                created = not path.exists()
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunError(f"--out: cannot create the run directory {path}: "
                               f"{exc.strerror}") from None
        lock_created = not (path / LOCK).exists()
        fd = _lock(path)
        run = cls(path, fd, created, lock_created)
        try:
            for entry in os.listdir(path):
                if _leftover(entry):
                    os.unlink(path / entry)
        except OSError as exc:
            run.release()
            raise RunError(f"cannot clear the leftovers of an interrupted write in {path}: "
                           f"{exc.strerror}") from None
        return run

    def prepare_new_run(self) -> str | None:
        """Make the directory ready for a new run: refuse one that holds a run (a checkpoint)
        or files that are not a run's; delete the files of a run that ended before its first
        checkpoint. Returns a note to print when it did so, else None."""
        entries = sorted(e for e in os.listdir(self.path) if e != LOCK)
        if CHECKPOINT in entries:
            raise UsageError(f"--out: {self.path} already holds a run (its {CHECKPOINT}); pass "
                             "--resume to continue that run, or choose another --out")
        foreign = [e for e in entries if e not in FILES]
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise UsageError(f"--out: {self.path} is not empty and is not a run directory (it "
                             f"holds {shown}); choose another --out")
        if not entries:
            return None
        for entry in entries:
            (self.path / entry).unlink()
        return (f"note: reusing {self.path}: it holds no checkpoint (an earlier run ended before "
                f"its first one); its {', '.join(entries)} will be replaced")

    def tidy_after_failure(self) -> None:
        """After a command failed before writing any run file: remove the lock file if this
        process made it, and the directory if it made that too (and it is now empty), so that
        a refused command leaves nothing behind."""
        try:
            if self.lock_created and not any((self.path / f).exists() for f in FILES):
                (self.path / LOCK).unlink(missing_ok=True)
            if self.created:
                self.path.rmdir()
        except OSError:  # not empty, or already gone: leave it
            pass

    def release(self) -> None:
        """Give the directory up (closing the lock file drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock(path: Path) -> int | None:
    """Open ``path/.lock`` and take an exclusive ``flock`` on it without waiting; write this
    process's PID into it. None where there is no ``fcntl`` (Windows): no lock there."""
    try:
        import fcntl
    except ImportError:
        return None
    lock = path / LOCK
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise RunError(f"cannot use the run directory {path}: cannot open {lock}: "
                       f"{exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        pid = f"PID {holder}" if holder.isdigit() else "its PID not yet written"
        raise RunError(f"{path} is in use by another backprop process ({pid}); a run directory "
                       "is written by one process at a time: wait for it to end, or choose "
                       "another --out") from None
    except OSError as exc:
        os.close(fd)
        raise RunError(f"cannot lock the run directory {path}: {exc.strerror}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise RunError(f"cannot write {lock}: {exc.strerror}") from None
    return fd


def checkpoint_of(run_dir: Path) -> Path:
    """The checkpoint of ``run_dir``; a symbolic link that leads out of the directory is
    refused (a run directory someone sent you must not make this read any other file)."""
    ckpt = run_dir / CHECKPOINT
    if ckpt.is_symlink():
        target = ckpt.resolve()
        if not target.is_relative_to(run_dir.resolve()):
            raise RunError(f"{ckpt} is a symbolic link out of the run directory (to {target}); "
                           "it was not followed. Copy the file into the run directory if you "
                           "trust it")
    return ckpt


# --- what a checkpoint must hold to be used -----------------------------------------------------
# A checkpoint whose SHA-256 is right can still be wrong: written by another program, or edited
# and re-hashed. Everything the command takes from it is checked before use, so such a file is
# refused with one line instead of crashing later or training on nonsense.
_PARTS = {"trainer": dict, "model": dict, "optimizer": dict, "callbacks": dict, "rng": dict,
          "epoch_sums": dict, "history": list, "config": dict}


def corrupt(ckpt: Path, why: str) -> RunError:
    """The error for a checkpoint that is whole but inconsistent."""
    return RunError(f"checkpoint {ckpt} is corrupt: {why}; it was not loaded. Use an intact copy, "
                    "or start a new run in a new directory")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_run_state(state: dict, ckpt: Path) -> tuple[dict, dict]:
    """The (settings, data facts) of a ``backprop train`` checkpoint's state, after checking
    its parts, counters, settings and data facts.

    Raises:
        RunError: the checkpoint was not written by ``backprop train``, or is inconsistent.
    """
    config = state.get("config")
    if not isinstance(config, dict) or "settings" not in config or "data" not in config:
        raise RunError(f"{ckpt} was not written by `backprop train` (it has no run settings); "
                       "load it with backprop.train.load_checkpoint instead")
    for key, kind in _PARTS.items():
        if not isinstance(state.get(key), kind):
            raise corrupt(ckpt, f"its {key!r} part is missing or not a {kind.__name__}")
    trainer = state["trainer"]
    for key in ("epoch", "step", "batch_in_epoch"):
        if not _count(trainer.get(key)):
            raise corrupt(ckpt, f"its trainer {key} is {trainer.get(key)!r}, not a count")
    if not isinstance(trainer.get("stop_training"), bool):
        raise corrupt(ckpt, "its trainer has no stop_training flag")
    if not all(isinstance(row, dict) for row in state["history"]):
        raise corrupt(ckpt, "its history is not a list of rows")
    return _check_settings(config["settings"], ckpt), _check_facts(config["data"], ckpt)


def _check_settings(settings, ckpt: Path) -> dict:
    if not isinstance(settings, dict) or set(settings) != set(cfg.BY_NAME):
        keys = sorted(settings) if isinstance(settings, dict) else settings
        raise corrupt(ckpt, f"its settings are not those of `backprop train` ({keys!r})")
    for name, value in settings.items():
        if value is not None:
            try:
                cfg.convert(name, value, name)
            except UsageError as exc:
                raise corrupt(ckpt, f"its setting {exc}") from None
    return dict(settings)


def _check_facts(facts, ckpt: Path) -> dict:
    keys = ("input_shape", "num_classes", "classes", "kind", "feature_names", "mean", "std")
    if not isinstance(facts, dict) or any(k not in facts for k in keys):
        raise corrupt(ckpt, "its data facts (input shape, classes, standardisation) are "
                            "incomplete")
    shape, k, classes = facts["input_shape"], facts["num_classes"], facts["classes"]
    if not isinstance(shape, list) or len(shape) not in (1, 3) or \
            not all(_count(d) and d > 0 for d in shape):
        raise corrupt(ckpt, f"its input shape {shape!r} is not 1 or 3 positive sizes")
    if not _count(k) or k < 1 or not isinstance(classes, list) or len(classes) != k or \
            not all(isinstance(c, str) for c in classes):
        raise corrupt(ckpt, f"its {k!r} classes do not match its class names {classes!r}")
    if facts["kind"] not in ("image", "table"):
        raise corrupt(ckpt, f"its data kind {facts['kind']!r} is not 'image' or 'table'")
    names = facts["feature_names"]
    if names is not None and (not isinstance(names, list) or len(names) != shape[0] or
                              not all(isinstance(n, str) for n in names)):
        raise corrupt(ckpt, f"its feature names {names!r} do not match its input shape")
    for key in ("mean", "std"):
        a = facts[key]
        ok = isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim <= len(shape) and \
            a.shape == tuple(shape[len(shape) - a.ndim:]) and bool(np.isfinite(a).all())
        if not ok or (key == "std" and not (a > 0).all()):
            what = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise corrupt(ckpt, f"its standardisation {key} ({what}) does not fit inputs of "
                                f"shape {tuple(shape)}")
    return dict(facts)


def check_weights(model, weights: dict, ckpt: Path) -> None:
    """Refuse weights that are not exactly those of ``model`` (the model the checkpoint's
    settings describe): other names, shapes or dtypes (int32 weights were loaded silently by
    the same-kind cast of ``load_state_dict``), or values that are not finite."""
    own = model.state_dict()
    if set(own) != set(weights):
        missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        raise corrupt(ckpt, f"its weights do not fit the model its settings describe "
                            f"(missing {missing}, unexpected {extra})")
    for name, target in own.items():
        value = weights[name]
        arr = getattr(value, "data", value)
        if not isinstance(arr, np.ndarray) or arr.shape != target.shape or \
                arr.dtype != target.dtype:
            found = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else \
                type(arr).__name__
            raise corrupt(ckpt, f"weight {name} is {found}; the model has {target.dtype} "
                                f"{target.shape}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise corrupt(ckpt, f"weight {name} holds NaN or infinite values")


# --- reading a run -----------------------------------------------------------------------------
def build(settings: dict, facts: dict):
    """The model ``settings`` describe for data with ``facts`` (fresh weights)."""
    from backprop.cli.models import build_model

    return build_model(settings["model"], tuple(facts["input_shape"]), facts["num_classes"],
                       hidden=settings["hidden"], activation=settings["activation"],
                       init=settings["init"], dropout=settings["dropout"],
                       dataset=settings["dataset"])


def read_run(run_dir: Path) -> tuple[dict, dict, dict]:
    """(state, settings, data facts) of the checkpoint of a ``backprop train`` run, checked
    whole (``load_checkpoint``) and consistent (``check_run_state``)."""
    from backprop.train import CheckpointError, load_checkpoint
    try:
        state = load_checkpoint(checkpoint_of(run_dir))
    except CheckpointError as exc:
        raise RunError(str(exc)) from None
    settings, facts = check_run_state(state, checkpoint_of(run_dir))
    return state, settings, facts


def model_of(settings: dict, facts: dict, state: dict, ckpt: Path):
    """The model the checkpoint's settings describe, with its weights checked and loaded."""
    try:
        model = build(settings, facts)
    except UsageError as exc:
        raise corrupt(ckpt, f"its settings describe a model that cannot be built here ({exc})") \
            from None
    check_weights(model, state["model"], ckpt)
    model.load_state_dict(state["model"])
    return model


def load_run(run_dir: str) -> tuple[dict, dict, object]:
    """(settings, data facts, model with the checkpoint's weights) of a run directory."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"no run directory {path}")
    state, settings, facts = read_run(path)
    model = model_of(settings, facts, state, checkpoint_of(path))
    model.eval()
    return settings, facts, model
