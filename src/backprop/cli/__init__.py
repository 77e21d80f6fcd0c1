"""``backprop.cli``: the ``backprop`` command (train, evaluate, predict, demo).

Imported only by the command: ``import backprop`` does not load it.
"""

from backprop.cli.main import main

__all__ = ["main"]
