"""The optional fast path: numba kernels behind the ``[fast]`` extra (``pip install
'backprop[fast]'``).

NumPy runs each elementwise op on one core and writes a fresh temporary per op. Where that is
the floor (the recurrent layers' gate arithmetic, pooling, the im2col copies of a convolution, ReLU)
a numba kernel fuses the work into one pass (and, for convolution and pooling on numba's OpenMP
layer when the user chooses it, spreads it over the cores; see ``_jit.parallel``). Every kernel
has a NumPy twin in the op that calls it, and the two agree to float rounding (tests/fast/); the
NumPy path stays correct and complete on its own.

The switch, read once at the first kernel request:
    ``BACKPROP_FAST=0`` (or ``false``/``no``/``off``): never use numba.
    unset, or anything else: use numba when it can be imported.
``backprop.backends.fast`` holds the public switch and query (``is_available``, ``is_enabled``,
``set_enabled``, ``flags``).

How an op uses it::

    fk = _fast.kernels("recurrent")     # the kernel module, or None for the NumPy path
    if fk is not None and _fast.suits(*arrays):
        fk.lstm_forward(...)

Kernel modules live beside this file and import numba at their top; nothing here imports numba
until a kernel is asked for, so ``import backprop`` stays NumPy-only. numba caches compiled
kernels on disk (``cache=True``: ``__pycache__`` beside the source, or numba's user cache dir
when that is read-only), so only the first run after an install pays the JIT time.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import numpy as np

__all__ = ["is_available", "is_enabled", "kernels", "kernels_module", "set_enabled", "suits",
           "PARALLEL_MIN"]

PARALLEL_MIN = 1 << 15
"""Parallel kernels split work over threads only from this many elements up, and only on a
threading layer chosen for them (``_jit.threads_for``: settings and size, never load, so results
and timings are reproducible); below it a parallel region costs more than it saves."""

_enabled: bool | None = None  # None: not decided yet (the environment is read at first use)
_available: bool | None = None
_modules: dict[str, object] = {}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def is_available() -> bool:
    """True when numba is installed (the ``[fast]`` extra). Found without importing it; a numba
    that then fails to load is reported unavailable from that moment (see ``kernels_module``)."""
    global _available
    if _available is None:
        _available = importlib.util.find_spec("numba") is not None
    return _available


def is_enabled() -> bool:
    """True when ops use the numba kernels: available and not switched off."""
    global _enabled
    if _enabled is None:
        setting = os.environ.get("BACKPROP_FAST", "").strip().lower()
        _enabled = setting not in ("0", "false", "no", "off") and is_available()
    return _enabled


def set_enabled(flag: bool) -> None:
    """Turn the numba kernels on or off for this process (on only takes effect when available).

    Raises:
        RuntimeError: ``flag`` is True but numba is not installed; the message says how to get it.
    """
    global _enabled
    if flag and not is_available():
        raise RuntimeError("backprop's fast path needs numba: pip install 'backprop[fast]' "
                           "(or pip install numba)")
    _enabled = bool(flag)


def kernels(name: str):
    """The kernel module ``backprop._fast.<name>`` when the fast path is on, else None (the op
    takes its NumPy path)."""
    if not is_enabled():
        return None
    return _modules.get(name) or kernels_module(name)


def kernels_module(name: str):
    """The kernel module ``backprop._fast.<name>`` whether or not the path is on (tests, and
    tools that inspect the kernels); imports numba. None when numba fails to load."""
    global _available, _enabled
    mod = _modules.get(name)
    if mod is None:
        try:
            mod = importlib.import_module(f"backprop._fast.{name}")
        except ImportError:  # numba (or SciPy) installed but unusable with this NumPy
            _available = _enabled = False
            return None
        _modules[name] = mod
    return mod


def suits(*arrays) -> bool:
    """True when every array is a C-contiguous float32/float64 ndarray of one dtype: what the
    kernels are compiled for (anything else takes the NumPy path)."""
    dtype = arrays[0].dtype
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
            return False
    return dtype in _FLOATS
