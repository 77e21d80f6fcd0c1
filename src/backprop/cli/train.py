"""``backprop train``: the settings, the run directory and the training loop, under faults.

A run is owned by one process (``rundir.RunDirectory``); a resumed run continues with the
settings in its checkpoint, of which only ``--epochs`` (never below what was trained) and
``--checkpoint-every`` may change, and what it was asked to do goes into its next checkpoints.
Training stops on NaN, on Ctrl-C and on SIGTERM with one line that says what was saved; Ctrl-C
and SIGTERM first checkpoint the last completed step (``Trainer`` stops between two steps).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

from backprop.cli import config as cfg
from backprop.cli.errors import Interrupted, RunError, UsageError, describe_os_error
from backprop.cli.rundir import (
    CHECKPOINT,
    RunDirectory,
    build,
    checkpoint_of,
    corrupt,
    model_of,
    read_run,
)
from backprop.train._signals import SIGNAL_NAMES, TrainingInterrupted


def _world_size() -> int:
    mod = sys.modules.get("backprop.distributed.comm")  # loaded only by --distributed
    return mod.world_size() if mod is not None else 1


def _rank() -> int:
    mod = sys.modules.get("backprop.distributed.comm")
    return mod.rank() if mod is not None else 0


def _default_out(settings: dict) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{settings['dataset']}-{settings['model']}-{stamp}"


def _make_optimizer(settings: dict, params):
    import backprop.optim as optim
    name, lr, wd = settings["optimizer"], settings["lr"], settings["weight_decay"]
    momentum = settings["momentum"]
    classes = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
               "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad, "adadelta": optim.Adadelta,
               "nadam": optim.NAdam}
    kwargs = {"lr": lr, "weight_decay": wd}
    if name in ("sgd", "rmsprop"):
        kwargs["momentum"] = momentum
    return classes[name](params, **kwargs)


def _make_scheduler(settings: dict, optimizer, steps_per_epoch: int):
    """The learning-rate schedule and how often it steps, or None."""
    from backprop.optim import lr_scheduler as sched
    from backprop.train import LRSchedulerStep
    name, epochs = settings["lr_schedule"], settings["epochs"]
    if name == "none":
        return None
    if name == "cosine":
        return LRSchedulerStep(sched.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch),
                               interval="batch")
    if name == "step":  # /10 after each third of the run
        return LRSchedulerStep(sched.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1))
    return LRSchedulerStep(sched.OneCycleLR(optimizer, max_lr=settings["lr"],
                                            total_steps=epochs * steps_per_epoch),
                           interval="batch")


def _data_facts(splits) -> dict:
    return {"input_shape": list(splits.input_shape), "num_classes": splits.num_classes,
            "classes": list(splits.classes), "kind": splits.kind,
            "feature_names": splits.feature_names, "mean": splits.mean, "std": splits.std}


def percent(x: float) -> str:
    """A fraction as a percentage with two decimals: 0.98056 -> '98.06%'."""
    return f"{100 * x:.2f}%"


def _given_flags(args: argparse.Namespace) -> dict:
    flags = {}
    for option in cfg.OPTIONS:
        value = getattr(args, option.name)
        if value is not None:
            flags[option.name] = value
    return flags


def _resume_settings(run_dir: Path, flags: dict, file_values: dict) -> tuple[dict, dict]:
    """(settings, checked checkpoint state) of the run in ``run_dir``: its saved settings with
    --epochs and --checkpoint-every applied; any other flag that differs from them is refused,
    and so is an --epochs below what the run has already trained."""
    ckpt = checkpoint_of(run_dir)
    if not ckpt.exists():
        raise RunError(f"--resume: no checkpoint in {run_dir} (expected {ckpt}); train without "
                       "--resume to start a new run (it may reuse this directory)")
    state, saved, _ = read_run(run_dir)
    given = {**file_values, **flags}
    changed = sorted(k for k, v in given.items()
                     if k not in ("epochs", "out", "checkpoint_every") and v != saved.get(k))
    if changed:
        shown = ", ".join(f"{cfg.BY_NAME[k].flag} (saved {saved.get(k)!r}, given {given[k]!r})"
                          for k in changed)
        raise UsageError(f"--resume continues a run with its saved settings; these differ: "
                         f"{shown}. Drop them, or start a new run with another --out")
    planned = saved["epochs"]
    for key in ("epochs", "checkpoint_every"):
        if key in given:
            saved[key] = given[key]
    done, partial = state["trainer"]["epoch"], state["trainer"]["batch_in_epoch"] > 0
    if saved["epochs"] < done + partial:
        trained = f"{done} epochs" + (" and part of the next" if partial else "")
        raise UsageError(f"--resume --epochs {saved['epochs']}: the run has already trained "
                         f"{trained}; give at least {done + partial}, or leave --epochs out")
    if saved["epochs"] != planned and saved["lr_schedule"] in ("cosine", "onecycle"):
        raise UsageError(f"--resume --epochs: the run's {saved['lr_schedule']} schedule was "
                         f"planned for {planned} epochs and cannot be stretched; resume "
                         "without --epochs")
    return saved, state


def _check_classes(splits, out) -> None:
    """Refuse training data a classifier cannot learn from; warn about data it will fit
    poorly (``out``: where the warnings go)."""
    n, name = len(splits.train), splits.name
    if n == 0:
        raise RunError(f"{name}: the training data are empty (0 rows)")
    present = np.unique(splits.train.targets)
    if len(present) < 2:
        raise RunError(f"{name}: all {n} training rows are of class "
                       f"{splits.classes[present[0]]!r}; a classifier needs at least 2 classes")
    k = splits.num_classes
    if k > n / 10 and name != "xor":  # XOR's four rows are the whole problem, not a sample
        print(f"backprop train: warning: {k} classes for {n} training rows (fewer than 10 rows "
              "per class): expect a poor fit", file=out)
    absent = [splits.classes[c] for c in range(k) if c not in set(present.tolist())]
    if absent:
        print(f"backprop train: warning: class(es) {', '.join(map(repr, absent))} have no "
              "training rows (all in the test part): the model cannot learn them", file=out)


def _check_same_data(facts: dict, saved: dict, settings: dict) -> None:
    """Refuse to resume on data other than the run's (an edited CSV, other IDX files)."""
    differ = [k for k in ("input_shape", "classes", "kind", "feature_names")
              if list(facts[k] or []) != list(saved[k] or [])]
    differ += [k for k in ("mean", "std") if not np.array_equal(facts[k], saved[k])]
    if differ:
        where = settings["data_dir"] or settings["dataset"]
        raise RunError(f"--resume: the data ({where}) are not those this run started with (its "
                       f"{', '.join(differ)} differ); resume with the original data, or start a "
                       "new run")


def _restore(trainer, state: dict, ckpt: Path) -> None:
    """Load a checked checkpoint (its weights checked by ``model_of``) into the trainer; what
    its other parts do not fit is corruption."""
    try:
        trainer.load_state_dict(state)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        raise corrupt(ckpt, f"its training state does not fit this run ({type(exc).__name__}: "
                            f"{exc})") from None


def _saved_note(run_dir: Path, resume: bool = True) -> str:
    """What a failed run left: its last checkpoint (and how to continue), or none."""
    if (run_dir / CHECKPOINT).exists():
        hint = f": continue with `backprop train --resume --out {run_dir}`" if resume else ""
        return f"the last checkpoint in {run_dir} is intact{hint}"
    return f"no checkpoint was written: run the command again (it may reuse {run_dir})"


def _stopped(exc: TrainingInterrupted, trainer, start_step: int, run_dir: Path) -> str:
    """The line for a run stopped by a signal during ``fit``, after saving its last completed
    step (when it took any)."""
    if trainer.step > start_step:
        trainer.save_checkpoint(run_dir / CHECKPOINT)
        saved = f"its checkpoint is saved in {run_dir}"
    elif (run_dir / CHECKPOINT).exists():
        saved = f"the checkpoint in {run_dir} is unchanged"
    else:
        return f"{exc}; nothing was trained or saved: run the same command again"
    return f"{exc}; {saved}: continue with `backprop train --resume --out {run_dir}`"


def _interrupted_outside_fit(signum: int, stage: str, run_dir: Path, trainer) -> str:
    name = SIGNAL_NAMES.get(signum, f"signal {signum}")
    text = f"interrupted by {name} while {stage}"
    if stage == "drawing curves.png":
        return f"{text}: the run is complete (checkpoint and metrics.json saved in {run_dir}); " \
               "only the plot is missing"
    if stage == "testing the trained model":
        return (f"{text}: training finished ({trainer.epoch} epochs, step {trainer.step}) and "
                f"its checkpoint is saved; `backprop train --resume --out {run_dir}` tests it "
                "and writes metrics.json")
    return f"{text}; {_saved_note(run_dir)}"


def cmd_train(args: argparse.Namespace, out=None) -> int:
    """``backprop train``: claims the run directory (one process at a time), trains, and
    releases it; a directory it created and never wrote to is removed again on failure.
    With ``--distributed``, every rank of ``mpirun`` trains and rank 0 owns the directory."""
    out = out or sys.stdout
    watch = {"monitor_gradients": getattr(args, "monitor_gradients", False),
             "tensorboard": getattr(args, "tensorboard", None),
             # (the monitor's hooks would make the captured step fall back to eager anyway)
             "compile": not (getattr(args, "no_compile", False)
                             or getattr(args, "monitor_gradients", False))}
    if getattr(args, "distributed", False):
        from backprop.cli.distributed import cmd_train_distributed

        return cmd_train_distributed(args, out, _claim, functools.partial(_train, **watch))
    run, settings, flags, file_values = _claim(args)
    try:
        return _train(run, settings, flags, file_values, out, **watch)
    except BaseException:
        run.tidy_after_failure()
        raise
    finally:
        run.release()


def _claim(args: argparse.Namespace, claim_dir: bool = True):
    """(run directory claimed, settings or None for --resume, flags, config-file values)."""
    flags = _given_flags(args)
    file_values = cfg.read_config_file(args.config) if args.config else {}
    settings = None
    if args.resume:
        if "out" not in flags and "out" not in file_values:
            raise UsageError("--resume needs --out RUN_DIR: the run to continue")
        run_dir = Path(flags.get("out", file_values.get("out")))
        if not run_dir.is_dir():
            raise RunError(f"--resume: no checkpoint in {run_dir} (there is no such directory);"
                           " train without --resume to start a new run")
    else:
        settings = cfg.resolve(flags, file_values)
        if settings["momentum"] != cfg.BY_NAME["momentum"].default and \
                settings["optimizer"] not in ("sgd", "rmsprop"):
            raise UsageError(f"--momentum applies to sgd and rmsprop, not "
                             f"{settings['optimizer']}")
        run_dir = Path(settings["out"]) if settings["out"] else _default_out(settings)
    run = RunDirectory.claim(run_dir, create=not args.resume) if claim_dir else None
    return run, settings, flags, file_values


def _train(run: RunDirectory, settings: dict | None, flags: dict, file_values: dict,
           out, monitor_gradients: bool = False, tensorboard: str | None = None,
           compile: bool = True) -> int:
    import backprop as bp
    from backprop.cli.datasets import load_splits
    from backprop.train import (
        CSVLogger,
        EarlyStopping,
        EpochLogger,
        GradientClipping,
        ModelCheckpoint,
        ProgressBar,
        Trainer,
        TrainingError,
        atomic_write,
    )

    run_dir, stage, trainer = run.path, "starting", None
    distributed = _world_size() > 1
    leader = _rank() == 0
    try:
        resume_state = None
        if settings is None:
            settings, resume_state = _resume_settings(run_dir, flags, file_values)
        else:
            note = run.prepare_new_run()
            if note:
                print(note, file=out)
        settings["out"] = str(run_dir)
        stage = "loading the data"
        splits = load_splits(settings["dataset"], settings["data_dir"], settings["target"])
        facts = _data_facts(splits)
        _check_classes(splits, sys.stderr)
        stage = "building the model"
        bp.manual_seed(settings["seed"])
        if resume_state is None:
            model = build(settings, facts)
        else:  # the checkpoint's model, checked, before its data are compared with these
            model = model_of(settings, resume_state["config"]["data"], resume_state,
                             checkpoint_of(run_dir))
            _check_same_data(facts, resume_state["config"]["data"], settings)
        train_data, val_data = splits.train, None
        if distributed:
            from backprop.cli import distributed as D
            model, _ddp = D.wrap_model(model)  # averages gradients through hooks
            train_data, val_data = D.split_validation(splits.train, settings)
            train_data, sampler = D.shard_loader(train_data, settings)
        optimizer = _make_optimizer(settings, model.parameters())
        n_train = len(splits.train) - (math.floor(len(splits.train) * settings["val_split"])
                                       if settings["val_split"] else 0)
        batch = n_train if settings["batch_size"] == "full" else settings["batch_size"]
        steps_per_epoch = len(train_data) if distributed else max(1, -(-n_train // batch))

        callbacks = []
        if leader:
            atomic_write(run_dir / "config.toml", cfg.to_toml(settings))
            callbacks = [ModelCheckpoint(run_dir / CHECKPOINT,
                                         every_n_steps=settings["checkpoint_every"]),
                         CSVLogger(run_dir / "history.csv"), ProgressBar(),
                         EpochLogger(lambda line: print(line, file=out, flush=True),
                                     every=max(1, -(-settings["epochs"] // 25)))]
        if distributed:
            callbacks += [D.ReduceMetrics(), D.SetEpoch(sampler)]
        scheduler = _make_scheduler(settings, optimizer, steps_per_epoch)
        if scheduler is not None:
            callbacks.append(scheduler)
        stopper = None
        if settings["patience"]:
            monitor = "val_loss" if settings["val_split"] else "loss"
            stopper = EarlyStopping(monitor, patience=settings["patience"])
            callbacks.append(stopper)
        if settings["clip_grad_norm"]:
            callbacks.append(GradientClipping(max_norm=settings["clip_grad_norm"]))
        monitor = None
        if monitor_gradients and leader:  # (one rank's report: the others' gradients match)
            from backprop.diagnostics import GradientMonitor
            monitor = GradientMonitor(model, on_warning=lambda text: print(
                f"warning: {text}", file=sys.stderr, flush=True))
            callbacks.append(monitor)
        if tensorboard and leader:
            from backprop.diagnostics.tensorboard import TensorBoardLogger
            try:
                callbacks.append(TensorBoardLogger(tensorboard, model))
            except ImportError as exc:
                raise UsageError(f"--tensorboard: {exc}") from None
        trainer = Trainer(model, bp.nn.CrossEntropyLoss(), optimizer, callbacks=callbacks,
                          seed=settings["seed"], progress=False, handle_sigterm=True,
                          # DDP's all-reduce hooks would make a captured step run eagerly
                          compile="auto" if compile and not distributed else False)
        if resume_state is not None:
            _restore(trainer, resume_state, checkpoint_of(run_dir))
            print(f"resuming {run_dir} at epoch {trainer.epoch}, step {trainer.step}", file=out)
        # after the restore, which brings the checkpoint's config back: what this run was
        # asked to do (--resume --epochs N) must be in the checkpoints it writes from now on
        trainer.config = {"settings": settings, "data": facts}
        n_params = sum(p.data.size for p in model.parameters())
        ranks = f" on {_world_size()} ranks (batch per rank)" if distributed else ""
        print(f"training {settings['model']} ({n_params:,} parameters) on {settings['dataset']}: "
              f"{n_train} training samples, {len(splits.test)} test; {settings['optimizer']} lr "
              f"{settings['lr']:g}, batch {settings['batch_size']}, {settings['epochs']} epochs "
              f"-> {run_dir}{ranks}", file=out, flush=True)
        stage, start_step = "training", trainer.step
        t0 = time.perf_counter()
        try:
            if distributed:
                history = trainer.fit(train_data, val_data=val_data, epochs=settings["epochs"])
            else:
                history = trainer.fit(splits.train, val_split=settings["val_split"],
                                      epochs=settings["epochs"],
                                      batch_size=settings["batch_size"])
        except TrainingError as exc:
            raise RunError(f"{exc}. {_saved_note(run_dir, resume=False)}") from None
        except TrainingInterrupted as exc:
            if not leader:
                raise Interrupted(exc.signum, str(exc)) from None
            why = ("; under mpirun a SIGTERM mostly means that another rank failed: mpirun's "
                   "report names it") if distributed and exc.signum == signal.SIGTERM else ""
            raise Interrupted(exc.signum, _stopped(exc, trainer, start_step, run_dir) + why) \
                from None
        seconds = time.perf_counter() - t0
        if stopper is not None and stopper.stopped_epoch and leader:
            # the epoch-end checkpoint holds the last epoch's weights; keep the restored best
            trainer.save_checkpoint(run_dir / CHECKPOINT)
            print(f"stopped early: {stopper.monitor} did not improve for {stopper.patience} "
                  f"epochs after epoch {stopper.best_epoch} ({stopper.best:.4f}); its weights "
                  "were restored", file=out)
        stage = "testing the trained model"
        test = (D.evaluate_global(trainer, splits.test) if distributed
                else trainer.evaluate(splits.test))
        metrics = {"test_loss": test["loss"], "test_accuracy": test.get("accuracy"),
                   "test_samples": len(splits.test), "epochs": trainer.epoch,
                   "steps": trainer.step, "train_seconds": seconds,
                   "parameters": int(n_params), "dataset": settings["dataset"],
                   "model": settings["model"], "seed": settings["seed"]}
        if history.rows:
            metrics.update({f"final_{k}": v for k, v in history.rows[-1].items()
                            if k not in ("epoch", "time")})
        if not leader:
            return 0
        if distributed:
            metrics["ranks"] = _world_size()
        atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        if monitor is not None:
            stage = "writing gradients.csv and gradients.png"
            monitor.to_csv(run_dir / "gradients.csv")
            try:
                monitor.plot(run_dir / "gradients.png", title=f"gradient flow: "
                             f"{settings['model']} on {settings['dataset']}")
            except ImportError:
                print("note: gradients.png not drawn: matplotlib is not installed",
                      file=out)
        stage = "drawing curves.png"
        try:
            history.plot(run_dir / "curves.png", title=f"{settings['model']} on "
                                                       f"{settings['dataset']}")
        except ImportError:
            print("note: curves.png not drawn: matplotlib is not installed (pip install "
                  "'backprop[plot]')", file=out)
    except KeyboardInterrupt as exc:  # outside fit: start-up, testing, plotting
        signum = getattr(exc, "signum", signal.SIGINT)
        raise Interrupted(signum, _interrupted_outside_fit(signum, stage, run_dir, trainer)) \
            from None
    except OSError as exc:  # a full disk, a directory made read-only under the run
        note = f"; {_saved_note(run_dir)}" if trainer is not None else ""
        raise RunError(f"{describe_os_error(exc)}{note}") from None
    correct = round(test["accuracy"] * len(splits.test))
    print(f"test accuracy {percent(test['accuracy'])} ({correct}/{len(splits.test)}), test "
          f"loss {test['loss']:.4f}; {trainer.epoch} epochs in {seconds:.1f}s; run saved in "
          f"{run_dir}", file=out)
    return 0
