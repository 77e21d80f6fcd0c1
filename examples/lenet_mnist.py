"""LeNet-5-style CNN on MNIST with a plain training loop over ``backprop.data``.

    python examples/lenet_mnist.py --data-dir ../shared/data/mnist

The data directory must hold MNIST's four original IDX files (``.gz`` or not); nothing is
downloaded. The network is LeNet-5 with ReLU, max pooling and batch norm after each convolution:

    conv 1->6 5x5 pad 2, BN, ReLU, maxpool 2    (6x14x14)
    conv 6->16 5x5, BN, ReLU, maxpool 2         (16x5x5)
    flatten, linear 400->120, ReLU, linear 120->84, ReLU, linear 84->10

trained with Adam under a one-cycle learning-rate schedule, stepped once per batch.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import backprop as bp
import backprop.nn.functional as F
from backprop import nn
from backprop.data import DataLoader, DatasetError, Subset
from backprop.data.datasets import MNIST
from backprop.data.transforms import Normalize
from backprop.optim import Adam
from backprop.optim.lr_scheduler import OneCycleLR

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # over the 60,000 training pixels in [0, 1]


def lenet5() -> nn.Sequential:
    """LeNet-5 for 1x28x28 inputs, with ReLU, max pooling and batch norm."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """The fraction of ``loader``'s samples that ``model`` classifies correctly."""
    model.eval()
    correct = total = 0
    with bp.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(dim=1).data == y.data).sum())
            total += len(y.data)
    return correct / total


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data-dir", required=True,
                   help="directory holding MNIST's four IDX files (.gz or not)")
    p.add_argument("--epochs", type=int, default=3, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one cycle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training and test images (smoke tests)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    """Train and evaluate; return the final test accuracy (a fraction)."""
    args = parse_args(argv)
    bp.manual_seed(args.seed)
    try:
        train, test = MNIST(args.data_dir, train=True), MNIST(args.data_dir, train=False)
    except DatasetError as exc:
        sys.exit(f"error: {exc}")
    normalize = Normalize(MNIST_MEAN, MNIST_STD)  # once, on the whole arrays
    train.data, test.data = normalize(train.data), normalize(test.data)
    if args.limit is not None:
        train = Subset(train, np.arange(min(args.limit, len(train))))
        test = Subset(test, np.arange(min(args.limit, len(test))))
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test, batch_size=1000)

    model = lenet5()
    optimizer = Adam(model.parameters(), lr=args.lr)
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                           steps_per_epoch=len(train_loader))
    print(f"train {len(train):,} / test {len(test):,} images, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{args.epochs} epochs of {len(train_loader)} batches of {args.batch_size}")

    start = time.perf_counter()
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        losses = []
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        accuracy = evaluate(model, test_loader)
        print(f"epoch {epoch}/{args.epochs}: train loss {np.mean(losses):.4f}, "
              f"test accuracy {100 * accuracy:.2f}%, {time.perf_counter() - t0:.1f} s")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    print(f"test accuracy: {100 * accuracy:.2f}%")
    return accuracy


if __name__ == "__main__":
    main()
