"""The settings of ``backprop train``: one table of options behind the flags, the TOML config
file and the run's saved ``config.toml``.

Every option has one converter, used for a flag's text and for a TOML value alike, so the two
ways of setting it accept the same things and fail with the same message. Precedence, lowest
first: built-in defaults, the defaults for the chosen dataset and model (``RECIPES``), the
``--config`` file, the flags given.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backprop.cli.datasets import DATASETS
from backprop.cli.errors import UsageError
from backprop.cli.models import ACTIVATIONS, INITS, MODELS

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam")
LR_SCHEDULES = ("none", "cosine", "step", "onecycle")


def _int(low: int) -> Callable:
    def convert(value):
        if isinstance(value, str):
            try:
                value = int(value, 10)
            except ValueError:
                raise ValueError(f"expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        return value
    return convert


def _float(low: float, high: float | None = None, low_open: bool = False) -> Callable:
    def convert(value):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        value = float(value)
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and \
            (high is None or value < high)
        if not ok:
            rule = f"> {low:g}" if low_open else f">= {low:g}"
            rule += f" and < {high:g}" if high is not None else ""
            raise ValueError(f"must be {rule}, got {value!r}")
        return value
    return convert


def _choice(choices) -> Callable:
    def convert(value):
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"invalid choice {value!r} (choose from {', '.join(choices)})")
        return value
    return convert


def _text(value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty text, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system encoding could not decode (surrogates)
        raise ValueError(f"{ascii(value)} is not valid UTF-8 text; use a name in UTF-8 "
                         "(this one could be neither saved in config.toml nor printed)") from None
    return value


def _path(value) -> str:
    """A path stored resolved (absolute, without symlinks), so that ``evaluate`` and
    ``--resume`` find it from any working directory; the relative and the absolute spelling
    of one place are then the same setting."""
    return str(Path(_text(value)).resolve())


def _hidden(value) -> list[int]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")] if value.strip() else []
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    elif isinstance(value, list):
        parts = value
    else:
        raise ValueError(f"expected layer sizes such as 256,128, got {value!r}")
    sizes = []
    for p in parts:
        try:
            size = _int(1)(p)
        except ValueError:
            raise ValueError(f"expected positive layer sizes such as 256,128, got "
                             f"{value!r}") from None
        sizes.append(size)
    return sizes


def _batch_size(value):
    if value == "full":
        return "full"
    try:
        return _int(1)(value)
    except ValueError:
        raise ValueError(f"expected a positive integer or 'full', got {value!r}") from None


@dataclass(frozen=True)
class Option:
    """One setting: its flag's name, converter, default and help text."""

    name: str
    convert: Callable
    default: object
    help: str
    metavar: str | None = None
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def argparse_type(self) -> Callable:
        """The converter as argparse's ``type=``: a bad value becomes argparse's usage error."""
        import argparse

        def convert(text: str):
            try:
                return self.convert(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None
        convert.__name__ = self.name  # argparse names the type in some messages
        return convert


OPTIONS = (
    Option("model", _choice(MODELS), "mlp", "network to train", choices=MODELS),
    Option("dataset", _choice(DATASETS), "digits", "data to train on", choices=DATASETS),
    Option("data_dir", _path, None, "the dataset's directory (mnist, fashion-mnist) or CSV "
           "file (csv)", "PATH"),
    Option("target", _text, None, "the class column of a CSV dataset", "COLUMN"),
    Option("epochs", _int(1), 20, "passes over the training data", "N"),
    Option("batch_size", _batch_size, 32, "samples per step: 1 is pure SGD, 'full' batch "
           "gradient descent", "N|full"),
    Option("optimizer", _choice(OPTIMIZERS), "adam", "update rule", choices=OPTIMIZERS),
    Option("lr", _float(0.0, low_open=True), 1e-3, "learning rate", "LR"),
    Option("momentum", _float(0.0, 1.0), 0.9, "momentum of sgd and rmsprop", "M"),
    Option("weight_decay", _float(0.0), 0.0, "L2 penalty (decoupled for adamw)", "WD"),
    Option("lr_schedule", _choice(LR_SCHEDULES), "none", "learning-rate schedule over the "
           "run", choices=LR_SCHEDULES),
    Option("hidden", _hidden, [128], "hidden layer sizes, e.g. 256,128 (cnn: the dense "
           "layer; lstm: the LSTM layers)", "SIZES"),
    Option("activation", _choice(tuple(ACTIVATIONS)), "relu", "hidden activation",
           choices=tuple(ACTIVATIONS)),
    Option("init", _choice(INITS), "default", "weight initialisation", choices=INITS),
    Option("dropout", _float(0.0, 1.0), 0.0, "dropout probability after hidden layers", "P"),
    Option("val_split", _float(0.0, 1.0), 0.0, "fraction of the training data held out for "
           "validation", "F"),
    Option("patience", _int(1), None, "stop early after N epochs without improvement of the "
           "validation loss (training loss without --val-split)", "N"),
    Option("clip_grad_norm", _float(0.0, low_open=True), None, "clip the gradients' joint "
           "norm to this value", "C"),
    Option("seed", _int(0), 0, "seeds weights, data order and dropout", "N"),
    Option("checkpoint_every", _int(1), None, "also checkpoint every N steps (always at "
           "epoch ends)", "N"),
    Option("out", _text, None, "run directory (default runs/<dataset>-<model>-<time>)",
           "RUN_DIR"),
)
BY_NAME = {o.name: o for o in OPTIONS}

# Settings that pick data and where the run goes, not how it trains: a resumed run may not
# change them, and they are not part of a recipe.
RUN_KEYS = ("out",)

# Defaults per (dataset, model) that beat the generic ones; their results are in README's
# results table (benchmarks/bench_results.py).
RECIPES: dict[tuple[str, str], dict] = {
    ("digits", "mlp"): {"epochs": 40, "hidden": [256], "dropout": 0.2, "lr": 3e-3,
                        "lr_schedule": "cosine"},
    ("mnist", "mlp"): {"epochs": 20, "batch_size": 128, "hidden": [512, 256], "dropout": 0.2,
                       "lr_schedule": "cosine"},
    ("fashion-mnist", "mlp"): {"epochs": 20, "batch_size": 128, "hidden": [512, 256],
                               "dropout": 0.2, "lr_schedule": "cosine"},
    ("mnist", "cnn"): {"epochs": 6, "batch_size": 128, "lr": 2e-3, "lr_schedule": "onecycle",
                       "dropout": 0.25},
    ("fashion-mnist", "cnn"): {"epochs": 4, "batch_size": 128, "lr": 2e-3,
                               "lr_schedule": "onecycle", "dropout": 0.25},
    ("xor", "mlp"): {"epochs": 100, "batch_size": "full", "hidden": [8], "activation": "tanh",
                     "lr": 0.1},
    ("spirals", "mlp"): {"epochs": 100, "hidden": [64], "lr": 0.01},
}


def convert(name: str, value, source: str):
    """``value`` converted by option ``name``'s converter; a bad value is a UsageError naming
    ``source`` (the flag or the config file)."""
    try:
        return BY_NAME[name].convert(value)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None


def read_config_file(path: str | os.PathLike) -> dict:
    """The settings in a TOML file: keys are the flag names with underscores.

    Raises:
        UsageError: the file is missing or not TOML, or has an unknown key or a bad value.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"--config: no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config: {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--config: {path} is not UTF-8 text, which TOML requires (byte "
                         f"0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"--config: cannot read {path}: {exc.strerror}") from None
    unknown = sorted(set(raw) - set(BY_NAME))
    if unknown:
        raise UsageError(f"--config: {path} has unknown key(s) {', '.join(unknown)}; valid keys "
                         f"are {', '.join(BY_NAME)}")
    return {k: convert(k, v, f"--config {path}: {k}") for k, v in raw.items()}


def resolve(flags: dict, file_values: dict) -> dict:
    """The full settings: defaults < recipe for (dataset, model) < config file < flags.

    ``flags`` holds only the options given on the command line (already converted).
    """
    given = {**file_values, **flags}
    dataset = given.get("dataset", BY_NAME["dataset"].default)
    model = given.get("model", BY_NAME["model"].default)
    settings = {o.name: o.default for o in OPTIONS}
    settings.update(RECIPES.get((dataset, model), {}))
    settings.update(given)
    return settings


def to_toml(settings: dict) -> str:
    """``settings`` as TOML text (None values are left out: TOML has no null)."""
    try:
        import tomli_w
    except ImportError as exc:
        raise ImportError("writing config.toml needs tomli-w: `pip install tomli-w` (a "
                          "dependency of backprop)") from exc
    return tomli_w.dumps({k: v for k, v in settings.items() if v is not None})
