"""``detect_anomaly()``: find the first op whose forward or backward produces NaN or Inf."""

from __future__ import annotations

from backprop.autograd.grad_mode import _debug


class detect_anomaly:
    """Context manager: check every op's outputs and gradients for NaN/Inf while it is active.

    The switch is process-wide (as PyTorch's), not per thread.

    The first op that produces one raises ``FloatingPointError`` naming the op and, for a
    backward failure, the line of user code where that op was created. It records a stack trace
    per op, so it slows everything down: use it to debug, not to train.

    Example:
        >>> import backprop as bp
        >>> x = bp.tensor([-1.0], requires_grad=True)
        >>> with bp.autograd.detect_anomaly():
        ...     bp.sqrt(x)
        Traceback (most recent call last):
        ...
        FloatingPointError: detect_anomaly: Sqrt forward produced NaN in its output 0 (shape (1,)).
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self) -> None:
        self._prev = _debug.anomaly
        _debug.anomaly = self.check_nan

    def __exit__(self, *exc) -> None:
        _debug.anomaly = self._prev


def is_anomaly_enabled() -> bool:
    """True inside ``detect_anomaly()``."""
    return _debug.anomaly
