"""Grad mode: one flag that says whether ops record a graph.

``no_grad`` / ``enable_grad`` / ``set_grad_enabled`` switch it, as context managers or decorators.
The flag is thread-local, as PyTorch's is, so a data-loading thread cannot switch recording off
for the training thread.
"""

from __future__ import annotations

import functools
import threading


class _State(threading.local):
    grad_enabled = True


class _Debug:
    """Process-wide debugging switches (a plain object: read on every op, so kept cheap)."""

    anomaly = False  # detect_anomaly(): check every forward and backward for NaN/Inf
    backward_node = None  # under detect_anomaly(), the node whose backward rule is running
    recorders = None  # graph.record_ops(): the active recordings (a list), else None
    observers = None  # graph.observe_backward(): callbacks per executed node, else None
    saved_hooks = None  # graph.saved_tensors_hooks(): a stack of (pack, unpack), else None
    in_backward = False  # True while the engine runs a backward pass (op records' phase)


_state = _State()
_debug = _Debug()


def is_grad_enabled() -> bool:
    """Return True when ops record the graph for backward."""
    return _state.grad_enabled


class _GradModeContext:
    """Base for the grad-mode switches: usable with ``with`` and as a decorator."""

    _mode = True

    def __enter__(self) -> None:
        self._prev = _state.grad_enabled
        _state.grad_enabled = self._mode

    def __exit__(self, *exc) -> None:
        _state.grad_enabled = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Context manager and decorator: ops inside record no graph (no nodes are created).

    Example:
        >>> import backprop as bp
        >>> w = bp.ones(2, requires_grad=True)
        >>> with bp.no_grad():
        ...     y = w * 2
        >>> y.requires_grad
        False
    """

    _mode = False


class enable_grad(_GradModeContext):
    """Context manager and decorator: switch recording back on inside a ``no_grad`` block."""

    _mode = True


class set_grad_enabled(_GradModeContext):
    """Set grad mode to ``mode``; as a context manager it restores the previous mode on exit.

    Args:
        mode: True to record graphs, False not to.
    """

    def __init__(self, mode: bool) -> None:
        self._prev = _state.grad_enabled
        self._mode = bool(mode)
        _state.grad_enabled = self._mode  # takes effect at once when called as a function

    def __call__(self, fn):
        mode = self._mode
        _state.grad_enabled = self._prev  # used as a decorator: do not change the mode now

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper

    def __enter__(self) -> None:
        _state.grad_enabled = self._mode
