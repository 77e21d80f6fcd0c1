"""Direct feedback alignment (Nøkland 2016): the output error reaches every hidden layer through
its own fixed random matrix, with no layer-to-layer backward pass at all.

For a network whose weight layers are W₁ … W_L with hidden activities h₁ … h_{L-1}, and e = ∂L/∂y
the error at the output (the gradient of the loss with respect to the network's output), DFA
sends hidden layer k the signal e B_k (B_k fixed, (C, size of h_k)) in place of ∂L/∂h_k. Inside
the block that produced h_k the usual chain rule runs (the activation's derivative, the weight's
gradient); the block's *input* is detached, so nothing travels further down. The output layer
gets its true gradient. Because the signal does not pass through the forward weights, learning
starts even from all-zero weights (with an activation whose derivative at 0 is not 0, e.g. tanh).
"""

from __future__ import annotations

import math

import numpy as np

from backprop import creation
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import is_grad_enabled, no_grad
from backprop.errors import ShapeError
from backprop.nn import init
from backprop.nn.conv import Conv2d
from backprop.nn.linear import Linear
from backprop.nn.module import Module, Sequential
from backprop.tensor import Tensor

__all__ = ["DFA", "DirectFeedback"]


class DirectFeedback(Function):
    """y = out (the network's output, unchanged), and the hidden activities h_k ride along:
    ∂L/∂out = G;  "∂L/∂h_k" := (G B_k) reshaped to h_k's shape — the direct feedback, not a
    derivative of y (which does not depend on h_k). B_k are fixed constants (no gradient).

    ``apply(out, B_1 … B_K, h_1 … h_K)`` with out (N, C), B_k (C, F_k), h_k (N, *) of F_k
    features per sample.
    """

    @staticmethod
    def forward(ctx, out, *rest):
        k = len(rest) // 2
        ctx.n_hidden = k
        ctx.hidden_shapes = [h.shape for h in rest[k:]]
        ctx.save_for_backward(*rest[:k])
        return out.copy()

    @staticmethod
    def backward(ctx, grad_out):
        feedbacks = ctx.saved_tensors
        need = ctx.needs_input_grad
        k = ctx.n_hidden
        grads = [grad_out if need[0] else None] + [None] * k
        for i, (b, shape) in enumerate(zip(feedbacks, ctx.hidden_shapes)):
            grads.append((grad_out @ b).reshape(shape) if need[1 + k + i] else None)
        return tuple(grads)


def _weight_layer(m: Module) -> bool:
    return isinstance(m, (Linear, Conv2d))


class DFA(Module):
    """A ``Sequential`` model trained by direct feedback alignment.

    The model is cut before each weight layer (``nn.Linear`` or ``nn.Conv2d``) after the first;
    each cut is a hidden activity h_k that receives e B_k directly from the output error e. Its
    parameters are the model's own (the same objects), so any optimizer and the training loop
    work unchanged: ``loss.backward()`` computes the DFA updates.

    Args:
        model: an ``nn.Sequential`` with at least two weight layers, ending in a layer whose
            output is (N, C) (e.g. a Linear producing logits).
        input_shape: the shape of one input sample; needed only when a hidden activity's size
            cannot be read from the Linear that consumes it (a convolution consumes it).

    Attributes:
        model: the wrapped Sequential (call it directly for the same forward with backprop).
        feedback_k: the buffers B_k, (C, F_k), U(±1/√F_k) (the scale of a forward weight from
            F_k features), drawn from backprop's global generator; in ``state_dict``.

    Shapes: as ``model``: (N, *) -> (N, C).

    Example:
        >>> import backprop as bp
        >>> _ = bp.manual_seed(0)
        >>> net = bp.nn.Sequential(bp.nn.Linear(4, 8), bp.nn.Tanh(), bp.nn.Linear(8, 8),
        ...                        bp.nn.Tanh(), bp.nn.Linear(8, 3))
        >>> dfa = bp.rules.DFA(net)
        >>> dfa.feedback_1.shape, dfa.feedback_2.shape
        ((3, 8), (3, 8))
        >>> loss = bp.nn.functional.cross_entropy(dfa(bp.randn(5, 4)), bp.tensor([0, 1, 2, 0, 1]))
        >>> loss.backward()
        >>> net[0].weight.grad.shape
        (8, 4)
    """

    def __init__(self, model: Sequential, input_shape: tuple | None = None) -> None:
        super().__init__()
        if not isinstance(model, Sequential):
            raise TypeError(f"DFA: expected an nn.Sequential, got {type(model).__name__}; "
                            "write the network as a Sequential of layers and activations")
        mods = list(model)
        cuts = [i for i, m in enumerate(mods) if _weight_layer(m)]
        if len(cuts) < 2:
            raise ValueError(f"DFA: the model needs at least two weight layers (Linear or "
                             f"Conv2d) to have a hidden layer; found {len(cuts)}")
        last = mods[cuts[-1]]
        if not isinstance(last, Linear):
            raise ValueError("DFA: the last weight layer must be a Linear producing the (N, C) "
                             f"output the error is measured on, got {type(last).__name__}")
        self.model = model
        self._cuts = cuts[1:]  # each hidden activity is the input of one of these layers
        self.num_outputs = last.out_features
        sizes = self._hidden_sizes(mods, input_shape)
        for k, size in enumerate(sizes, start=1):
            b = creation.empty(self.num_outputs, size, dtype=last.weight.dtype)
            bound = 1 / math.sqrt(size)
            init.uniform_(b, -bound, bound)
            self.register_buffer(f"feedback_{k}", b)

    def _hidden_sizes(self, mods: list, input_shape) -> list[int]:
        sizes = [mods[i].in_features if isinstance(mods[i], Linear) else None
                 for i in self._cuts]
        if None not in sizes:
            return sizes
        if input_shape is None:
            raise ValueError("DFA: a hidden activity feeds a convolution, so its size depends "
                             "on the input: pass input_shape=(C, H, W) (one sample's shape)")
        sizes, h = [], Tensor(np.zeros((1, *input_shape), dtype=np.float32))
        with no_grad():
            for i, m in enumerate(mods):
                if i in self._cuts:
                    sizes.append(int(np.prod(h.shape[1:])))
                h = m(h)
        return sizes

    def feedback_matrices(self) -> list[Tensor]:
        """[B_1, …, B_K], one per hidden activity, bottom to top."""
        return [getattr(self, f"feedback_{k}") for k in range(1, len(self._cuts) + 1)]

    def forward(self, input: Tensor) -> Tensor:
        if getattr(self, "_exact_gradient", False):  # inside rules.exact_gradients()
            return self.model(input)
        hidden, h = [], input
        cuts = set(self._cuts)
        for i, m in enumerate(self.model):
            if i in cuts:
                hidden.append(h)
                h = h.detach()  # no gradient travels from this layer to the ones below
            h = m(h)
        if h.ndim != 2 or h.shape[1] != self.num_outputs:
            raise ShapeError(f"DFA: the model's output has shape {h.shape}; the error it "
                             f"feeds back must be (N, {self.num_outputs})")
        if not is_grad_enabled():
            return h
        return DirectFeedback.apply(h, *self.feedback_matrices(), *hidden)
