"""``backprop.utils``: PyTorch's ``torch.utils`` path. ``backprop.utils.data`` is
``backprop.data`` under PyTorch's name (the same objects, not copies), loaded on first use.

Example:
    >>> import backprop as bp
    >>> bp.utils.data.DataLoader is bp.data.DataLoader
    True
"""

import importlib

__all__ = ["data"]


def __getattr__(name: str):
    if name == "data":
        return importlib.import_module("backprop.utils.data")
    raise AttributeError(f"module 'backprop.utils' has no attribute {name!r}")
