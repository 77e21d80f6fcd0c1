"""Automatic differentiation: the ``Function`` mechanism, the engine, grad mode, checks."""

# Tensor first, whatever the user imports first: it closes the Tensor <-> ops cycle itself.
import backprop.tensor  # noqa: F401
from backprop.autograd import graph
from backprop.autograd.anomaly import detect_anomaly, is_anomaly_enabled
from backprop.autograd.engine import backward, grad
from backprop.autograd.function import Context, Function, once_differentiable
from backprop.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from backprop.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = [
    "Context", "Function", "GradcheckError", "backward", "detect_anomaly", "enable_grad", "grad",
    "graph", "gradcheck", "gradgradcheck", "is_anomaly_enabled", "is_grad_enabled", "no_grad",
    "once_differentiable", "set_grad_enabled",
]
