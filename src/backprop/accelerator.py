"""``backprop.accelerator``: PyTorch's device-agnostic accelerator queries (``torch.accelerator``).

backprop has no accelerator yet, so ``is_available()`` is False, ``current_accelerator()`` None
and ``device_count()`` 0, exactly what PyTorch answers on a machine without one; the idiom
``torch.accelerator.current_accelerator() if torch.accelerator.is_available() else "cpu"``
picks the CPU.

Example:
    >>> import backprop as bp
    >>> bp.accelerator.is_available(), bp.accelerator.current_accelerator()
    (False, None)
"""

from __future__ import annotations

__all__ = ["current_accelerator", "device_count", "is_available"]


def is_available() -> bool:
    """False: no accelerator backend is built in."""
    return False


def current_accelerator(check_available: bool = False):
    """None: there is no accelerator (PyTorch returns None when none is present)."""
    return None


def device_count() -> int:
    """0."""
    return 0
