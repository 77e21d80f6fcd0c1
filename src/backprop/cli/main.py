"""``backprop`` (and ``python -m backprop``): train, evaluate and predict from the command line.

    backprop train [--model mlp|cnn|lstm] [--dataset digits|mnist|...] [flags] [--out RUN_DIR]
    backprop train --resume --out RUN_DIR
    backprop evaluate RUN_DIR [--dataset NAME --data-dir PATH]
    backprop predict RUN_DIR INPUT.npy|INPUT.csv
    backprop explain       (alias demo: one forward and backward pass of a 2-2-1 XOR network,
                            node by node, checked against finite differences)
    backprop graph --out PATH   (the computational graph of one training step, drawn)
    backprop bench gradient-cost [--out DIR]   (finite differences against backprop, timed)

A run directory holds ``checkpoint.safetensors`` (everything needed to resume or to predict),
``config.toml`` (the settings), ``history.csv`` (one row per epoch), ``metrics.json`` (test
loss and accuracy), ``curves.png`` and ``.lock`` (see ``rundir``: one process at a time). A
user's mistake or a fault of the machine (disk full, permissions) ends with one ``error:`` line
and exit status 2 (bad usage) or 1 (the run failed), never a traceback; Ctrl-C and SIGTERM end
with one line and status 130 and 143, after checkpointing the last completed step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings

import numpy as np

from backprop.cli import bench, compare_rules, explain, graph
from backprop.cli import config as cfg
from backprop.cli.errors import RunError, UsageError, describe_os_error
from backprop.cli.rundir import CHECKPOINT, FILES, load_run
from backprop.cli.train import cmd_train, percent
from backprop.train._signals import SIGNAL_NAMES, raise_interrupted

__all__ = ["CHECKPOINT", "FILES", "build_parser", "cmd_train", "main"]


# --- argument parsing ------------------------------------------------------------------------
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
                           type=option.argparse_type() if not option.choices else None,
                           help=option.help + shown, **extra)
    train.add_argument("--no-compile", action="store_true",
                       help="run every step eagerly instead of capturing it once and "
                            "replaying it (backprop.compile; the results are identical)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out RUN_DIR from its last checkpoint")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training under `mpirun -n N` (needs backprop[mpi]): "
                            "--batch-size is per rank, rank 0 writes the run directory")
    train.add_argument("--dist-timeout", type=float, default=300.0, metavar="SECONDS",
                       help="with --distributed: stop when another rank has not answered for "
                            "this long (default: 300)")
    train.add_argument("--monitor-gradients", action="store_true",
                       help="record per-layer gradient norms, weight norms and update ratios "
                            "(RUN_DIR/gradients.csv, gradients.png) and warn when gradients "
                            "vanish or explode")
    train.add_argument("--tensorboard", metavar="DIR",
                       help="also write TensorBoard event files (losses, metrics, learning "
                            "rate, per-layer gradient and weight histograms) to DIR; needs "
                            "pip install 'backprop[tensorboard]'")
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
    ex = sub.add_parser("export", allow_abbrev=False,
                        help="export a trained run's model (ONNX; needs backprop[onnx])")
    ex.add_argument("run_dir", metavar="RUN_DIR")
    ex.add_argument("--format", choices=["onnx"], default="onnx", help="the file format")
    ex.add_argument("--out", metavar="PATH", help="the file to write (default: "
                    "RUN_DIR/model.onnx)")
    compare_rules.add_parser(sub)
    graph.add_parser(sub)
    explain.add_parser(sub)
    bench.add_parser(sub)
    return parser


# --- evaluate and predict ----------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace, out=None) -> int:
    """``backprop evaluate RUN_DIR``."""
    out = out or sys.stdout
    from backprop.cli.datasets import check_finite, load_splits, standardise
    from backprop.cli.models import check_input
    from backprop.data import TensorDataset
    from backprop.nn import CrossEntropyLoss
    from backprop.train import Trainer

    settings, facts, model = load_run(args.run_dir)
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
        check_finite(x, f"{name} test set")
    # labels by name: the other data's class k is not the run's class k (their sorted orders
    # differ whenever their label sets do)
    index = {c: i for i, c in enumerate(facts["classes"])}
    unknown = sorted({splits.classes[k] for k in np.unique(y)} - set(index))
    if unknown:
        raise RunError(f"{name} test labels {', '.join(map(repr, unknown))} are not among this "
                       f"run's {facts['num_classes']} classes "
                       f"({', '.join(map(repr, facts['classes']))}), which it was trained on; "
                       "they cannot be scored")
    y = np.array([index.get(c, -1) for c in splits.classes], dtype=np.int64)[y]
    trainer = Trainer(model, CrossEntropyLoss(), None, progress=False)
    result = trainer.evaluate(TensorDataset(x, y))
    correct = round(result["accuracy"] * len(y))
    print(f"{name} test set ({len(y)} samples): loss {result['loss']:.4f}, accuracy "
          f"{percent(result['accuracy'])} ({correct}/{len(y)})", file=out)
    return 0


def cmd_predict(args: argparse.Namespace, out=None) -> int:
    """``backprop predict RUN_DIR INPUT``."""
    out = out or sys.stdout
    from backprop.cli.datasets import check_finite, read_inputs, standardise
    from backprop.cli.models import check_input
    from backprop.nn import CrossEntropyLoss
    from backprop.train import Trainer

    settings, facts, model = load_run(args.run_dir)
    raw = read_inputs(args.input, tuple(facts["input_shape"]), facts["kind"],
                      facts["feature_names"])
    check_input(settings["model"], tuple(facts["input_shape"]), raw.shape)
    x = standardise(raw, facts["mean"], facts["std"])
    check_finite(x, str(args.input))
    logits = Trainer(model, CrossEntropyLoss(), None, progress=False).predict(x)
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    classes = facts["classes"]
    print("row,class,probability", file=out)
    for i, (k, p) in enumerate(zip(probs.argmax(axis=1), probs.max(axis=1))):
        print(f"{i},{classes[k]},{p:.4f}", file=out)
    return 0


def cmd_export(args: argparse.Namespace, out=None) -> int:
    """``backprop export RUN_DIR --format onnx [--out PATH]``."""
    out = out or sys.stdout
    from pathlib import Path

    import backprop as bp

    try:
        from backprop.onnx import UnsupportedOpError, export
        from backprop.onnx.export import _onnx
        _onnx()
    except ImportError as exc:
        raise RunError(str(exc).split(" (")[0]) from None
    settings, facts, model = load_run(args.run_dir)
    path = Path(args.out) if args.out else Path(args.run_dir) / "model.onnx"
    example = bp.zeros(1, *facts["input_shape"])
    try:
        export(model, example, path)
    except UnsupportedOpError as exc:
        raise RunError(str(exc)) from None
    print(f"wrote {path} (ONNX opset 17; input 'input' of shape (batch, "
          f"{', '.join(map(str, facts['input_shape']))}), output 'output': "
          f"{facts['num_classes']} class scores)", file=out)
    return 0


# --- entry point ---------------------------------------------------------------------------
@contextlib.contextmanager
def _one_line_only():
    """While a command runs: NumPy's RuntimeWarnings (overflow, invalid value) print nothing,
    since their consequences are checked and reported in the error line they would precede;
    SIGTERM raises ``TrainingInterrupted`` like Ctrl-C raises ``KeyboardInterrupt``, so it
    ends in one line too (``fit`` turns both into a stop between two steps)."""
    previous = None
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``backprop`` and ``python -m backprop``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
               "compare-rules": compare_rules.cmd_compare_rules, "export": cmd_export,
               "graph": graph.cmd_graph, "explain": explain.cmd_explain,
               "demo": explain.cmd_explain, "bench": bench.cmd_bench}
    error = f"backprop {args.command}: error:"
    try:
        with _one_line_only():
            return command[args.command](args)
    except (UsageError, RunError) as exc:
        print(f"{error} {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt as exc:  # evaluate, predict: they write nothing
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{error} interrupted by {SIGNAL_NAMES.get(signum, signum)}", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # `backprop predict ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except MemoryError:
        print(f"{error} out of memory; use a smaller model, batch or input", file=sys.stderr)
        return 1
    except OSError as exc:  # the machine refused: permissions, a full disk, an I/O error
        print(f"{error} {describe_os_error(exc)}", file=sys.stderr)
        return 1
