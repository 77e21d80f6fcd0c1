"""``backprop.backends``: PyTorch's ``torch.backends`` switches and queries that programs touch.

``backends.fast`` switches the numba kernels of the ``[fast]`` extra.
``backends.mps.is_available()`` is False; ``backends.cudnn.deterministic`` and
``backends.cudnn.benchmark`` may be set (they have nothing to steer here: the CPU kernels are
deterministic for a given thread count).

Example:
    >>> import backprop as bp
    >>> bp.backends.mps.is_available(), bp.backends.cudnn.is_available()
    (False, False)
"""

from backprop.backends import cudnn, fast, mps

__all__ = ["cudnn", "fast", "mps"]
