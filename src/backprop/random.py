"""The global random state: ``manual_seed(n)`` makes every random function reproducible.

The generator is created on first use, so ``import backprop`` does not pay for importing
``numpy.random``.
"""

from __future__ import annotations

import numpy as np

_generator = None


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the generator behind ``rand``, ``randn``, the initialisers and every later random
    op; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The generator that random functions draw from (replaced by ``manual_seed``)."""
    global _generator
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator
