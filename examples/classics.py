"""The classics of backprop, reproduced with backprop.

``rumelhart``: Rumelhart, Hinton & Williams (1986): XOR with a 2-2-1 network, the 8-3-8
encoder and 6-bit mirror symmetry with a 6-2-1 network; logistic units, squared error summed
over the whole training set, full-batch gradient descent with momentum 0.9 (Δw(t) = −ε ∂E/∂w +
α Δw(t−1)), initial weights uniform in [−0.3, 0.3]. A run is solved at the first sweep after
which every output is within 0.4 of its 0/1 target; sweeps to solve are reported over 10
seeds (a run that has not solved within the cap counts as failed).

``nielsen``: Nielsen's ``network.py`` (784-30-10 sigmoid, quadratic cost, mini-batch 10,
η = 3.0, 30 epochs, weights and biases N(0, 1); he reports about 95%) and ``network2.py``
(784-100-10 sigmoid, cross-entropy cost, L2 with λ = 5.0, η = 0.5, mini-batch 10, 30 epochs,
weights N(0, 1/n_in); about 98%), trained on the first 50,000 MNIST training images as he does
and tested on the 10,000 test images.

    python examples/classics.py rumelhart
    python examples/classics.py nielsen --data-dir ../shared/data/mnist [--which network2]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import backprop as bp
from backprop import nn

# --- Rumelhart, Hinton & Williams 1986 ------------------------------------------------------


def xor_task():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    return x, np.array([[0], [1], [1], [0]], dtype=np.float64)


def encoder_task(n: int = 8):
    eye = np.eye(n)
    return eye, eye.copy()


def symmetry_task(bits: int = 6):
    x = np.array(list(itertools.product([0, 1], repeat=bits)), dtype=np.float64)
    y = np.all(x == x[:, ::-1], axis=1, keepdims=True).astype(np.float64)
    return x, y


# name: (task, sizes, epsilon (learning rate), sweep cap)
TASKS = {
    "xor 2-2-1": (xor_task, (2, 2, 1), 0.5, 5000),
    "encoder 8-3-8": (encoder_task, (8, 3, 8), 0.1, 5000),  # ε = 0.5 saturates outputs: 0/10
    "symmetry 6-2-1": (symmetry_task, (6, 2, 1), 0.1, 10000),
}


def make_net(sizes, seed: int) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        linear = nn.Linear(a, b).double()
        with bp.no_grad():
            linear.weight.data[...] = rng.uniform(-0.3, 0.3, (b, a))
            linear.bias.data[...] = rng.uniform(-0.3, 0.3, b)
        layers += [linear, nn.Sigmoid()]
    return nn.Sequential(*layers)


def sweeps_to_solve(task, sizes, eps: float, cap: int, seed: int) -> int | None:
    """Full-batch sweeps until every output is within 0.4 of its target (None: not by cap)."""
    x, y = (bp.tensor(a) for a in task())
    net = make_net(sizes, seed)
    opt = bp.optim.SGD(net.parameters(), lr=eps, momentum=0.9)
    for sweep in range(1, cap + 1):
        opt.zero_grad()
        out = net(x)
        if np.max(np.abs(out.data - y.data)) < 0.4:
            return sweep - 1  # solved by the weights after sweep - 1 updates
        (0.5 * ((out - y) ** 2).sum()).backward()
        opt.step()
    return None


def rumelhart(seeds: int = 10) -> None:
    print(f"{'task':16s} {'epsilon':>7s}  solved  sweeps to solve (median, min-max)   per seed")
    for name, (task, sizes, eps, cap) in TASKS.items():
        t0 = time.perf_counter()
        runs = [sweeps_to_solve(task, sizes, eps, cap, seed) for seed in range(seeds)]
        done = [r for r in runs if r is not None]
        summary = (f"{int(np.median(done)):6d} ({min(done)}-{max(done)})" if done else "-")
        print(f"{name:16s} {eps:7.2f}  {len(done):2d}/{seeds}  {summary:33s} "
              f"{', '.join('x' if r is None else str(r) for r in runs)}  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)


# --- Nielsen's network.py and network2.py -------------------------------------------------------


def nielsen(data_dir: str, which: str, epochs: int = 30, seed: int = 0) -> list[float]:
    from backprop.data.datasets import MNIST

    train, test = MNIST(data_dir, train=True), MNIST(data_dir, train=False)
    x = train.data[:50000].reshape(50000, 784).astype(np.float32)
    y = train.targets[:50000]
    xt = bp.tensor(test.data.reshape(-1, 784).astype(np.float32))
    onehot = np.eye(10, dtype=np.float32)
    rng = np.random.default_rng(seed)
    hidden = 30 if which == "network" else 100
    net = nn.Sequential(nn.Linear(784, hidden), nn.Sigmoid(), nn.Linear(hidden, 10),
                        nn.Sigmoid())
    with bp.no_grad():
        for layer in (net[0], net[2]):
            n_in = layer.weight.shape[1]
            scale = 1.0 if which == "network" else 1.0 / np.sqrt(n_in)
            layer.weight.data[...] = rng.standard_normal(layer.weight.shape) * scale
            layer.bias.data[...] = rng.standard_normal(layer.bias.shape)
    if which == "network":
        opt = bp.optim.SGD(net.parameters(), lr=3.0)
    else:  # L2: C = C0 + λ/(2n) Σ w², weights only; n = 50,000
        opt = bp.optim.SGD([{"params": [net[0].weight, net[2].weight], "weight_decay": 5.0 / 50000},
                            {"params": [net[0].bias, net[2].bias]}], lr=0.5)
    accs = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(50000)
        for start in range(0, 50000, 10):
            idx = order[start:start + 10]
            xb, yb = bp.tensor(x[idx]), bp.tensor(onehot[y[idx]])
            opt.zero_grad()
            out = net(xb)
            if which == "network":  # quadratic cost, mean over the mini-batch
                loss = 0.5 * ((out - yb) ** 2).sum() / len(idx)
            else:  # cross-entropy summed over the output units, mean over the mini-batch
                loss = nn.functional.binary_cross_entropy(out, yb, reduction="sum") / len(idx)
            loss.backward()
            opt.step()
        with bp.no_grad():
            pred = net(xt).data.argmax(axis=1)
        accs.append(float(np.mean(pred == test.targets)))
        print(f"{which} epoch {epoch:2d}: test accuracy {accs[-1] * 100:.2f}% "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"{which}: final {accs[-1] * 100:.2f}%, best {max(accs) * 100:.2f}% "
          f"(epoch {int(np.argmax(accs)) + 1})")
    return accs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("rumelhart")
    r.add_argument("--seeds", type=int, default=10)
    n = sub.add_parser("nielsen")
    n.add_argument("--data-dir", default="../shared/data/mnist")
    n.add_argument("--which", choices=("network", "network2", "both"), default="both")
    n.add_argument("--epochs", type=int, default=30)
    n.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "rumelhart":
        rumelhart(args.seeds)
    else:
        for which in (("network", "network2") if args.which == "both" else (args.which,)):
            nielsen(args.data_dir, which, args.epochs, args.seed)


if __name__ == "__main__":
    main()
