"""``backprop.backends.mps``: Apple's Metal backend is not built in."""

from __future__ import annotations


def is_available() -> bool:
    """False: no MPS backend."""
    return False


def is_built() -> bool:
    """False: this backprop was not built with MPS."""
    return False
