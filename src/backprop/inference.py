"""``inference_mode``: PyTorch's faster ``no_grad`` for evaluation, as a context manager and a
decorator.

PyTorch additionally marks the tensors made inside as "inference tensors" that may never enter a
recorded graph later, which saves it some bookkeeping. backprop's ``no_grad`` already creates no
graph nodes at all, so ``inference_mode()`` is ``no_grad()`` and ``inference_mode(False)`` changes
nothing.
"""

from __future__ import annotations

import functools

from backprop.autograd.grad_mode import no_grad


class inference_mode:
    """Run the block (or the decorated function) without recording a graph.

    Args:
        mode: True (the default) to switch recording off; False to leave grad mode as it is.

    Example:
        >>> import backprop as bp
        >>> w = bp.ones(2, requires_grad=True)
        >>> with bp.inference_mode():
        ...     y = w * 2
        >>> y.requires_grad
        False
    """

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self._inner = None

    def __enter__(self) -> None:
        if self.mode:
            self._inner = no_grad()
            self._inner.__enter__()

    def __exit__(self, *exc) -> None:
        if self._inner is not None:
            self._inner.__exit__(*exc)
            self._inner = None

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)

        return wrapper

