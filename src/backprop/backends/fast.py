"""``backprop.backends.fast``: the switch of the numba fast path (the ``[fast]`` extra).

Like ``torch.backends.mkldnn``: ``is_available()``, ``is_enabled()``, ``set_enabled(flag)`` and
the ``flags(enabled=...)`` context manager. The environment variable ``BACKPROP_FAST=0`` turns
the path off for a whole process. Results agree with the NumPy path to float rounding.

Example:
    >>> import backprop as bp
    >>> with bp.backends.fast.flags(enabled=False):
    ...     bp.backends.fast.is_enabled()
    False
"""

from __future__ import annotations

import contextlib

from backprop import _fast
from backprop._fast import is_available, is_enabled, set_enabled

__all__ = ["flags", "is_available", "is_enabled", "set_enabled"]


@contextlib.contextmanager
def flags(enabled: bool = False):
    """Run a block with the fast path on or off (off by default, as PyTorch's ``flags``), then
    restore the previous setting. Asking for on without numba raises ``RuntimeError``."""
    before = _fast.is_enabled()
    set_enabled(enabled)
    try:
        yield
    finally:
        _fast._enabled = before
