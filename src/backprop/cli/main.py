"""``backprop`` (and ``python -m backprop``): train, evaluate and predict from the command line.

    backprop train [--model mlp|cnn|lstm] [--dataset digits|mnist|...] [flags] [--out RUN_DIR]
    backprop train --resume --out RUN_DIR
    backprop evaluate RUN_DIR [--dataset NAME --data-dir PATH]
    backprop predict RUN_DIR INPUT.npy|INPUT.csv
    backprop demo          (a 2-2-1 network on XOR with bare tensors: backprop with no layers)

A run directory holds ``checkpoint.safetensors`` (everything needed to resume or to predict),
``config.toml`` (the settings), ``history.csv`` (one row per epoch), ``metrics.json`` (test
loss and accuracy) and ``curves.png``. A user's mistake ends with one ``error:`` line and exit
status 2 (bad usage) or 1 (the run failed), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from backprop.cli import compare_rules
from backprop.cli import config as cfg
from backprop.cli.errors import RunError, UsageError

CHECKPOINT = "checkpoint.safetensors"
FILES = ("checkpoint.safetensors", "config.toml", "history.csv", "metrics.json", "curves.png")


# --- argument parsing ------------------------------------------------------------------------
def _argparse_type(option: cfg.Option):
    def convert(text: str):
        try:
            return option.convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = option.name  # argparse names the type in some messages
    return convert


def _recipes_text() -> str:
    """The dataset- and model-dependent defaults, for ``backprop train --help``."""
    shown = ("epochs", "batch_size", "lr", "lr_schedule", "hidden", "dropout")

    def text(values: dict) -> str:
        def value(v):
            return ",".join(map(str, v)) if isinstance(v, list) else v
        return ", ".join(f"{k.replace('_', '-')} {value(v)}" for k, v in values.items()
                         if k in shown)
    lines = ["defaults that depend on the dataset and model:",
             f"  otherwise: {text({k: cfg.BY_NAME[k].default for k in shown})}"]
    lines += [f"  {dataset} {model}: {text(values)}"
              for (dataset, model), values in cfg.RECIPES.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``backprop`` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="backprop", allow_abbrev=False,
        description="Train neural networks with backpropagation (NumPy only). "
                    "Start with `backprop train`: an MLP on scikit-learn's 8x8 digits.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = sub.add_parser(
        "train", allow_abbrev=False, help="train a model; writes a run directory",
        epilog=_recipes_text(), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a model and write a run directory (checkpoint, config.toml, "
                    "history.csv, metrics.json, curves.png). Settings come from the built-in "
                    "defaults, the defaults for the chosen dataset and model, --config, then "
                    "the flags.",
    )
    for option in cfg.OPTIONS:
        extra = {"choices": option.choices} if option.choices else {"metavar": option.metavar}
        default = option.default
        shown = f" (default: {default})" if default is not None and option.name not in (
            "hidden", "epochs", "batch_size", "lr", "dropout", "lr_schedule") else ""
        train.add_argument(option.flag, dest=option.name, default=None,
                           type=_argparse_type(option) if not option.choices else None,
                           help=option.help + shown, **extra)
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out RUN_DIR from its last checkpoint")
    train.add_argument("--config", metavar="FILE.toml",
                       help="read settings from a TOML file (keys: the flag names with "
                            "underscores); flags override it")
    ev = sub.add_parser("evaluate", allow_abbrev=False,
                        help="test a trained run on its test set (or another dataset's)")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--dataset", choices=cfg.BY_NAME["dataset"].choices,
                    help="evaluate on this dataset's test split instead of the run's own")
    ev.add_argument("--data-dir", metavar="PATH", help="the dataset's directory or CSV file")
    ev.add_argument("--target", metavar="COLUMN", help="the class column of a CSV dataset")
    pr = sub.add_parser("predict", allow_abbrev=False,
                        help="classify the rows of a .npy or .csv file with a trained run")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("input", metavar="INPUT", help="INPUT.npy or INPUT.csv, raw inputs as the "
                    "dataset stores them (one sample per row)")
    demo = sub.add_parser("demo", allow_abbrev=False,
                          help="train a 2-2-1 network on XOR with bare tensors")
    demo.add_argument("--epochs", type=int, default=2000, help="gradient-descent steps")
    demo.add_argument("--lr", type=float, default=0.5, help="learning rate")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    compare_rules.add_parser(sub)
    return parser


# --- helpers -------------------------------------------------------------------------------
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


def _build(settings: dict, facts: dict):
    from backprop.cli.models import build_model
    return build_model(settings["model"], tuple(facts["input_shape"]), facts["num_classes"],
                       hidden=settings["hidden"], activation=settings["activation"],
                       init=settings["init"], dropout=settings["dropout"],
                       dataset=settings["dataset"])


def _run_state(ckpt: Path) -> dict:
    """The checkpoint of a ``backprop train`` run, checked whole and holding the run's settings
    and data facts (``state["config"]``)."""
    from backprop.train import CheckpointError, load_checkpoint
    try:
        state = load_checkpoint(ckpt)
    except CheckpointError as exc:
        raise RunError(str(exc)) from None
    config = state.get("config") or {}
    if "settings" not in config or "data" not in config:
        raise RunError(f"{ckpt} was not written by `backprop train` (it has no run settings); "
                       "load it with backprop.train.load_checkpoint instead")
    return state


def _load_run(run_dir: str) -> tuple[dict, dict, object]:
    """(settings, data facts, model with the checkpoint's weights) of a run directory."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"no run directory {path}")
    state = _run_state(path / CHECKPOINT)
    settings, facts = state["config"]["settings"], state["config"]["data"]
    model = _build(settings, facts)
    model.load_state_dict(state["model"])
    model.eval()
    return settings, facts, model


def _percent(x: float) -> str:
    return f"{100 * x:.2f}%"


# --- train -----------------------------------------------------------------------------------
def _given_flags(args: argparse.Namespace) -> dict:
    flags = {}
    for option in cfg.OPTIONS:
        value = getattr(args, option.name)
        if value is not None:
            flags[option.name] = value
    return flags


def _resume_settings(out: Path, flags: dict, file_values: dict) -> tuple[dict, dict]:
    """(settings, checkpoint state) of the run in ``out``: its saved settings with --epochs and
    --checkpoint-every applied; any other flag that differs from them is refused."""
    ckpt = out / CHECKPOINT
    if not ckpt.exists():
        raise RunError(f"--resume: no checkpoint in {out} (expected {ckpt}); train without "
                       "--resume to start a new run")
    state = _run_state(ckpt)
    config = state["config"]
    saved = dict(config["settings"])
    given = {**file_values, **flags}
    changed = sorted(k for k, v in given.items()
                     if k not in ("epochs", "out", "checkpoint_every") and v != saved.get(k))
    if changed:
        shown = ", ".join(f"{cfg.BY_NAME[k].flag} (saved {saved.get(k)!r}, given {given[k]!r})"
                          for k in changed)
        raise UsageError(f"--resume continues a run with its saved settings; these differ: "
                         f"{shown}. Drop them, or start a new run with another --out")
    for key in ("epochs", "checkpoint_every"):
        if key in given:
            saved[key] = given[key]
    if saved["epochs"] != config["settings"]["epochs"] and saved["lr_schedule"] in (
            "cosine", "onecycle"):
        raise UsageError(f"--resume --epochs: the run's {saved['lr_schedule']} schedule was "
                         f"planned for {config['settings']['epochs']} epochs and cannot be "
                         "stretched; resume without --epochs")
    return saved, state


def cmd_train(args: argparse.Namespace, out=None) -> int:
    """``backprop train``."""
    out = out or sys.stdout
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

    flags = _given_flags(args)
    file_values = cfg.read_config_file(args.config) if args.config else {}
    resume_state = None
    if args.resume:
        if "out" not in flags and "out" not in file_values:
            raise UsageError("--resume needs --out RUN_DIR: the run to continue")
        run_dir = Path(flags.get("out", file_values.get("out")))
        settings, resume_state = _resume_settings(run_dir, flags, file_values)
    else:
        settings = cfg.resolve(flags, file_values)
        run_dir = Path(settings["out"]) if settings["out"] else _default_out(settings)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UsageError(f"--out: {run_dir} already exists; pass --resume to continue that "
                             "run, or choose another --out")
    settings["out"] = str(run_dir)
    if settings["momentum"] != cfg.BY_NAME["momentum"].default and \
            settings["optimizer"] not in ("sgd", "rmsprop"):
        raise UsageError(f"--momentum applies to sgd and rmsprop, not {settings['optimizer']}")

    splits = load_splits(settings["dataset"], settings["data_dir"], settings["target"])
    bp.manual_seed(settings["seed"])
    facts = _data_facts(splits)
    model = _build(settings, facts)
    optimizer = _make_optimizer(settings, model.parameters())
    n_train = len(splits.train) - (math.floor(len(splits.train) * settings["val_split"])
                                   if settings["val_split"] else 0)
    batch = n_train if settings["batch_size"] == "full" else settings["batch_size"]
    steps_per_epoch = max(1, -(-n_train // batch))

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.toml", cfg.to_toml(settings))
    callbacks = [ModelCheckpoint(run_dir / CHECKPOINT, every_n_steps=settings["checkpoint_every"]),
                 CSVLogger(run_dir / "history.csv"), ProgressBar(),
                 EpochLogger(lambda line: print(line, file=out, flush=True),
                             every=max(1, -(-settings["epochs"] // 25)))]
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
    trainer = Trainer(model, bp.nn.CrossEntropyLoss(), optimizer, callbacks=callbacks,
                      seed=settings["seed"], progress=False,
                      config={"settings": settings, "data": facts})
    if resume_state is not None:
        trainer.load_state_dict(resume_state)
        print(f"resuming {run_dir} at epoch {trainer.epoch}, step {trainer.step}", file=out)
    n_params = sum(p.data.size for p in model.parameters())
    print(f"training {settings['model']} ({n_params:,} parameters) on {settings['dataset']}: "
          f"{n_train} training samples, {len(splits.test)} test; {settings['optimizer']} lr "
          f"{settings['lr']:g}, batch {settings['batch_size']}, {settings['epochs']} epochs -> "
          f"{run_dir}", file=out, flush=True)
    t0 = time.perf_counter()
    try:
        history = trainer.fit(splits.train, val_split=settings["val_split"],
                              epochs=settings["epochs"], batch_size=settings["batch_size"])
    except TrainingError as exc:
        raise RunError(f"{exc}. The last checkpoint in {run_dir} is intact") from None
    except KeyboardInterrupt:
        raise RunError(f"interrupted at epoch {trainer.epoch + 1}; the last checkpoint is in "
                       f"{run_dir}: continue with `backprop train --resume --out {run_dir}`"
                       ) from None
    seconds = time.perf_counter() - t0
    if stopper is not None and stopper.stopped_epoch:
        # the epoch-end checkpoint holds the last epoch's weights; keep the restored best ones
        trainer.save_checkpoint(run_dir / CHECKPOINT)
        print(f"stopped early: {stopper.monitor} did not improve for {stopper.patience} epochs "
              f"after epoch {stopper.best_epoch} ({stopper.best:.4f}); its weights were "
              "restored", file=out)
    test = trainer.evaluate(splits.test)
    metrics = {"test_loss": test["loss"], "test_accuracy": test.get("accuracy"),
               "test_samples": len(splits.test), "epochs": trainer.epoch, "steps": trainer.step,
               "train_seconds": seconds, "parameters": int(n_params),
               "dataset": settings["dataset"], "model": settings["model"],
               "seed": settings["seed"]}
    if history.rows:
        metrics.update({f"final_{k}": v for k, v in history.rows[-1].items()
                        if k not in ("epoch", "time")})
    atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    try:
        history.plot(run_dir / "curves.png", title=f"{settings['model']} on "
                                                   f"{settings['dataset']}")
    except ImportError:
        print("note: curves.png not drawn: matplotlib is not installed (pip install "
              "'backprop[plot]')", file=out)
    correct = round(test["accuracy"] * len(splits.test))
    print(f"test accuracy {_percent(test['accuracy'])} ({correct}/{len(splits.test)}), test "
          f"loss {test['loss']:.4f}; {trainer.epoch} epochs in {seconds:.1f}s; run saved in "
          f"{run_dir}", file=out)
    return 0


# --- evaluate and predict ----------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace, out=None) -> int:
    """``backprop evaluate RUN_DIR``."""
    out = out or sys.stdout
    from backprop.cli.datasets import load_splits, standardise
    from backprop.cli.models import check_input
    from backprop.data import TensorDataset
    from backprop.nn import CrossEntropyLoss
    from backprop.train import Trainer

    settings, facts, model = _load_run(args.run_dir)
    if args.dataset is None and (args.data_dir or args.target):
        raise UsageError("--data-dir and --target go with --dataset")
    name = args.dataset or settings["dataset"]
    data_dir = args.data_dir if args.dataset else settings["data_dir"]
    target = args.target if args.dataset else settings["target"]
    splits = load_splits(name, data_dir, target)
    x, y = splits.test.data, splits.test.targets
    if args.dataset:  # the run's own standardisation, not the other dataset's
        raw = x * splits.std + splits.mean
        check_input(settings["model"], tuple(facts["input_shape"]), raw.shape)
        x = standardise(raw.reshape(len(raw), *facts["input_shape"]), facts["mean"],
                        facts["std"])
    bad = y[(y < 0) | (y >= facts["num_classes"])]
    if bad.size:
        raise RunError(f"label {int(bad[0])} is out of range for this run's "
                       f"{facts['num_classes']} classes (0..{facts['num_classes'] - 1}); "
                       f"{name} has {splits.num_classes} classes")
    trainer = Trainer(model, CrossEntropyLoss(), None, progress=False)
    result = trainer.evaluate(TensorDataset(x, y))
    correct = round(result["accuracy"] * len(y))
    print(f"{name} test set ({len(y)} samples): loss {result['loss']:.4f}, accuracy "
          f"{_percent(result['accuracy'])} ({correct}/{len(y)})", file=out)
    return 0


def cmd_predict(args: argparse.Namespace, out=None) -> int:
    """``backprop predict RUN_DIR INPUT``."""
    out = out or sys.stdout
    from backprop.cli.datasets import read_inputs, standardise
    from backprop.cli.models import check_input
    from backprop.nn import CrossEntropyLoss
    from backprop.train import Trainer

    settings, facts, model = _load_run(args.run_dir)
    raw = read_inputs(args.input, tuple(facts["input_shape"]), facts["kind"],
                      facts["feature_names"])
    check_input(settings["model"], tuple(facts["input_shape"]), raw.shape)
    x = standardise(raw, facts["mean"], facts["std"])
    logits = Trainer(model, CrossEntropyLoss(), None, progress=False).predict(x)
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    classes = facts["classes"]
    print("row,class,probability", file=out)
    for i, (k, p) in enumerate(zip(probs.argmax(axis=1), probs.max(axis=1))):
        print(f"{i},{classes[k]},{p:.4f}", file=out)
    return 0


# --- entry point ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``backprop`` and ``python -m backprop``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "demo":
        from backprop.__main__ import train_xor
        if args.epochs < 1 or not args.lr > 0:
            parser.error("demo: --epochs must be >= 1 and --lr positive")
        train_xor(args.epochs, args.lr, args.seed)
        return 0
    command = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
               "compare-rules": compare_rules.cmd_compare_rules}
    try:
        return command[args.command](args)
    except (UsageError, RunError) as exc:
        print(f"backprop {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:  # `backprop predict ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
