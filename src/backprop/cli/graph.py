"""``backprop graph``: draw the computational graph of one training step of a built-in model.

    backprop graph [--model mlp|cnn|lstm] [--dataset digits|...] [--hidden ...] --out PATH

The model is the one ``backprop train`` would build with the same flags (same recipes, same
seed); one batch of ``--batch-size`` training samples goes through it and the cross-entropy
loss, ``backward()`` runs, and ``backprop.viz`` draws the graph with each op grouped in the
module that ran it and each parameter under its qualified name. The format follows the suffix
of ``--out``: ``.svg``, ``.png``, ``.pdf`` or ``.dot`` (text; no Graphviz needed).
"""

from __future__ import annotations

import argparse
import sys

from backprop.cli import config as cfg
from backprop.cli.errors import RunError, UsageError


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``graph`` on the ``backprop`` subparsers."""
    p = sub.add_parser(
        "graph", allow_abbrev=False, help="draw the computational graph of one training step",
        description="Build the model `backprop train` would build with these flags, run one "
                    "training step (forward, loss, backward) on a small batch and draw its "
                    "graph (SVG, PNG or PDF with Graphviz's dot; .dot text without it).")
    p.add_argument("--model", choices=cfg.BY_NAME["model"].choices, default="mlp",
                   help="the model (default: mlp)")
    p.add_argument("--dataset", choices=cfg.BY_NAME["dataset"].choices, default="digits",
                   help="the dataset whose first samples are fed (default: digits)")
    p.add_argument("--data-dir", metavar="PATH", help="the dataset's directory or CSV file")
    p.add_argument("--target", metavar="COLUMN", help="the class column of a CSV dataset")
    for name in ("hidden", "activation", "init", "seed"):
        option = cfg.BY_NAME[name]
        extra = {"choices": option.choices} if option.choices else {"metavar": option.metavar}
        p.add_argument(option.flag, dest=name, default=None,
                       type=None if option.choices else option.argparse_type(),
                       help=option.help, **extra)
    p.add_argument("--batch-size", type=int, default=2, metavar="N",
                   help="samples in the batch drawn (default: 2)")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="where to write: .svg, .png, .pdf or .dot")
    p.add_argument("--no-values", action="store_true",
                   help="leave values and gradients out of the labels")
    return p


def cmd_graph(args: argparse.Namespace, out=None) -> int:
    """``backprop graph``."""
    out = out or sys.stdout
    import backprop as bp
    from backprop import viz
    from backprop.cli.datasets import load_splits
    from backprop.cli.rundir import build
    from backprop.cli.train import _data_facts

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not str(args.out).lower().endswith((".svg", ".png", ".pdf", ".dot", ".gv")):
        raise UsageError(f"--out {args.out}: the name must end in .svg, .png, .pdf or .dot")
    flags = {k: getattr(args, k) for k in ("model", "dataset", "data_dir", "target", "hidden",
                                           "activation", "init", "seed")
             if getattr(args, k) is not None}
    settings = cfg.resolve(flags, {})
    splits = load_splits(settings["dataset"], settings["data_dir"], settings["target"])
    facts = _data_facts(splits)
    bp.manual_seed(settings["seed"])
    model = build(settings, facts)
    n = min(args.batch_size, len(splits.train))
    x = bp.tensor(splits.train.data[:n])
    y = bp.tensor(splits.train.targets[:n])
    with viz.capture(model):
        loss = bp.nn.functional.cross_entropy(model(x), y)
        loss.backward()
    try:
        path = viz.draw(loss, args.out, show_values=not args.no_values)
    except viz.GraphvizMissing as exc:
        raise RunError(str(exc)) from None
    n_params = sum(p.data.size for p in model.parameters())
    print(f"wrote {path}: one training step of {settings['model']} ({n_params:,} parameters) "
          f"on {n} {settings['dataset']} sample(s), loss {loss.item():.4f}", file=out)
    return 0
