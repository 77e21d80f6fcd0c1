"""An LSTM trained with full backpropagation through time on the adding problem.

    python examples/lstm_adding.py

The adding problem (Hochreiter & Schmidhuber, 1997): each input is a sequence of T pairs
(value, marker), the values uniform in [0, 1], the markers 0 except at exactly two random
positions; the target is the sum of the two marked values. The answer needs information from
anywhere in the sequence, so the network must carry it across up to T steps. Always predicting
1 (the mean of the target) gives an MSE of 1/6 ~ 0.167, the variance of the sum of two uniform
values; a network that solves the problem goes far below that.

Model: a one-layer LSTM over the whole sequence (full BPTT), a linear head on its last output,
MSE loss, Adam with gradient-norm clipping.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import backprop as bp
import backprop.nn.functional as F
from backprop import nn
from backprop.data import DataLoader, TensorDataset
from backprop.nn.utils import clip_grad_norm_
from backprop.optim import Adam
from backprop.optim.lr_scheduler import CosineAnnealingLR


def adding_problem(n: int, seq_len: int, rng: np.random.Generator) -> tuple:
    """``n`` sequences of the adding problem: inputs (n, seq_len, 2) as (value, marker) pairs with
    exactly two markers per sequence, targets (n, 1) the sum of the two marked values."""
    values = rng.random((n, seq_len))
    marks = np.zeros((n, seq_len))
    # two distinct positions per sequence: the two smallest of seq_len random keys
    pos = np.argsort(rng.random((n, seq_len)), axis=1)[:, :2]
    np.put_along_axis(marks, pos, 1.0, axis=1)
    x = np.stack([values, marks], axis=2).astype(np.float32)
    y = (values * marks).sum(axis=1, keepdims=True).astype(np.float32)
    return x, y


class AddingLSTM(nn.Module):
    """LSTM over the sequence (batch_first), linear head on the output of the last step."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(2, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: bp.Tensor) -> bp.Tensor:
        output, _ = self.lstm(x)
        return self.head(output[:, -1])


def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Mean squared error of ``model`` over ``loader``."""
    model.eval()
    total = count = 0.0
    with bp.no_grad():
        for x, y in loader:
            total += float(((model(x).data - y.data) ** 2).sum())
            count += len(y.data)
    model.train()
    return total / count


def positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def add_data_arguments(p: argparse.ArgumentParser, seq_len: int, train_size: int) -> None:
    """The adding problem's data flags (also used by exploding_gradients.py)."""
    p.add_argument("--seq-len", type=positive, default=seq_len, help="sequence length T")
    p.add_argument("--train-size", type=positive, default=train_size, help="training sequences")
    p.add_argument("--test-size", type=positive, default=2_000, help="test sequences")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=positive, default=None,
                   help="use only N training and N test sequences (smoke tests)")


def check_data_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a sequence too short for two markers; apply ``--limit``."""
    if args.seq_len < 2:
        p.error(f"argument --seq-len: needs at least 2 steps for the two markers, "
                f"got {args.seq_len}")
    if args.limit is not None:
        args.train_size = min(args.train_size, args.limit)
        args.test_size = min(args.test_size, args.limit)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_data_arguments(p, seq_len=50, train_size=100_000)
    p.add_argument("--steps", type=positive, default=3000, help="optimizer steps")
    p.add_argument("--eval-every", type=positive, default=250,
                   help="report train loss and test MSE every N steps")
    p.add_argument("--batch-size", type=positive, default=64)
    p.add_argument("--hidden-size", type=positive, default=64)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's initial learning rate")
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    args = p.parse_args(argv)
    check_data_arguments(p, args)
    return args


def main(argv: list[str] | None = None) -> float:
    """Train and evaluate; return the final test MSE."""
    args = parse_args(argv)
    bp.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = TensorDataset(*adding_problem(args.train_size, args.seq_len, rng))
    test_x, test_y = adding_problem(args.test_size, args.seq_len, rng)
    test = TensorDataset(test_x, test_y)
    baseline = float(((test_y - 1.0) ** 2).mean())  # always predict 1, the mean of the target
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test, batch_size=1000)

    model = AddingLSTM(args.hidden_size)
    optimizer = Adam(model.parameters(), lr=args.lr)
    scheduler = CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=args.lr / 100)
    print(f"adding problem, T = {args.seq_len}: train {len(train):,} / test {len(test):,} "
          f"sequences, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{args.steps} steps of batch {args.batch_size}")
    print(f"baseline (always predict 1): test MSE {baseline:.4f}")

    start = t0 = time.perf_counter()
    step, losses, norms, mse = 0, [], [], baseline
    while step < args.steps:
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            norms.append(float(clip_grad_norm_(model.parameters(), args.clip).item()))
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if step % args.eval_every == 0 or step == args.steps:
                mse = evaluate(model, test_loader)
                print(f"step {step}/{args.steps}: train loss {np.mean(losses):.4f}, "
                      f"grad norm {np.mean(norms):.3f} (pre-clip), test MSE {mse:.6f}, "
                      f"{time.perf_counter() - t0:.1f} s")
                losses, norms, t0 = [], [], time.perf_counter()
            if step == args.steps:
                break
    print(f"total time: {time.perf_counter() - start:.1f} s")
    print(f"test MSE: {mse:.6f} (baseline {baseline:.4f}, {baseline / mse:.0f}x lower)")
    return mse


if __name__ == "__main__":
    main()
