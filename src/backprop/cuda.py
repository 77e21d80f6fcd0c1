"""``backprop.cuda``: PyTorch's ``torch.cuda`` queries, answered for a CPU-only library.

Programs ask ``torch.cuda.is_available()`` to choose their device and seed every device with
``torch.cuda.manual_seed_all``; those calls work here (False, 0, no-ops). Calls that need a GPU
(``current_device``, ``synchronize`` on one, ...) raise :class:`DeviceUnavailableError`, as
PyTorch built without CUDA does.

Example:
    >>> import backprop as bp
    >>> bp.cuda.is_available(), bp.cuda.device_count()
    (False, 0)
"""

from __future__ import annotations

from backprop.devices import DeviceUnavailableError, check_device

__all__ = ["current_device", "device_count", "empty_cache", "is_available", "is_bf16_supported",
           "manual_seed", "manual_seed_all", "seed", "seed_all", "synchronize"]


def is_available() -> bool:
    """False: backprop has no CUDA backend (yet)."""
    return False


def device_count() -> int:
    """0: no CUDA devices are usable."""
    return 0


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """False, as there is no CUDA device."""
    return False


def manual_seed(seed: int) -> None:
    """A no-op, as in PyTorch without a GPU (seed the CPU with ``backprop.manual_seed``)."""


def manual_seed_all(seed: int) -> None:
    """A no-op, as in PyTorch without a GPU."""


def seed() -> None:
    """A no-op, as in PyTorch without a GPU."""


def seed_all() -> None:
    """A no-op, as in PyTorch without a GPU."""


def empty_cache() -> None:
    """A no-op: there is no CUDA memory cache to empty."""


def synchronize(device=None) -> None:
    """Raises: there is no CUDA device to wait for."""
    check_device(device if device is not None else "cuda", "CUDA stream")


def current_device() -> int:
    """Raises :class:`DeviceUnavailableError`: there is no current CUDA device."""
    raise DeviceUnavailableError(
        "backprop.cuda.current_device(): there is no CUDA device; this backprop computes on the "
        "CPU only (check backprop.cuda.is_available() first)"
    )
