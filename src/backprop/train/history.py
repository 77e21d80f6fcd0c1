"""``History``: one row of metrics per epoch, saved as CSV and drawn as loss/accuracy curves."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from backprop.train.checkpoint import atomic_write

# The columns in the order a reader expects them; metrics a run does not have are left out.
_ORDER = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")


class History:
    """The metrics of every finished epoch (Keras's ``History``), returned by ``fit``.

    Attributes:
        rows: one dict per epoch, e.g. ``{"epoch": 1, "loss": 0.31, "accuracy": 0.91,
            "val_loss": 0.25, "val_accuracy": 0.93, "lr": 0.001, "time": 1.8}`` (``time`` is the
            epoch's wall-clock seconds).

    Example:
        >>> h = History([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
        >>> h["loss"], h.history["epoch"], len(h)
        ([0.5, 0.25], [1, 2], 2)
    """

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows: list[dict] = [dict(r) for r in rows or ()]

    def append(self, row: dict) -> None:
        """Add one epoch's metrics."""
        self.rows.append(dict(row))

    @property
    def columns(self) -> list[str]:
        """Every metric name that appears, known ones first in a fixed order."""
        seen = {k for r in self.rows for k in r}
        extra = sorted(seen.difference(_ORDER))
        return [k for k in _ORDER if k in seen] + extra

    @property
    def history(self) -> dict[str, list]:
        """Metric name -> list over epochs (None where an epoch lacks it), as in Keras."""
        return {k: [r.get(k) for r in self.rows] for k in self.columns}

    @property
    def epoch(self) -> list[int]:
        """The epoch numbers (1-based)."""
        return [r["epoch"] for r in self.rows]

    def __getitem__(self, metric: str) -> list:
        if self.rows and not any(metric in r for r in self.rows):
            raise KeyError(f"History has no metric {metric!r}; it has {self.columns}")
        return [r.get(metric) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        last = self.rows[-1] if self.rows else {}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in last.items())
        return f"History({len(self)} epochs{'; last: ' + shown if shown else ''})"

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the rows as CSV (header = ``columns``), atomically; floats keep every digit."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        columns = self.columns
        writer.writerow(columns)
        for r in self.rows:
            writer.writerow(["" if r.get(k) is None else repr(r[k]) if isinstance(r[k], float)
                             else r[k] for k in columns])
        atomic_write(path, buf.getvalue())

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> History:
        """Read a file written by ``to_csv`` (numbers come back as int or float)."""
        def value(text: str):
            if text == "":
                return None
            try:
                return int(text)
            except ValueError:
                return float(text)
        with open(path, newline="") as f:
            return cls([{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)])

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Draw loss and (if recorded) accuracy against epoch, train and validation, to a PNG.

        Needs matplotlib (``pip install 'backprop[plot]'``); uses its Agg canvas directly, so
        it works without a display and leaves pyplot's state alone.

        Returns:
            the path written.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError(
                "History.plot needs matplotlib: install it with `pip install matplotlib` or "
                "`pip install 'backprop[plot]'`"
            ) from exc
        panels = [("loss", "loss")]
        if any(r.get("accuracy") is not None or r.get("val_accuracy") is not None
               for r in self.rows):
            panels.append(("accuracy", "accuracy"))
        fig = Figure(figsize=(5.5 * len(panels), 4.0), layout="constrained")
        FigureCanvasAgg(fig)
        epochs = self.epoch
        for i, (metric, label) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            for key, name, style in ((metric, "train", "-o"), (f"val_{metric}", "validation",
                                                                "-s")):
                pts = [(e, v) for e, v in zip(epochs, self[key] if key in self.columns else [])
                       if v is not None and math.isfinite(v)]
                if pts:
                    ax.plot(*zip(*pts), style, markersize=3, label=name)
            if metric == "loss" and all(v > 0 for v in self["loss"] if v is not None):
                ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        path = Path(path)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        atomic_write(path, buf.getvalue())
        return path
