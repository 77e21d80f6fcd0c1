"""``python -m backprop`` / ``backprop``: the command line (see ``backprop.cli``).

``train_xor`` trains a 2-2-1 network on XOR using only the core engine (tensors, ops,
``backward()`` and a plain gradient-descent update), no layers or optimizers: the smallest
complete example (``backprop demo`` is now ``backprop explain``, which traces such a network).
"""

from __future__ import annotations

import sys

import backprop as bp


def train_xor(epochs: int = 2000, lr: float = 0.5, seed: int = 0, every: int = 200,
              out=None) -> float:
    """Train a 2-2-1 tanh/sigmoid network on XOR by full-batch gradient descent on the MSE.

    Returns the final loss. Prints the loss every ``every`` epochs and the final predictions.
    """
    out = out or sys.stdout
    bp.manual_seed(seed)
    x = bp.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = bp.tensor([[0.0], [1.0], [1.0], [0.0]])
    w1 = bp.randn(2, 2, requires_grad=True)
    b1 = bp.zeros(2, requires_grad=True)
    w2 = bp.randn(2, 1, requires_grad=True)
    b2 = bp.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]

    def forward(inputs):
        hidden = bp.tanh(inputs @ w1 + b1)
        return bp.sigmoid(hidden @ w2 + b2)

    print(f"training a 2-2-1 network on XOR: {epochs} epochs of gradient descent, lr {lr}",
          file=out)
    loss = None
    for epoch in range(1, epochs + 1):
        for p in params:
            p.grad = None
        loss = ((forward(x) - y) ** 2).mean()
        loss.backward()
        with bp.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=lr)
        if epoch == 1 or epoch % every == 0 or epoch == epochs:
            print(f"epoch {epoch:5d}  loss {loss.item():.6f}", file=out)
    with bp.no_grad():
        pred = forward(x)
    for row, p in zip(x.data, pred.data[:, 0]):
        print(f"  {int(row[0])} xor {int(row[1])} -> {p:.3f}", file=out)
    return loss.item()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``backprop`` and ``python -m backprop``: ``backprop.cli.main``."""
    try:
        from backprop.cli import main as cli_main
    except KeyboardInterrupt:  # Ctrl-C while the command's modules load: one line, too
        print("backprop: error: interrupted by SIGINT (Ctrl-C) while starting; nothing was done",
              file=sys.stderr)
        return 130
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
