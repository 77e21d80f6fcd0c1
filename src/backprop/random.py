"""The global random state: ``manual_seed(n)`` makes every random function reproducible.

The generator is created on first use, so ``import backprop`` does not pay for importing
``numpy.random``. :class:`Generator` is PyTorch's ``torch.Generator``: a seeded stream of its
own, accepted wherever a function takes ``generator=`` (``rand``, ``randn``, ``randint``,
``randperm``, ``multinomial``, ``random_split``, ``DataLoader``, the ``nn.init`` functions). A
NumPy ``numpy.random.Generator`` is accepted there too.
"""

from __future__ import annotations

import numpy as np

from backprop.devices import check_device

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


class Generator:
    """A random stream of its own, PyTorch's ``torch.Generator``.

    Args:
        device: where it lives; only the CPU (see ``backprop.device``).

    The numbers differ from PyTorch's (NumPy's PCG64 draws them), but a seed gives the same
    stream on every run.

    Example:
        >>> import backprop as bp
        >>> g = bp.Generator().manual_seed(0)
        >>> a = bp.rand(3, generator=g)
        >>> bool((a == bp.rand(3, generator=bp.Generator().manual_seed(0))).all())
        True
    """

    def __init__(self, device="cpu") -> None:
        self.device = check_device(device, "generator")
        self._seed = int(np.random.SeedSequence().entropy % 2**63)
        self._rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from ``seed``; returns self (so ``Generator().manual_seed(0)``)."""
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Restart the stream from a fresh non-deterministic seed; returns that seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))
        return self._seed

    def initial_seed(self) -> int:
        """The seed the stream was last started from."""
        return self._seed

    def get_state(self) -> dict:
        """The stream's position (a NumPy bit-generator state), for ``set_state``."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> Generator:
        """Return to a position saved by ``get_state``; returns self."""
        self._rng.bit_generator.state = state
        return self

    def __repr__(self) -> str:
        return f"Generator(device='{self.device}', initial_seed={self._seed})"


def numpy_generator(generator=None) -> np.random.Generator:
    """The NumPy generator to draw from: the global one for None, a :class:`Generator`'s own, or
    a ``numpy.random.Generator`` as given."""
    if generator is None:
        return default_generator()
    if isinstance(generator, Generator):
        return generator._rng
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(
        f"generator must be a backprop.Generator (torch.Generator's counterpart) or a "
        f"numpy.random.Generator, got {type(generator).__name__}"
    )
