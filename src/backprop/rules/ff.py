"""Forward-Forward (Hinton 2022): every layer learns on its own, from two forward passes.

A layer's *goodness* is the sum of its squared activities. Each layer is trained to give high
goodness to positive data (an input with its true label embedded in it) and low goodness to
negative data (the same input with a wrong label): p(positive) = σ(g/d - θ) for a layer of d
units, and the layer's loss is the logistic loss of that probability. Between layers the
activity vector is normalised to unit root-mean-square, so the next layer sees only its
direction, not the goodness the layer below already encoded; and it is detached, so no gradient
ever crosses a layer boundary. A prediction tries every label and picks the one with the
highest goodness accumulated over the layers (all but the first, when there are several).
"""

from __future__ import annotations

import numpy as np

from backprop import random as _random
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import no_grad
from backprop.errors import ShapeError
from backprop.nn.linear import Linear
from backprop.nn.module import Module, ModuleList
from backprop.ops.activation import relu, softplus
from backprop.tensor import Tensor

__all__ = ["ForwardForward", "Goodness", "ff_loss", "goodness"]

_EPS = 1e-8


class Goodness(Function):
    """g[n] = Σⱼ h[n, j]²;  ∂g/∂h[n, j] = 2 h[n, j]. Shape (*, d) -> (*)."""

    @staticmethod
    def forward(ctx, h):
        ctx.save_for_backward(h)
        return np.einsum("...j,...j->...", h, h)

    @staticmethod
    def backward(ctx, grad_out):
        (h,) = ctx.saved_tensors
        return 2 * h * grad_out.unsqueeze(-1)


def goodness(h: Tensor) -> Tensor:
    """The Forward-Forward goodness of each row: the sum of its squared activities.

    Args:
        h: activities (*, d).

    Returns:
        (*,): Σⱼ h[..., j]².

    Example:
        >>> import backprop as bp
        >>> bp.rules.goodness(bp.tensor([[1.0, 2.0], [0.0, 3.0]]))
        tensor([5., 9.])
    """
    if h.ndim == 0:
        raise ShapeError("goodness: expected activities of shape (*, d), got a 0-d tensor")
    return Goodness.apply(h)


def ff_loss(g_pos: Tensor, g_neg: Tensor, threshold: float, temperature: float = 1.0) -> Tensor:
    """A layer's Forward-Forward loss: the logistic loss of p(positive) = σ((g - θ) / T) on
    positive and negative samples, mean softplus((θ - g⁺)/T) + mean softplus((g⁻ - θ)/T).

    Args:
        g_pos: goodness of the positive samples (N,).
        g_neg: goodness of the negative samples (M,).
        threshold: θ, in goodness units.
        temperature: T > 0; larger makes the logistic gentler.

    Returns:
        a scalar Tensor.
    """
    return (softplus((threshold - g_pos) / temperature).mean()
            + softplus((g_neg - threshold) / temperature).mean())


def _normalise(h: np.ndarray) -> np.ndarray:
    """Rows scaled to unit root-mean-square (direction only: the goodness is divided out)."""
    rms = np.sqrt(np.einsum("ij,ij->i", h, h) / h.shape[1])[:, None]
    return h / (rms + _EPS)


class ForwardForward(Module):
    """A stack of ReLU layers trained by Forward-Forward, predicting by goodness.

    The input is flattened and the one-hot label (times ``label_scale``) appended to it.

    Args:
        in_features: size of one input sample (flattened), e.g. 784.
        hidden: the layer widths, e.g. ``(2000, 2000, 2000, 2000)``.
        num_classes: C, the number of labels tried in a prediction.
        threshold: θ per unit: a layer of d units calls a sample positive with probability
            σ((g - θ·d) / T), g its goodness (θ = 1: mean squared activity 1, Hinton's).
        temperature: T.
        label_scale: the value of the one-hot label's hot entry.
        negatives: ``"hard"``: each negative label is drawn, among the wrong ones, in proportion
            to exp(accumulated goodness) under the current network (the labels it confuses);
            ``"random"``: uniformly among the wrong labels.
        skip_first: leave the first layer's goodness out of predictions (Hinton: its goodness
            mostly reflects the label's own input weights); default: when there are 2+ layers.

    Use with the training loop: ``Trainer(ff, ff.loss, optimizer)``. ``ff(x)`` returns the
    accumulated goodness of every label, (N, C), computed without a graph (so accuracy can be
    read off it; under ``"hard"`` it also picks the negatives), and ``ff.loss(scores, labels)``
    is the sum of the layers' local losses on the last input.

    Shapes: input (N, *) with prod(*) = in_features -> scores (N, num_classes).

    Example:
        >>> import backprop as bp
        >>> _ = bp.manual_seed(0)
        >>> ff = bp.rules.ForwardForward(4, (16, 16), num_classes=3)
        >>> x, y = bp.randn(5, 4), bp.tensor([0, 1, 2, 0, 1])
        >>> scores = ff(x)
        >>> scores.shape
        (5, 3)
        >>> loss = ff.loss(scores, y)
        >>> loss.backward()
        >>> ff.layers[1].weight.grad.shape
        (16, 16)
    """

    def __init__(self, in_features: int, hidden, num_classes: int, threshold: float = 1.0,
                 temperature: float = 1.0, label_scale: float = 1.0, negatives: str = "hard",
                 skip_first: bool | None = None) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) <= 0 or in_features <= 0 or num_classes < 2:
            raise ValueError(f"ForwardForward: needs in_features > 0, at least one positive "
                             f"layer width and num_classes >= 2; got {in_features}, {hidden}, "
                             f"{num_classes}")
        if negatives not in ("hard", "random"):
            raise ValueError(f"ForwardForward: negatives must be 'hard' or 'random', got "
                             f"{negatives!r}")
        self.in_features, self.hidden, self.num_classes = in_features, hidden, num_classes
        if not temperature > 0:
            raise ValueError(f"ForwardForward: temperature must be positive, got {temperature}")
        self.threshold, self.temperature = threshold, temperature
        self.label_scale, self.negatives = label_scale, negatives
        self.skip_first = len(hidden) > 1 if skip_first is None else bool(skip_first)
        if self.skip_first and len(hidden) < 2:
            raise ValueError("ForwardForward: skip_first needs at least two layers")
        sizes = (in_features + num_classes, *hidden)
        self.layers = ModuleList([Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self._last_input = None

    def extra_repr(self) -> str:
        return (f"threshold={self.threshold}, temperature={self.temperature}, "
                f"label_scale={self.label_scale}, negatives={self.negatives!r}, "
                f"skip_first={self.skip_first}")

    # --- the passes ---
    def _flat(self, x) -> np.ndarray:
        arr = x.data if isinstance(x, Tensor) else np.asarray(x)
        arr = arr.reshape(len(arr), -1)
        if arr.shape[1] != self.in_features:
            raise ShapeError(f"ForwardForward: inputs of shape {x.shape} have "
                             f"{arr.shape[1]} features per sample; this network takes "
                             f"in_features={self.in_features}")
        return arr

    def embed(self, x, labels) -> np.ndarray:
        """The input with its label: [x flattened, label_scale · one_hot(label)], (N, in + C),
        normalised to unit RMS per row (the first layer's input)."""
        flat = self._flat(x)
        labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
        onehot = np.zeros((len(flat), self.num_classes), flat.dtype)
        onehot[np.arange(len(flat)), labels] = self.label_scale
        return _normalise(np.concatenate([flat, onehot], axis=1))

    def activities(self, embedded: np.ndarray) -> list[Tensor]:
        """Each layer's ReLU activities for first-layer inputs ``embedded`` (N, in + C). Each
        layer reads the normalised, *detached* activities of the one below: its graph reaches
        its own weights only."""
        out, x = [], embedded
        for layer in self.layers:
            h = relu(layer(Tensor(x)))
            out.append(h)
            x = _normalise(h.data)
        return out

    def scores(self, x) -> Tensor:
        """Accumulated goodness of every candidate label, (N, C), without a graph.

        The first layer's product with the image is shared by all labels (only the label's
        column differs, and the label does not change the row norm), so trying C labels costs
        one first-layer product plus C passes through the layers above.
        """
        flat = self._flat(x)
        n, c, s = len(flat), self.num_classes, self.label_scale
        d = flat.shape[1] + c
        scale = np.sqrt((np.einsum("ij,ij->i", flat, flat) + s * s) / d)[:, None] + _EPS
        first = self.layers[0]
        w, b = first.weight.data, first.bias.data
        base = (flat @ w[:, :-c].T) / scale                      # (N, h1)
        label_part = s * w[:, -c:].T                              # (C, h1)
        pre = base[None] + label_part[:, None] / scale[None] + b  # (C, N, h1)
        h = np.maximum(pre.reshape(c * n, -1), 0)
        total = np.zeros(c * n, np.float64)
        with no_grad():
            for k, layer in enumerate(self.layers):
                if k:
                    h = np.maximum(layer(Tensor(_normalise(h))).data, 0)
                if k or not self.skip_first:
                    total += np.einsum("ij,ij->i", h, h)
        return Tensor(total.reshape(c, n).T.astype(flat.dtype))

    def forward(self, input: Tensor) -> Tensor:
        self._last_input = input
        return self.scores(input)

    # --- training ---
    def negative_labels(self, labels, scores=None) -> np.ndarray:
        """A wrong label per sample. Training: drawn in proportion to exp(scores) among the
        wrong labels (``"hard"``; needs the scores) or uniformly (``"random"``), from backprop's
        generator. Eval mode: the highest-scoring wrong label (no draw, so evaluating leaves
        the random stream of training alone); ``(label + 1) % C`` without scores.
        """
        labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
        n, c = len(labels), self.num_classes
        if not self.training:
            if scores is None:
                return (labels + 1) % c
            s = np.array(scores.data if isinstance(scores, Tensor) else scores, np.float64)
            s[np.arange(n), labels] = -np.inf
            return s.argmax(axis=1)
        gen = _random.default_generator()
        if self.negatives == "random" or scores is None:
            return (labels + gen.integers(1, c, size=n)) % c
        s = np.asarray(scores.data if isinstance(scores, Tensor) else scores, np.float64)
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p[np.arange(n), labels] = 0.0
        total = p.sum(axis=1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / (c - 1))
        p[np.arange(n), labels] = 0.0
        u = gen.random((n, 1))
        return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), c - 1)

    def local_losses(self, x, labels, negative_labels) -> list[Tensor]:
        """Each layer's ``ff_loss`` on positives (x, labels) and negatives (x, negative_labels);
        the graph of loss k reaches layer k's parameters only."""
        n = len(self._flat(x))
        both = np.concatenate([self.embed(x, labels), self.embed(x, negative_labels)])
        losses = []
        for h in self.activities(both):
            g = goodness(h)
            losses.append(ff_loss(g[:n], g[n:], self.threshold * h.shape[-1], self.temperature))
        return losses

    def loss(self, scores: Tensor, target: Tensor) -> Tensor:
        """The sum of the layers' local losses on the input of the last call (the training
        loop's ``loss_fn``): positives carry ``target``, negatives a label from
        ``negative_labels(target, scores)``."""
        if self._last_input is None:
            raise RuntimeError("ForwardForward.loss: run the model on a batch in training mode "
                               "first (the loss uses the input of that call)")
        x = self._last_input
        if len(self._flat(x)) != len(target):
            raise ShapeError(f"ForwardForward.loss: {len(target)} targets for a batch of "
                             f"{len(self._flat(x))} inputs")
        losses = self.local_losses(x, target, self.negative_labels(target, scores))
        total = losses[0]
        for item in losses[1:]:
            total = total + item
        return total
