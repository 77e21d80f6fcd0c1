"""``backprop explain`` (alias ``backprop demo``): watch the chain rule on a small network.

    backprop explain [--hidden 2] [--activation sigmoid] [--dataset xor|digits|spirals]
                     [--samples N] [--seed 0] [--level auto|element|tensor]
                     [--format text|markdown|json] [--html PAGE.html] [--config FILE.toml]
                     [--epochs N --lr LR]

One forward and one backward pass of an MLP with a sigmoid output and the mean squared error,
printed node by node in the order backprop visits them, then every weight's gradient beside its
central finite-difference estimate. ``--html`` writes the interactive page instead.
``--epochs N`` then trains the same network by full-batch gradient descent and prints the loss
(what ``backprop demo`` did before).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib

import numpy as np

from backprop.cli.errors import UsageError

DATASETS = ("xor", "digits", "spirals")
DEFAULT_SAMPLES = {"xor": 4, "digits": 8, "spirals": 8}
SNAPSHOTS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000)
_KEYS = {"hidden", "activation", "dataset", "samples", "seed", "level", "format", "lr",
         "epochs"}


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``explain`` (and its alias ``demo``) on the ``backprop`` subparsers."""
    from backprop.diagnostics.explain import ACTIVATIONS

    p = sub.add_parser(
        "explain", aliases=["demo"], allow_abbrev=False,
        help="one forward and backward pass of a small network, explained step by step",
        description="Trace one forward and one backward pass of a small MLP (default: 2-2-1 "
                    "sigmoid on the 4 XOR points, mean squared error, seed 0): every value, "
                    "local derivative, incoming gradient and product, in the order backprop "
                    "visits the nodes, then each weight's gradient beside its central finite-"
                    "difference estimate.")
    p.add_argument("--hidden", default=None, metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default: 2)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None,
                   help="hidden activation (default: sigmoid)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="default: xor")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="samples in the batch (default: xor 4, others 8)")
    p.add_argument("--seed", type=int, default=None, help="seed of the weights (default: 0)")
    p.add_argument("--level", choices=("auto", "element", "tensor"), default=None,
                   help="element: every scalar; tensor: shapes, norms, a few entries; auto: "
                        "element for at most 50 parameters (default)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default=None,
                   help="default: text")
    p.add_argument("--html", metavar="PAGE.html", help="write the interactive page instead")
    p.add_argument("--config", metavar="FILE.toml",
                   help="read these settings from a TOML file; flags override it")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="then train the network for N steps of full-batch gradient descent")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 2.0)")
    return p


def _hidden(text) -> tuple[int, ...]:
    if isinstance(text, int):
        text = str(text)
    if isinstance(text, list):
        text = ",".join(map(str, text))
    try:
        sizes = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--hidden {text}: give positive layer sizes separated by commas, "
                         "e.g. 4,3")
    return sizes


def settings_of(args: argparse.Namespace) -> dict:
    """The settings: defaults < --config file < flags, checked."""
    settings = {"hidden": "2", "activation": "sigmoid", "dataset": "xor", "samples": None,
                "seed": 0, "level": "auto", "format": "text", "lr": 2.0, "epochs": None}
    if args.config:
        try:
            with open(args.config, "rb") as f:
                values = tomllib.load(f)
        except FileNotFoundError:
            raise UsageError(f"--config: no such file {args.config}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"--config: {args.config} is not valid TOML: {exc}") from None
        unknown = sorted(set(values) - _KEYS)
        if unknown:
            raise UsageError(f"--config: unknown key(s) {', '.join(unknown)}; valid keys are "
                             f"{', '.join(sorted(_KEYS))}")
        settings.update(values)
    for key in _KEYS:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    from backprop.diagnostics.explain import ACTIVATIONS
    settings["hidden"] = _hidden(settings["hidden"])
    if settings["activation"] not in ACTIVATIONS:
        raise UsageError(f"activation {settings['activation']!r}: choose from "
                         f"{', '.join(sorted(ACTIVATIONS))}")
    if settings["dataset"] not in DATASETS:
        raise UsageError(f"dataset {settings['dataset']!r}: choose from {', '.join(DATASETS)}")
    if settings["samples"] is None:
        settings["samples"] = DEFAULT_SAMPLES[settings["dataset"]]
    if int(settings["samples"]) < 1:
        raise UsageError("--samples must be at least 1")
    if settings["epochs"] is not None and int(settings["epochs"]) < 1:
        raise UsageError("--epochs must be >= 1 and --lr positive")
    if not float(settings["lr"]) > 0:
        raise UsageError("--epochs must be >= 1 and --lr positive")
    return settings


def data_of(name: str, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, F), y (N, K)): the first ``samples`` training points, one-hot targets (xor: a
    single 0/1 output)."""
    if name == "xor":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        y = np.array([[0], [1], [1], [0]], dtype=np.float64)
        return x[:samples], y[:samples]
    from backprop.cli.datasets import load_splits
    splits = load_splits(name)
    x = np.asarray(splits.train.data[:samples], dtype=np.float64).reshape(
        min(samples, len(splits.train)), -1)
    labels = np.asarray(splits.train.targets[:samples])
    return x, np.eye(splits.num_classes)[labels]


def cmd_explain(args: argparse.Namespace, out=None) -> int:
    """``backprop explain`` / ``backprop demo``."""
    out = out or sys.stdout
    from backprop.diagnostics.explain import explain, render

    s = settings_of(args)
    x, y = data_of(s["dataset"], int(s["samples"]))
    meta = {"dataset": s["dataset"]}
    snapshots = SNAPSHOTS if args.html else ()
    result = explain(x, y, s["hidden"], s["activation"], int(s["seed"]), lr=float(s["lr"]),
                     snapshots=snapshots, meta=meta)
    if args.html:
        from backprop.diagnostics.page import write_page
        path = write_page(result, args.html)
        print(f"wrote {path}: open it in a browser (no server or network needed)", file=out)
    elif s["format"] == "json":
        json.dump(result.to_json(), out)
        out.write("\n")
    else:
        out.write(render(result, s["format"], s["level"]))
    if s["epochs"]:
        _train(x, y, s, out)
    return 0


def _train(x, y, s: dict, out) -> None:
    import backprop as bp
    from backprop.diagnostics.explain import build_network

    model = build_network(x.shape[1], s["hidden"], y.shape[1], s["activation"], int(s["seed"]))
    params = list(model.parameters())
    xt, yt = bp.tensor(x), bp.tensor(y)
    epochs, lr = int(s["epochs"]), float(s["lr"])
    every = max(1, epochs // 10)
    print(f"\ntraining it: {epochs} epochs of full-batch gradient descent, lr {lr}", file=out)
    for epoch in range(1, epochs + 1):
        for p in params:
            p.grad = None
        loss = bp.nn.functional.mse_loss(model(xt), yt)
        loss.backward()
        with bp.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=lr)
        if epoch == 1 or epoch % every == 0 or epoch == epochs:
            print(f"epoch {epoch:5d}  loss {loss.item():.6f}", file=out)
    with bp.no_grad():
        pred = model(xt).data
    if s["dataset"] == "xor":
        for row, p in zip(x, pred[:, 0]):
            print(f"  {int(row[0])} xor {int(row[1])} -> {p:.3f}", file=out)
