"""Vanishing gradients, and the cures, on the 8x8 digits.

A 10-layer network (9 hidden layers of 32 units) trained three ways from the same data and
seed, each watched by ``backprop.diagnostics.GradientMonitor``:

- sigmoid with PyTorch's default initialisation: the classic failure. The gradient shrinks by
  about 4-7x per layer going backwards, so the first layers barely learn (their update ratio
  is orders of magnitude below the last layer's) and the monitor warns;
- ReLU with He (Kaiming) initialisation: gradient norms stay within a small factor across
  layers;
- sigmoid with batch normalisation before every activation: the same sigmoids, gradients
  restored by keeping each layer's inputs centred and scaled.

Writes ``vanishing-gradients.png`` (per-layer gradient norm over training for each network,
and test accuracy per epoch) and prints a table.

    python examples/vanishing_gradients.py [--epochs 30] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

import backprop as bp
from backprop.data import DataLoader
from backprop.data.datasets import load_digits
from backprop.diagnostics import GradientMonitor, GradientWarning

VARIANTS = {"sigmoid": "sigmoid, default init", "relu-he": "ReLU + He init",
            "sigmoid-bn": "sigmoid + batch norm"}


def make_model(variant: str, depth: int = 10, width: int = 32, seed: int = 0):
    """A ``depth``-layer MLP 64 -> width x (depth - 1) -> 10 of the given variant."""
    bp.manual_seed(seed)
    layers, prev = [bp.nn.Flatten()], 64
    for _ in range(depth - 1):
        linear = bp.nn.Linear(prev, width)
        layers.append(linear)
        if variant == "relu-he":
            bp.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            bp.nn.init.zeros_(linear.bias)
            layers.append(bp.nn.ReLU())
        else:
            if variant == "sigmoid-bn":
                layers.append(bp.nn.BatchNorm1d(width))
            layers.append(bp.nn.Sigmoid())
        prev = width
    layers.append(bp.nn.Linear(prev, 10))
    return bp.nn.Sequential(*layers)


def accuracy(model, data) -> float:
    model.eval()
    with bp.no_grad():
        pred = model(bp.tensor(data.data)).data.argmax(axis=1)
    model.train()
    return float(np.mean(pred == data.targets))


def train(variant: str, epochs: int, lr: float = 0.01, seed: int = 0, train_data=None,
          test_data=None) -> dict:
    """Train one variant with SGD (momentum 0.9, batch 32); its monitor, accuracies and the
    warnings the monitor raised."""
    train_data = train_data or load_digits(train=True)
    test_data = test_data or load_digits(train=False)
    model = make_model(variant, seed=seed)
    monitor = GradientMonitor(model)
    opt = bp.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = DataLoader(train_data, batch_size=32, shuffle=True, seed=seed)
    accs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradientWarning)
        for _ in range(epochs):
            for x, y in loader:
                opt.zero_grad()
                bp.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            accs.append(accuracy(model, test_data))
    return {"variant": variant, "monitor": monitor, "accuracy": accs,
            "warnings": [str(w.message) for w in caught if w.category is GradientWarning]}


def first_last_ratio(monitor: GradientMonitor, key: str = "grad_norm") -> float:
    """Median over steps of (first layer's value / output layer's value)."""
    first, last = monitor.layers[0], monitor.layers[-1]
    a = np.array([r[key] for r in monitor.records if r["layer"] == first])
    b = np.array([r[key] for r in monitor.records if r["layer"] == last])
    n = min(len(a), len(b))
    return float(np.nanmedian(a[:n] / b[:n]))


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results) + 1, figsize=(17, 4.9))
    lo = min(r["grad_norm"] for res in results for r in res["monitor"].records
             if r["grad_norm"] > 0)
    hi = max(r["grad_norm"] for res in results for r in res["monitor"].records)
    for ax, res in zip(axes, results):
        mon = res["monitor"]
        cmap = plt.get_cmap("viridis")
        for k, layer in enumerate(mon.layers):
            if mon._kinds[layer] != "Linear":
                continue
            rows = [r for r in mon.records if r["layer"] == layer]
            depth = sum(mon._kinds[n] == "Linear" for n in mon.layers[:k + 1])
            ax.plot([r["step"] for r in rows], [r["grad_norm"] for r in rows],
                    color=cmap(k / max(1, len(mon.layers) - 1)), lw=1,
                    label=f"layer {depth}" + (" (output)" if k == len(mon.layers) - 1 else ""))
        ax.set_yscale("log")
        ax.set_ylim(lo / 2, hi * 2)
        ax.set_title(f"{VARIANTS[res['variant']]}: ‖∂L/∂W‖ per layer", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    ax = axes[-1]
    for res in results:
        ax.plot(range(1, len(res["accuracy"]) + 1), np.array(res["accuracy"]) * 100,
                marker="o", ms=3, label=VARIANTS[res["variant"]])
    ax.set_title("test accuracy (%)", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("A 10-layer network on the 8x8 digits: vanishing gradients and their cures")
    fig.legend(handles, labels, loc="lower center", ncol=10, fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/vanishing-gradients")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_data, test_data = load_digits(train=True), load_digits(train=False)
    results = []
    print("variant                 test acc  first/output layer grad norm  update ratio  "
          "warnings  seconds")
    for variant in VARIANTS:
        t0 = time.perf_counter()
        res = train(variant, args.epochs, args.lr, args.seed, train_data, test_data)
        res["seconds"] = time.perf_counter() - t0
        results.append(res)
        mon = res["monitor"]
        print(f"{VARIANTS[variant]:22s}  {res['accuracy'][-1] * 100:7.2f}%  "
              f"{first_last_ratio(mon):28.2e}  {first_last_ratio(mon, 'update_ratio'):12.2e}  "
              f"{len(res['warnings']):8d}  {res['seconds']:7.1f}")
    for res in results:
        for text in res["warnings"][:2]:
            print(f"[{res['variant']}] GradientWarning: {text[:150]}...")
    plot(results, out / "vanishing-gradients.png")
    print(f"wrote {out / 'vanishing-gradients.png'}")


if __name__ == "__main__":
    main()
