"""``once_differentiable``: a ``backward`` written in plain NumPy, whose first-order gradients
work as usual and whose second differentiation raises instead of silently giving zero."""

from __future__ import annotations

import functools

import numpy as np

from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _state, no_grad
from backprop.tensor import _wrap


class _OnceDifferentiableBackward(Function):
    """Carries a once-differentiable gradient; differentiating it again raises."""

    @staticmethod
    def forward(ctx, value, *sources, op_name=""):
        return value

    @staticmethod
    def backward(ctx, grad_out):
        raise RuntimeError(
            f"{ctx._attrs.get('op_name', 'this op')} is marked @once_differentiable: its "
            "backward is not itself differentiable, so a second-order gradient through it is "
            "not available."
        )


def _edge_stand_ins(ctx) -> tuple:
    """Data-free Tensors attached to the node's input edges (to make a graph reach them)."""
    return tuple(
        _wrap(np.broadcast_to(np.zeros((), e[3]), e[2]), True, e[0], e[1])
        for e in ctx._next if e is not None and e[0] is not None
    )


def once_differentiable(backward):
    """Decorate a ``backward`` written in plain NumPy (not differentiable).

    First-order gradients work as usual; differentiating through it again (``create_graph=True``)
    raises instead of silently returning zero.
    """

    @functools.wraps(backward)
    def wrapper(ctx, *grad_outputs):
        recording = _state.grad_enabled  # True only under create_graph=True
        with no_grad():
            result = backward(ctx, *grad_outputs)
        if not recording:
            return result
        single = not isinstance(result, tuple)
        items = (result,) if single else result
        # the gradient depends on the upstream gradients and on the op's inputs: attach it to
        # both, so a second differentiation reaches the node that raises
        sources = grad_outputs + _edge_stand_ins(ctx)
        items = tuple(
            None
            if g is None
            else _OnceDifferentiableBackward.apply(g, *sources, op_name=ctx.name())
            for g in items
        )
        return items[0] if single else items

    return wrapper
