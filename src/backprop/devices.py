"""Devices with PyTorch's names: ``backprop.device``, ``Tensor.device``, ``.to(device)``.

backprop computes on the CPU (NumPy); a GPU backend may come later. So that programs written for
PyTorch run unchanged, every place PyTorch takes a device takes one here, with PyTorch's
semantics: ``"cpu"`` (or ``device("cpu")``, ``"cpu:0"``) is accepted and changes nothing; any
other device PyTorch knows (``"cuda"``, ``"mps"``, ...) is a valid *name* but raises
:class:`DeviceUnavailableError` when something is asked to live there, as PyTorch does when it
was built without that backend; an unknown name raises ``RuntimeError`` at once.

Core module: imports nothing but the standard library.
"""

from __future__ import annotations

# every device type PyTorch's parser accepts (in its order), so a valid name never looks like a
# typo here and a typo is reported with the same list
_KNOWN_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
                "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
                "privateuseone")


class DeviceUnavailableError(AssertionError, NotImplementedError):
    """A tensor or module was asked to live on a device this backprop does not have (CUDA, MPS).

    PyTorch built without CUDA raises ``AssertionError`` ("Torch not compiled with CUDA
    enabled") and without MPS ``NotImplementedError``; this is both, so code written to catch
    either keeps working.
    """


class device:
    """Where a tensor lives, PyTorch's ``torch.device``: ``device("cpu")``, ``device("cuda:0")``,
    ``device("cuda", 1)``.

    Only the CPU holds tensors in this version; naming another device is allowed (so
    ``device = torch.device("cuda" if torch.cuda.is_available() else "cpu")`` works), using it
    raises :class:`DeviceUnavailableError`.

    Attributes:
        type: the device type, e.g. ``"cpu"``.
        index: the device ordinal, or None.

    Example:
        >>> import backprop as bp
        >>> bp.device("cpu"), bp.zeros(2).device, str(bp.device("cuda", 1))
        (device(type='cpu'), device(type='cpu'), 'cuda:1')
    """

    __slots__ = ("type", "index")

    def __init__(self, type: str | device, index: int | None = None) -> None:
        if isinstance(type, device) or (hasattr(type, "type") and hasattr(type, "index")):
            # ours, or another library's device object (torch.device) read by its fields
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string such as 'cpu', got {type!r}")
        name, sep, ordinal = type.partition(":")
        if name not in _KNOWN_TYPES:
            raise RuntimeError(
                f"Expected one of {', '.join(_KNOWN_TYPES)} device type at start of device "
                f"string: {type}"
            )
        if sep:
            if index is not None:
                raise RuntimeError(f"device(): type {type!r} already has an index; pass only "
                                   "one of them")
            if not ordinal.isdigit():
                raise RuntimeError(f"Invalid device string: {type!r}")
            index = int(ordinal)
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index!r}")
        object.__setattr__(self, "type", name)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("device objects are immutable")

    def __eq__(self, other) -> bool:
        # as in PyTorch, a device equals only a device (device("cpu") == "cpu" is False)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type={self.type!r})"
        return f"device(type={self.type!r}, index={self.index})"

    def __reduce__(self):
        return (device, (self.type, self.index))


CPU = device("cpu")


def check_device(dev, what: str = "tensor") -> device:
    """``dev`` (a string, a ``device``, an int ordinal or None) as a device, after checking this
    backprop can hold ``what`` there; None and every spelling of the CPU give the CPU.

    Raises:
        DeviceUnavailableError: ``dev`` names CUDA, MPS or another device this build lacks.
        RuntimeError: ``dev`` is not a device name PyTorch would know.
    """
    if dev is None:
        return CPU
    if isinstance(dev, int) and not isinstance(dev, bool):
        dev = device("cuda", dev)  # PyTorch reads a bare ordinal as a CUDA device
    elif not isinstance(dev, device):
        dev = device(dev)
    if dev.type == "cpu":
        return dev
    raise DeviceUnavailableError(
        f"cannot put a {what} on device '{dev}': this backprop computes on the CPU only (NumPy; "
        f"no {_backend_name(dev.type)} backend is built in). Use the CPU, the way PyTorch "
        "programs choose their device: device = 'cuda' if torch.cuda.is_available() else 'cpu' "
        "(backprop.cuda.is_available() is False)"
    )


def _backend_name(kind: str) -> str:
    return {"cuda": "CUDA", "mps": "MPS", "xpu": "XPU", "hip": "ROCm"}.get(kind, kind)


# --- Tensor.to / Module.to arguments and PyTorch's legacy type names ---

_TYPE_NAMES = {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor",
               "float16": "torch.HalfTensor", "int64": "torch.LongTensor",
               "int32": "torch.IntTensor", "int16": "torch.ShortTensor",
               "int8": "torch.CharTensor", "uint8": "torch.ByteTensor", "bool": "torch.BoolTensor"}


def type_name(dtype) -> str:
    """PyTorch's legacy type name of a dtype (``'torch.FloatTensor'`` for float32), which
    ``Tensor.type()`` returns, so programs comparing against those strings keep working."""
    return _TYPE_NAMES.get(str(dtype), f"torch.{dtype}")


def dtype_from_type_name(name):
    """The dtype a ``Tensor.type(...)`` argument names: a dtype, or a legacy name such as
    ``'torch.DoubleTensor'``."""
    if isinstance(name, str) and name.startswith("torch."):
        for dtype, legacy in _TYPE_NAMES.items():
            if legacy == name:
                return dtype
        raise TypeError(f"invalid type: {name!r}")
    return name


def parse_to(op: str, args: tuple, kwargs: dict):
    """Read ``.to(...)``'s arguments as PyTorch does: ``(dtype)``, ``(device)``,
    ``(device, dtype)``, ``(tensor)`` or keywords; check the device.

    Returns:
        ``(dtype or None, copy)``: the dtype to cast to and whether a copy was asked for.
    """
    from backprop.tensor import Tensor, _resolve_dtype

    kwargs = dict(kwargs)
    dev, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    copy = bool(kwargs.pop("copy", False))
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"{op}() got unexpected keyword arguments {sorted(kwargs)}")
    args = list(args)
    if args and isinstance(args[0], Tensor):
        other = args.pop(0)
        dev, dtype = other.device, other.dtype
    elif args and _is_device(args[0]):
        dev = args.pop(0)
    if args and (args[0] is None or not isinstance(args[0], bool)):
        dtype = args.pop(0) if dtype is None else dtype
    for extra in args:  # the positional non_blocking / copy flags
        if not isinstance(extra, bool):
            raise TypeError(f"{op}(): cannot read argument {extra!r}; expected a dtype, a "
                            "device, a tensor or the keywords device=, dtype=, copy=")
    check_device(dev, "tensor" if op.startswith("Tensor") else "module")
    return (None if dtype is None else _resolve_dtype(dtype)), copy


def _is_device(arg) -> bool:
    if isinstance(arg, device) or (isinstance(arg, int) and not isinstance(arg, bool)):
        return True
    if isinstance(arg, str):
        return arg.partition(":")[0] in _KNOWN_TYPES
    return isinstance(getattr(arg, "type", None), str) and hasattr(arg, "index")  # torch.device
