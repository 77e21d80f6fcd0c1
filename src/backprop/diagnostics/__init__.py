"""``backprop.diagnostics``: watch backpropagation work.

- ``GradientMonitor``: per-layer gradient norms, weight norms and update ratios on every
  backward pass, with ``GradientWarning`` when gradients vanish or explode.
- ``explain``: the chain-rule trace of one forward and backward pass, checked against central
  finite differences (``backprop explain``), and its interactive HTML page.
- ``gradient_cost``: the measured cost of a gradient by backprop against finite differences
  (``backprop bench gradient-cost``).

Loaded on first use (``bp.diagnostics``); only the CLI imports it.
"""

from backprop.diagnostics.monitor import GradientMonitor, GradientWarning

__all__ = ["GradientMonitor", "GradientWarning"]
