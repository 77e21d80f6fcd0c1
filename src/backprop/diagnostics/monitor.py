"""``GradientMonitor``: per-layer gradient flow, recorded on every backward pass.

It hooks each parameter (``register_post_accumulate_grad_hook``) and, once per backward pass
(``queue_callback``: when the pass ends), records per layer the gradient norm, the weight norm
and, once the optimizer has moved the weights, the update-to-weight ratio
‖W_after − W_before‖ / ‖W_before‖. A plain training loop needs no extra call; passed to
``Trainer`` as a callback it does the same (recording once, not twice) and closes each step's
update ratio right after the optimizer step.

It warns (``GradientWarning``, once per layer and kind) when a layer's gradient vanishes (norm
below ``vanish_ratio`` times the output layer's) or explodes (above ``explode``, or not
finite).
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from backprop.autograd import graph
from backprop.train.callbacks import Callback

__all__ = ["GradientMonitor", "GradientWarning"]

_REMEDIES = {
    "vanish": "remedies: ReLU-family activations instead of sigmoid/tanh, He (kaiming_) or "
              "Xavier initialisation, normalisation layers (BatchNorm, LayerNorm), residual "
              "connections, or a shallower network",
    "explode": "remedies: gradient clipping (nn.utils.clip_grad_norm_, --clip-grad-norm), a "
               "smaller learning rate, normalisation layers, or a smaller initialisation",
}


class GradientWarning(UserWarning):
    """A layer's gradients vanish or explode (``GradientMonitor``)."""


class GradientMonitor(Callback):
    """Watch gradient flow through a model's layers.

    Args:
        model: the ``nn.Module``; a layer is a module that owns parameters directly, named by
            its qualified name (``"0"``, ``"encoder.fc1"``); the last one registered is the
            output layer.
        vanish_ratio: warn when a layer's gradient norm is below this fraction of the output
            layer's.
        explode: warn when a layer's gradient norm exceeds this, or is NaN/inf.
        warn: emit ``GradientWarning``s at all.
        on_warning: called with each warning's text instead of ``warnings.warn`` (the CLI
            prints them as ``warning:`` lines).

    Attributes:
        records: one dict per (step, layer): ``step`` (1-based backward pass), ``layer``,
            ``grad_norm``, ``weight_norm``, ``update_ratio`` (NaN until the weights change).
        layers: the layer names, input to output.

    Example:
        >>> import backprop as bp
        >>> from backprop.diagnostics import GradientMonitor
        >>> net = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.ReLU(), bp.nn.Linear(4, 1))
        >>> monitor = GradientMonitor(net)
        >>> net(bp.randn(8, 3)).pow(2).mean().backward()
        >>> [(r["step"], r["layer"]) for r in monitor.records]
        [(1, '0'), (1, '2')]
    """

    def __init__(self, model, vanish_ratio: float = 1e-3, explode: float = 1e3,
                 warn: bool = True, on_warning=None) -> None:
        self.model, self.vanish_ratio, self.explode, self.warn = model, vanish_ratio, explode, warn
        self.on_warning = on_warning
        self._layers: OrderedDict[str, list] = OrderedDict()
        for module_name, module in model.named_modules():
            own = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if own:
                self._layers[module_name or type(module).__name__] = own
        if not self._layers:
            raise ValueError("GradientMonitor: the model has no trainable parameters")
        self.layers = list(self._layers)
        kinds = dict(model.named_modules())
        self._kinds = {n: type(kinds[n]).__name__ if n in kinds else n for n in self.layers}
        self.records: list[dict] = []
        self.step = 0
        self._warned: set[tuple[str, str]] = set()
        self._before: dict[str, list[np.ndarray]] | None = None
        self._pending: list[dict] = []
        self._task = None
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad)
                         for params in self._layers.values() for p in params]

    def remove(self) -> None:
        """Detach from the parameters (no further recording)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    # --- recording ---
    def _on_grad(self, param) -> None:
        task = graph.current_graph_task()
        if task is None or task is self._task:
            return
        self._task = task  # the first parameter of this pass: record when the pass ends
        graph.queue_callback(self._record)

    def _close_updates(self) -> None:
        """The weights moved since the last record: fill in its update ratios."""
        if self._before is None:
            return
        for row in self._pending:
            before = self._before[row["layer"]]
            now = self._layers[row["layer"]]
            delta = math.sqrt(sum(float(np.sum((p.data - b) ** 2)) for p, b in zip(now, before)))
            norm = math.sqrt(sum(float(np.sum(b * b)) for b in before))
            row["update_ratio"] = delta / norm if norm > 0 else math.nan
        self._before, self._pending = None, []

    def _record(self) -> None:
        self._task = None
        self._close_updates()
        self.step += 1
        rows = []
        for name, params in self._layers.items():
            grads = [p.grad.data for p in params if p.grad is not None]
            grad_norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64)))
                                      for g in grads)) if grads else math.nan
            weight_norm = math.sqrt(sum(float(np.sum(np.square(p.data, dtype=np.float64)))
                                        for p in params))
            rows.append({"step": self.step, "layer": name, "grad_norm": grad_norm,
                         "weight_norm": weight_norm, "update_ratio": math.nan})
        self.records.extend(rows)
        self._pending = rows
        self._before = {name: [p.data.copy() for p in params]
                        for name, params in self._layers.items()}
        if self.warn:
            self._check(rows)

    def _check(self, rows: list[dict]) -> None:
        output = rows[-1]["grad_norm"]
        for row in rows:
            g, name = row["grad_norm"], row["layer"]
            if not math.isfinite(g) or g > self.explode:
                self._warn(name, "explode", f"gradients explode in layer {name!r}: norm {g:.3g} "
                           f"at step {row['step']} (threshold {self.explode:g})")
            elif row is not rows[-1] and math.isfinite(output) and output > 0 and \
                    g < self.vanish_ratio * output:
                self._warn(name, "vanish", f"gradients vanish in layer {name!r}: norm {g:.3g} "
                           f"at step {row['step']}, {g / output:.2g} of the output layer's "
                           f"{output:.3g} (threshold {self.vanish_ratio:g}); it barely learns")

    def _warn(self, layer: str, kind: str, message: str) -> None:
        if (layer, kind) in self._warned:
            return
        self._warned.add((layer, kind))
        if self.on_warning is not None:
            self.on_warning(f"{message}; {_REMEDIES[kind]}")
        else:
            warnings.warn(f"{message}; {_REMEDIES[kind]}", GradientWarning, stacklevel=2)

    # --- as a training callback ---
    def on_after_backward(self, trainer) -> None:
        """Nothing to do: the hooks recorded this backward pass already (recording once)."""

    def on_batch_end(self, trainer, logs: dict) -> None:
        """The optimizer has stepped: close this step's update ratios now."""
        self._close_updates()

    def on_train_end(self, trainer) -> None:
        """Close the last update ratios."""
        self._close_updates()

    # --- output ---
    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write ``records`` as CSV (``step,layer,grad_norm,weight_norm,update_ratio``)."""
        path = Path(path)
        lines = ["step,layer,grad_norm,weight_norm,update_ratio"]
        lines += [f"{r['step']},{r['layer']},{r['grad_norm']:.6g},{r['weight_norm']:.6g},"
                  f"{r['update_ratio']:.6g}" for r in self.records]
        path.write_text("\n".join(lines) + "\n")
        return path

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Draw per-layer gradient norms, weight norms and update ratios over the steps
        (log scale) to ``path`` (PNG, SVG or PDF by suffix). Needs matplotlib."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError as exc:
            raise ImportError("GradientMonitor.plot needs matplotlib: pip install "
                              "'backprop[plot]'") from exc
        self._close_updates()
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
        cmap = plt.get_cmap("viridis")
        n = len(self.layers)
        for k, name in enumerate(self.layers):
            rows = [r for r in self.records if r["layer"] == name]
            steps = [r["step"] for r in rows]
            colour = cmap(k / max(1, n - 1))
            label = f"{name} {self._kinds[name]}" + (" (output)" if k == n - 1 else "")
            for ax, key in zip(axes, ("grad_norm", "weight_norm", "update_ratio")):
                ax.plot(steps, [r[key] for r in rows], color=colour, label=label, lw=1.4)
        for ax, text in zip(axes, ("gradient norm ‖∂L/∂W‖", "weight norm ‖W‖",
                                   "update / weight ‖ΔW‖/‖W‖")):
            ax.set_yscale("log")
            ax.set_xlabel("step (backward pass)")
            ax.set_title(text)
            ax.grid(True, which="major", alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, title="layer", fontsize=8, loc="center right")
        if title:
            fig.suptitle(title)
        fig.tight_layout(rect=(0, 0, 0.86, 1))
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
