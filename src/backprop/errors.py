"""Exceptions raised by backprop, each with a message that names the op, the shapes and the fix."""

from __future__ import annotations


class ShapeError(ValueError):
    """Raised when the shapes of an op's inputs do not fit (broadcasting, matmul, cat, ...).

    A subclass of ValueError, so code that catches NumPy's shape errors keeps working.
    """


class DtypeError(TypeError, ValueError, RuntimeError):
    """Raised when an op that needs one floating dtype gets two (a float32 input to a float64
    model): matrix products, ``linear``, convolutions and recurrent layers, as in PyTorch.

    PyTorch raises ``RuntimeError`` for the products and convolutions and ``ValueError`` for the
    recurrent layers; this is both (and a ``TypeError``, Python's word for it), so code written
    to catch either keeps working. The message names both dtypes and the cast that fixes it.
    """


def check_same_dtype(op: str, first, second, layer: bool = False) -> None:
    """Raise ``DtypeError`` when two tensors' dtypes differ and one of them is floating.

    Elementwise ops promote (float32 + float64 -> float64) as PyTorch's do; products and layers
    do not, so a float32 batch never silently turns a float64 model's output into float64 or the
    other way round. ``layer``: ``second`` is a layer's weight (the fix is then ``model.to``).
    """
    a, b = first.dtype, second.dtype
    if a == b or (a.kind != "f" and b.kind != "f"):
        return
    if layer:
        raise DtypeError(
            f"{op}: the input has dtype {a} but the weight has dtype {b}; they must be the same "
            f"(layers do not convert, as in PyTorch). Convert the input, input.to({_name(b)}), "
            f"or the model, model.to({_name(a)})"
        )
    raise DtypeError(
        f"{op}: the operands have dtypes {a} and {b}; they must be the same (products do not "
        f"promote, as in PyTorch). Cast one of them, e.g. other.to({_name(a)})"
    )


def _name(dtype) -> str:
    return f"backprop.{dtype}"
