"""Four learning rules besides backprop, each in a plain training loop, on the 8x8 digits.

    python examples/learning_rules.py [--epochs 30] [--seed 0]

The same loop trains every rule: forward, loss, ``loss.backward()``, ``optimizer.step()``. What
``backward()`` computes is the rule's update:

    backprop      the exact gradient
    fa            feedback alignment: the error goes back through a fixed random B, not Wᵀ
    dfa           direct feedback alignment: the output error reaches each hidden layer
                  through its own fixed random matrix
    ff            Forward-Forward: each layer's own loss on positive/negative data; no
                  gradient crosses a layer
    perturbation  weight perturbation (SPSA): a gradient estimate from loss differences along
                  random directions; no backward pass through the network at all

Every epoch prints the test accuracy, and for FA and DFA the angle between their update and
the true gradient (``rules.alignment_angle``), which falls as the forward weights come to
agree with the fixed feedback.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import backprop as bp
from backprop import nn, rules
from backprop.data import DataLoader, TensorDataset
from backprop.data.datasets import load_digits

RULES = ("backprop", "fa", "dfa", "ff", "perturbation")


def mlp(hidden: tuple[int, ...]) -> nn.Sequential:
    """64 -> hidden... -> 10, tanh."""
    layers, width = [], 64
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def build(rule: str, seed: int):
    """(model, loss_fn, learning rate) for one rule, weights drawn after manual_seed(seed)."""
    bp.manual_seed(seed)
    ce = nn.CrossEntropyLoss()
    if rule == "backprop":
        return mlp((256, 256)), ce, 1e-3
    if rule == "fa":
        return rules.feedback_alignment(mlp((256, 256))), ce, 1e-3
    if rule == "dfa":
        return rules.DFA(mlp((256, 256))), ce, 1e-3
    if rule == "ff":  # its own network: the label is appended to the input
        ff = rules.ForwardForward(64, (256, 256), num_classes=10)
        return ff, ff.loss, 3e-3
    wp = rules.WeightPerturbation(mlp((32,)), ce, epsilon=1e-2, directions=16)
    return wp, wp.loss, 1e-2


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with bp.no_grad():
        correct = (model(bp.tensor(x)).data.argmax(1) == y).mean()
    model.train()
    return float(correct)


def train(rule: str, data, epochs: int, seed: int, out=print) -> float:
    """Train one rule; prints a line per epoch and returns the final test accuracy."""
    (x_train, y_train), (x_test, y_test) = data
    model, loss_fn, lr = build(rule, seed)
    opt = bp.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=seed)
    probe = (bp.tensor(x_train[:500]), bp.tensor(y_train[:500]))
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        line = f"{rule:>12} epoch {epoch:3d}: test accuracy {accuracy(model, x_test, y_test):.4f}"
        if rule in ("fa", "dfa"):
            angle = rules.alignment_angle(model, nn.CrossEntropyLoss(), *probe)
            line += f", angle to the gradient {angle:5.1f} deg"
        out(line)
    final = accuracy(model, x_test, y_test)
    out(f"{rule:>12}: {100 * final:.2f}% in {time.perf_counter() - t0:.1f}s")
    return final


def load(seed: int = 0):
    """The digits as (N, 64) in [0, 1], standardised per pixel with the training statistics."""
    train, test = load_digits(train=True, seed=seed), load_digits(train=False, seed=seed)
    x_train = train.data.reshape(len(train), -1)
    mean, std = x_train.mean(0), np.maximum(x_train.std(0), 0.1)
    prep = lambda x: ((x.reshape(len(x), -1) - mean) / std).astype(np.float32)  # noqa: E731
    return (prep(train.data), train.targets), (prep(test.data), test.targets)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", default=",".join(RULES))
    args = parser.parse_args(argv)
    data = load()
    results = {r: train(r, data, args.epochs, args.seed) for r in args.rules.split(",")}
    print(" ".join(f"{r} {100 * a:.2f}%" for r, a in results.items()))
    return results


if __name__ == "__main__":
    main()
