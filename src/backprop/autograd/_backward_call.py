"""Calling one node's ``backward`` for the engine: refusing a node whose saved values were
freed, zeros for its unused outputs' gradients, the anomaly-mode bookkeeping, and turning what
the rule returned into one gradient Tensor (or None) per input."""

from __future__ import annotations

import numpy as np

from backprop.autograd.function import _check_finite
from backprop.autograd.grad_mode import _debug
from backprop.tensor import Tensor, _wrap


def _call_backward(node, out_grads: list, n_in: int) -> tuple:
    if node._released:
        raise RuntimeError(
            f"{node.name()}: trying to backward through the graph a second time, but the "
            "values it saved were freed by the first backward(). Pass retain_graph=True to "
            "the first backward() (or autograd.grad()) to keep them."
        )
    if node._n_out > 1:
        for j, g in enumerate(out_grads):
            if g is None:  # an unused output: its gradient is zero
                shape, dtype = node._out_meta[j]
                out_grads[j] = _wrap(np.zeros(shape, dtype), False, None, 0)
    if _debug.anomaly:
        _debug.backward_node = node
        try:
            result = node._fn.backward(node, *out_grads)
        finally:
            _debug.backward_node = None
    else:
        result = node._fn.backward(node, *out_grads)
    if not isinstance(result, tuple):
        result = (result,)
    if len(result) != n_in:
        _count_error(node, len(result), n_in)
    for g in result:
        if g is not None and not isinstance(g, Tensor):
            result = _as_gradients(result)
            break
    if _debug.anomaly:
        _check_finite(node._fn, "backward", result, node._trace)
    return result


def _count_error(node, got: int, n_in: int) -> None:
    raise RuntimeError(
        f"{node._fn.__name__}.backward returned {got} gradients, but forward took "
        f"{n_in} positional inputs; return one per input (None where there is none)"
    )


def _as_gradients(result: tuple) -> tuple:
    """A custom rule returned arrays or numbers: wrap them."""
    return tuple(
        _wrap(np.asarray(g), False, None, 0) if g is not None and not isinstance(g, Tensor)
        else g for g in result
    )
