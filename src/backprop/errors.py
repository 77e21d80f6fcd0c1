"""Exceptions raised by backprop, each with a message that names the op, the shapes and the fix."""

from __future__ import annotations


class ShapeError(ValueError):
    """Raised when the shapes of an op's inputs do not fit (broadcasting, matmul, cat, ...).

    A subclass of ValueError, so code that catches NumPy's shape errors keeps working.
    """
