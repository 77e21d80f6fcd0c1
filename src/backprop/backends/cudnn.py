"""``backprop.backends.cudnn``: the flags PyTorch programs set for reproducibility.

``deterministic``, ``benchmark`` and ``enabled`` are plain module attributes that may be read and
assigned; with no cuDNN they change nothing.
"""

from __future__ import annotations

deterministic = False
benchmark = False
enabled = True
allow_tf32 = True


def is_available() -> bool:
    """False: there is no cuDNN."""
    return False


def version() -> None:
    """None, as PyTorch answers without cuDNN."""
    return None
