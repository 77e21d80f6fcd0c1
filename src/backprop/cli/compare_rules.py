"""``backprop compare-rules``: train one architecture with each learning rule, side by side.

    backprop compare-rules [--dataset digits|mnist|fashion-mnist] [--data-dir DIR]
                           [--epochs N] [--rules backprop,fa,dfa,ff,perturbation]
                           [--ff-hidden 2000,2000,...] [--seed S] [--out DIR]

Every rule trains through the ordinary training loop (``backprop.train.Trainer``) with Adam
(Forward-Forward on MNIST with SGD and momentum, as Hinton did), cosine-annealed, from the same
seed, on the same data. Backprop, feedback alignment and direct feedback alignment train the
very same MLP (same initial weights), Forward-Forward its own stack of layers with the label
appended to the input, weight perturbation a smaller MLP (digits only).
The output directory gets ``results.csv`` (one row per rule), ``history.csv`` (one row per rule
and epoch) and ``accuracy.png`` (test accuracy per epoch for every rule).

Only the CLI imports this module: ``import backprop`` stays NumPy-only.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from backprop.cli.errors import RunError, UsageError

RULES = ("backprop", "fa", "dfa", "ff", "perturbation")
DATASETS = ("digits", "mnist", "fashion-mnist")
RESULTS_HEADER = ("rule", "test_accuracy", "epochs", "seconds", "angle_deg")
HISTORY_HEADER = ("rule", "epoch", "train_loss", "train_accuracy", "test_accuracy", "angle_deg",
                  "seconds")
ANGLE_SAMPLES = 1000  # the fixed training batch the alignment angle is measured on

_TITLES = {"digits": "the 8x8 digits", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_NAMES = {"backprop": "backprop", "fa": "feedback alignment", "dfa": "direct feedback alignment",
          "ff": "Forward-Forward", "perturbation": "weight perturbation"}


@dataclass(frozen=True)
class Recipe:
    """What ``compare-rules`` trains on one dataset.

    Attributes:
        hidden: the MLP's hidden widths (backprop, fa, dfa), tanh units.
        epochs: per rule.
        lr: the learning rate per rule (cosine-annealed to 0 over the run).
        sgd: the rules trained with SGD (momentum 0.9) instead of Adam.
        batch_size: samples per step (all rules).
        ff_hidden: Forward-Forward's ReLU layer widths.
        ff: other ``rules.ForwardForward`` arguments.
        ff_raw_pixels: give Forward-Forward the raw pixels in [0, 1] instead of the
            standardised inputs (its own input encoding).
        wp_hidden: the smaller MLP weight perturbation trains (tanh).
        wp: ``rules.WeightPerturbation`` arguments.
    """

    hidden: tuple[int, ...]
    epochs: dict[str, int]
    lr: dict[str, float]
    batch_size: int
    ff_hidden: tuple[int, ...]
    sgd: tuple[str, ...] = ()
    ff: dict = field(default_factory=dict)
    ff_raw_pixels: bool = False
    wp_hidden: tuple[int, ...] = ()
    wp: dict = field(default_factory=dict)


# Forward-Forward on MNIST: Hinton's depth (4 ReLU layers) at half his width (1000, not 2000),
# with his optimiser (momentum 0.9; his step 0.01 on a 0.1-weighted running mean of gradients
# without the factor 2 of d(h²)/dh is SGD lr 5e-4 here). 4 x 2000 costs about 220 CPU-seconds
# an epoch here (hard negatives and the test evaluation included), 12-15 minutes of wall-clock
# on the shared 2-core machine: a dozen epochs would take hours, so the width is halved.
_MNIST = Recipe(
    hidden=(1000, 1000), batch_size=100,
    epochs={"backprop": 20, "fa": 20, "dfa": 20, "ff": 15},
    lr={"backprop": 1e-3, "fa": 1e-3, "dfa": 1e-3, "ff": 5e-4}, sgd=("ff",),
    ff_hidden=(1000, 1000, 1000, 1000), ff={"negatives": "hard"}, ff_raw_pixels=True,
)

RECIPES: dict[str, Recipe] = {
    "digits": Recipe(
        hidden=(256, 256), batch_size=32,
        epochs={"backprop": 30, "fa": 30, "dfa": 30, "ff": 30, "perturbation": 30},
        lr={"backprop": 1e-3, "fa": 1e-3, "dfa": 1e-3, "ff": 3e-3, "perturbation": 1e-2},
        ff_hidden=(256, 256), ff={"negatives": "hard"},
        wp_hidden=(32,), wp={"epsilon": 1e-2, "directions": 16},
    ),
    "mnist": _MNIST,
    "fashion-mnist": _MNIST,
}


# --- the rules ---
def _mlp(recipe_hidden, facts: dict):
    from backprop.cli.models import build_model
    return build_model("mlp", tuple(facts["input_shape"]), facts["num_classes"],
                       hidden=recipe_hidden, activation="tanh")


def build(rule: str, recipe: Recipe, facts: dict, seed: int):
    """(model, loss_fn) for ``rule``; the model's weights are drawn after ``manual_seed(seed)``
    so that backprop, fa and dfa start from identical forward weights."""
    import backprop as bp
    from backprop import rules

    bp.manual_seed(seed)
    ce = bp.nn.CrossEntropyLoss()
    if rule == "backprop":
        return _mlp(recipe.hidden, facts), ce
    if rule == "fa":
        return rules.feedback_alignment(_mlp(recipe.hidden, facts)), ce
    if rule == "dfa":
        return rules.DFA(_mlp(recipe.hidden, facts)), ce
    if rule == "ff":
        ff = rules.ForwardForward(int(np.prod(facts["input_shape"])), recipe.ff_hidden,
                                  facts["num_classes"], **recipe.ff)
        return ff, ff.loss
    wp = rules.WeightPerturbation(_mlp(recipe.wp_hidden, facts), ce, **recipe.wp)
    return wp, wp.loss


def describe(rule: str, recipe: Recipe, facts: dict) -> str:
    """The architecture ``rule`` trains, as text, e.g. ``'MLP 784-1000-1000-10 tanh'``."""
    n_in, k = int(np.prod(facts["input_shape"])), facts["num_classes"]
    if rule == "ff":
        sizes = "-".join(map(str, (f"{n_in}+{k}", *recipe.ff_hidden)))
        return f"FF {sizes} ReLU ({recipe.ff.get('negatives', 'hard')} negatives)"
    hidden = recipe.wp_hidden if rule == "perturbation" else recipe.hidden
    return f"MLP {'-'.join(map(str, (n_in, *hidden, k)))} tanh"


# --- callbacks ---
def _angle_callback(model, x, y):
    """A Callback recording ``rules.alignment_angle`` on a fixed batch after every epoch (and
    before the first, as epoch 0)."""
    import backprop as bp
    from backprop import rules
    from backprop.train import Callback

    loss_fn = bp.nn.CrossEntropyLoss()

    class AlignmentAngle(Callback):
        order = 30  # before the loggers, so the column is in the epoch's row

        def __init__(self):
            self.initial = None

        def on_train_begin(self, trainer):
            if trainer.epoch == 0:
                self.initial = rules.alignment_angle(model, loss_fn, x, y)

        def on_epoch_end(self, trainer, epoch, logs):
            logs["angle_deg"] = rules.alignment_angle(model, loss_fn, x, y)

    return AlignmentAngle()


# --- one rule ---
def train_rule(rule: str, recipe: Recipe, splits, facts: dict, seed: int, epochs: int,
               out=None) -> dict:
    """Train one rule; returns ``{"rule", "test_accuracy", "epochs", "seconds", "angle_deg",
    "history": [row per epoch, and an epoch-0 row with the initial angle for fa and dfa]}``.
    ``seconds`` is the wall-clock of the training steps alone (the per-epoch test evaluations
    and angle measurements excluded)."""
    import backprop as bp
    from backprop.optim.lr_scheduler import CosineAnnealingLR
    from backprop.train import EpochLogger, LRSchedulerStep, Trainer

    out = out or sys.stdout
    model, loss_fn = build(rule, recipe, facts, seed)
    train, test = splits.train, splits.test
    if rule == "ff" and recipe.ff_raw_pixels:
        train, test = _raw_pixels(splits)
    if rule in recipe.sgd:
        optimizer = bp.optim.SGD(model.parameters(), lr=recipe.lr[rule], momentum=0.9)
    else:
        optimizer = bp.optim.Adam(model.parameters(), lr=recipe.lr[rule])
    steps = epochs * max(1, -(-len(train) // recipe.batch_size))
    callbacks = [LRSchedulerStep(CosineAnnealingLR(optimizer, T_max=steps), interval="batch"),
                 EpochLogger(lambda line: print(f"  {rule}: {line}", file=out, flush=True),
                             every=max(1, -(-epochs // 10)))]
    angle = None
    if rule in ("fa", "dfa"):
        n = min(ANGLE_SAMPLES, len(train))
        angle = _angle_callback(model, bp.tensor(train.data[:n]), bp.tensor(train.targets[:n]))
        callbacks.append(angle)
    # weight perturbation and Forward-Forward read losses back into Python inside the step:
    # no tape for them
    trainer = Trainer(model, loss_fn, optimizer, callbacks=callbacks, seed=seed,
                      progress=False,
                      compile="auto" if rule not in ("perturbation", "ff") else False)
    history = trainer.fit(train, val_data=test, epochs=epochs, batch_size=recipe.batch_size)
    rows = [{"rule": rule, "epoch": r["epoch"], "train_loss": r.get("loss"),
             "train_accuracy": r.get("accuracy"), "test_accuracy": r.get("val_accuracy"),
             "angle_deg": r.get("angle_deg"), "seconds": r.get("time")} for r in history.rows]
    result = {"rule": rule, "test_accuracy": rows[-1]["test_accuracy"], "epochs": len(rows),
              "seconds": sum(r["seconds"] for r in rows), "angle_deg": rows[-1]["angle_deg"]}
    if angle is not None:  # the angle before any update: history's epoch 0
        rows.insert(0, {"rule": rule, "epoch": 0, "angle_deg": angle.initial})
    result["history"] = rows
    return result


def _raw_pixels(splits):
    """The train and test images as raw intensities in [0, 1] (both loaders store [0, 1];
    this undoes the standardisation), flattened: Forward-Forward's own input encoding."""
    from backprop.data import TensorDataset

    def raw(ds):
        x = np.clip(ds.data * splits.std + splits.mean, 0.0, 1.0)
        return TensorDataset(x.reshape(len(x), -1).astype(np.float32), ds.targets)
    return raw(splits.train), raw(splits.test)


# --- output ---
def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow(["" if r.get(k) is None else f"{r[k]:.6g}" if isinstance(r[k], float)
                         else r[k] for k in header])
    return buf.getvalue()


def plot_accuracy(results: list[dict], path: Path, title: str) -> Path:
    """Draw test accuracy (%) per epoch for every rule into a PNG (needs matplotlib)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ImportError("accuracy.png needs matplotlib: pip install 'backprop[plot]'") from exc
    from backprop.train import atomic_write

    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    markers = {"backprop": "o", "fa": "s", "dfa": "^", "ff": "D", "perturbation": "v"}
    lows = []
    for res in results:
        pts = [(r["epoch"], 100 * r["test_accuracy"]) for r in res["history"]
               if r.get("test_accuracy") is not None]
        if not pts:
            continue
        final = 100 * res["test_accuracy"]
        ax.plot(*zip(*pts), marker=markers.get(res["rule"]), markersize=3, linewidth=1.4,
                color=f"C{RULES.index(res['rule'])}",  # one colour per rule, in every plot
                label=f"{_NAMES[res['rule']]} ({final:.2f}%)")
        lows.append(min(v for _, v in pts[len(pts) // 4:]))  # ignore the first quarter
    if lows:
        ax.set_ylim(max(0.0, math.floor(min(lows)) - 1.0), 100.0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write(path, buf.getvalue())
    return path


def _table(results: list[dict]) -> str:
    lines = [f"{'rule':<13} {'test acc':>9} {'epochs':>6} {'seconds':>8} {'angle':>7}"]
    for r in results:
        angle = "" if r["angle_deg"] is None else f"{r['angle_deg']:.1f}"
        lines.append(f"{r['rule']:<13} {100 * r['test_accuracy']:>8.2f}% {r['epochs']:>6} "
                     f"{r['seconds']:>8.1f} {angle:>7}")
    return "\n".join(lines)


# --- the command ---
def parse_rules(text: str) -> list[str]:
    """``'fa,dfa'`` -> ['fa', 'dfa'] in the command's fixed order; unknown names are refused."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in RULES]
    if bad or not names:
        raise UsageError(f"--rules: unknown rule(s) {', '.join(bad) or '(none given)'}; choose "
                         f"from {','.join(RULES)}")
    return [r for r in RULES if r in names]


def parse_widths(text: str) -> tuple[int, ...]:
    """``'2000,2000'`` -> (2000, 2000); anything but positive integers is refused."""
    try:
        widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise UsageError(f"--ff-hidden: expected comma-separated positive layer widths such as "
                         f"2000,2000,2000,2000, got {text!r}")
    return widths


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``compare-rules`` on the ``backprop`` subparsers."""
    p = sub.add_parser(
        "compare-rules", allow_abbrev=False,
        help="train one network with backprop, FA, DFA, Forward-Forward and weight "
             "perturbation side by side",
        description="Train the same architecture with each learning rule from the same seed; "
                    "print a table and write results.csv, history.csv and accuracy.png.")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="the dataset (default: digits)")
    p.add_argument("--data-dir", metavar="DIR", help="the directory of the IDX files (mnist, "
                   "fashion-mnist)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="epochs for every rule (default: the dataset's recipe)")
    p.add_argument("--rules", default=",".join(RULES), metavar="LIST",
                   help=f"comma-separated subset of {','.join(RULES)} (default: all; "
                        "perturbation runs on digits only)")
    p.add_argument("--ff-hidden", metavar="WIDTHS", help="Forward-Forward's layer widths, e.g. "
                   "2000,2000,2000,2000 (default: the dataset's recipe)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: "
                   "runs/compare-rules-DATASET-TIMESTAMP)")
    return p


def cmd_compare_rules(args: argparse.Namespace, out=None) -> int:
    """``backprop compare-rules``."""
    out = out or sys.stdout
    from backprop.cli.datasets import load_splits
    from backprop.train import atomic_write

    chosen = parse_rules(args.rules)
    ff_hidden = None if args.ff_hidden is None else parse_widths(args.ff_hidden)
    given = args.rules != ",".join(RULES)
    if args.dataset != "digits" and "perturbation" in chosen:
        if given:
            raise UsageError("--rules perturbation: weight perturbation runs on digits only "
                             "(its gradient estimate is too noisy for a network of MNIST's "
                             "size); use --dataset digits")
        chosen.remove("perturbation")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.data_dir and args.dataset == "digits":
        raise UsageError("--data-dir goes with --dataset mnist or fashion-mnist (digits ship "
                         "with scikit-learn)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out or Path("runs") / f"compare-rules-{args.dataset}-{stamp}")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UsageError(f"--out: {run_dir} already exists and is not empty; choose another "
                         "--out")
    splits = load_splits(args.dataset, args.data_dir)
    facts = {"input_shape": list(splits.input_shape), "num_classes": splits.num_classes}
    recipe = RECIPES[args.dataset]
    if ff_hidden is not None:
        recipe = replace(recipe, ff_hidden=ff_hidden)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create {run_dir}: {exc.strerror or exc}") from None
    print(f"compare-rules on {args.dataset}: {len(splits.train)} training samples, "
          f"{len(splits.test)} test; seed {args.seed} -> {run_dir}", file=out, flush=True)
    results = []
    for rule in chosen:
        epochs = args.epochs or recipe.epochs[rule]
        opt = "SGD momentum 0.9" if rule in recipe.sgd else "Adam"
        print(f"{rule}: {describe(rule, recipe, facts)}, {opt} lr {recipe.lr[rule]:g} (cosine), "
              f"batch {recipe.batch_size}, {epochs} epochs", file=out, flush=True)
        try:
            res = train_rule(rule, recipe, splits, facts, args.seed, epochs, out)
        except KeyboardInterrupt:
            raise RunError(f"interrupted while training {rule}; the rules finished before it "
                           f"are in {run_dir}") from None
        results.append(res)
        _write(run_dir, results, args.dataset, atomic_write, out, final=False)
    _write(run_dir, results, args.dataset, atomic_write, out, final=True)
    print(_table(results), file=out)
    print(f"results in {run_dir}", file=out)
    return 0


def _write(run_dir: Path, results: list[dict], dataset: str, atomic_write, out,
           final: bool) -> None:
    """results.csv and history.csv after every rule (a long run keeps what it finished), and
    accuracy.png at the end."""
    try:
        atomic_write(run_dir / "results.csv", _csv_text(RESULTS_HEADER, results))
        atomic_write(run_dir / "history.csv",
                     _csv_text(HISTORY_HEADER, [r for res in results for r in res["history"]]))
        if final:
            try:
                plot_accuracy(results, run_dir / "accuracy.png",
                              f"Learning rules on {_TITLES[dataset]}: test accuracy per epoch")
            except ImportError:
                print("note: accuracy.png not drawn: matplotlib is not installed (pip install "
                      "'backprop[plot]')", file=out)
    except OSError as exc:
        raise RunError(f"cannot write the results in {run_dir}: {exc.strerror or exc}") \
            from None
