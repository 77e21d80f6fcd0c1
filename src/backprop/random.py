"""The global random state: ``manual_seed(n)`` makes every random function reproducible."""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the generator behind ``rand``, ``randn`` and every later random op; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The generator that random functions draw from (replaced by ``manual_seed``)."""
    return _generator
