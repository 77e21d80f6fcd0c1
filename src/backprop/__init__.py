"""backprop: neural networks trained with backpropagation, built from scratch on NumPy.

The public surface: ``Tensor`` and ``tensor``, the constructors, every op as a function, grad
mode, ``manual_seed``, gradient checks and the dtypes. ``import backprop`` imports NumPy only;
the subpackages ``nn``, ``optim``, ``data``, ``train``, ``rules`` and ``utils`` (PyTorch's
``torch.utils.data``), the device queries ``cuda``, ``backends`` and ``accelerator``, and
``save``/``load`` load on first use (``bp.nn.Linear``, ``from backprop import optim``).

PyTorch programs run with ``import backprop as torch``: the names, devices, dtype aliases
(``backprop.float``, ``long``, ...) and ``save``/``load`` follow PyTorch (``docs/pytorch.md``).

Example:
    >>> import backprop as bp
    >>> x = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4., 6.])
"""

import builtins as _builtins
import importlib

import numpy as _np

from backprop import autograd
from backprop._version import __version__
from backprop.autograd import (
    detect_anomaly,
    enable_grad,
    gradcheck,
    gradgradcheck,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from backprop.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    multinomial,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from backprop.devices import DeviceUnavailableError, device
from backprop.errors import DtypeError, ShapeError
from backprop.inference import inference_mode
from backprop.ops import *  # noqa: F403  (every op as a function: add, exp, matmul, cat, ...)
from backprop.ops import __all__ as _ops_all
from backprop.random import Generator, manual_seed
from backprop.tensor import Tensor, bool_, float16, float32, float64, int32, int64

_SUBPACKAGES = (
    "accelerator", "backends", "cuda", "data", "diagnostics", "distributed", "nn", "onnx",
    "optim", "rules", "train", "utils", "viz",
)
_LAZY_FUNCTIONS = {"save": "backprop.serialization", "load": "backprop.serialization"}

__all__ = [
    "Tensor", "ShapeError", "__version__", "arange", "autograd", "bool_", "detect_anomaly", "empty",
    "enable_grad", "eye", "float16", "float32", "float64", "from_numpy", "full", "full_like",
    "gradcheck", "gradgradcheck", "int32", "int64", "is_grad_enabled", "linspace", "manual_seed",
    "no_grad", "ones", "ones_like", "rand", "rand_like", "randint", "randn", "randn_like",
    "set_grad_enabled", "tensor", "zeros", "zeros_like", *_SUBPACKAGES, *_ops_all,
    "DeviceUnavailableError", "DtypeError", "Generator", "as_tensor", "device", "double",
    "empty_like", "half", "inference_mode", "is_tensor", "long", "multinomial", "randperm",
    "int8", "int16", "uint8", "short", *_LAZY_FUNCTIONS,
]

# PyTorch's dtype aliases. ``float``, ``int`` and ``bool`` are left out of ``__all__`` so that
# ``from backprop import *`` cannot shadow Python's built-ins.
int8, int16, uint8 = _np.int8, _np.int16, _np.uint8
float = float32
double = float64
half = float16
long = int64
int = int32
short = int16
bool = bool_


def is_tensor(obj) -> _builtins.bool:
    """True if ``obj`` is a backprop Tensor (PyTorch's ``torch.is_tensor``)."""
    return isinstance(obj, Tensor)


_THREAD_FUNCTIONS = ("set_blas_threads", "set_num_threads", "get_num_threads")


def __getattr__(name: str):
    # Layers, optimizers, data, training and learning rules load on first use: compiling them
    # costs about 25 ms (without cached bytecode) that a script using only tensors and autograd
    # should not pay.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"backprop.{name}")
    if name in _LAZY_FUNCTIONS:  # save/load: safetensors and JSON only when used
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    if name in ("compile", "CompileWarning"):  # backprop.compile: a captured, replayed step
        return getattr(importlib.import_module("backprop._compile"), name)
    if name in _THREAD_FUNCTIONS:
        return getattr(importlib.import_module("backprop._blas"), name)
    raise AttributeError(f"module 'backprop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBPACKAGES) | set(_LAZY_FUNCTIONS)
                  | {"compile", "CompileWarning"} | set(_THREAD_FUNCTIONS))
