"""``Tensor``'s operators and in-place methods, a base class of Tensor split out of tensor.py:
``+ - * / ** @`` and their reflections, comparisons, ``~ & |``, ``//`` and ``%``, indexing and
index assignment, augmented assignment, and ``add_``, ``mul_``, ``copy_``, ``zero_``...

They call ops, and the ops import Tensor: ``_bind`` binds the names they call at the end of
``backprop.tensor``, as ``_tensor_methods._bind`` does for the other two families.
"""

from __future__ import annotations

import numpy as np


class OperatorMethods:
    """Operators and in-place methods (a base class of ``Tensor``)."""

    __slots__ = ()

    # --- operators ---
    # (the arithmetic ones apply the op's Function directly: a call less on every use, the
    # wrappers add nothing for them)
    def __add__(self, other):
        return _Add.apply(self, other)

    def __radd__(self, other):
        return _Add.apply(other, self)

    def __sub__(self, other):
        return _Sub.apply(self, other)

    def __rsub__(self, other):
        return _Sub.apply(other, self)

    def __mul__(self, other):
        return _Mul.apply(self, other)

    def __rmul__(self, other):
        return _Mul.apply(other, self)

    def __truediv__(self, other):
        return _Div.apply(self, other)

    def __rtruediv__(self, other):
        return _Div.apply(other, self)

    def __pow__(self, other):
        return _Pow.apply(self, other)

    def __rpow__(self, other):
        return _Pow.apply(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return abs(self)

    # comparisons: no gradient, bool results (PyTorch semantics: elementwise ==)
    def __eq__(self, other):
        return eq(self, other)

    def __ne__(self, other):
        return ne(self, other)

    def __lt__(self, other):
        return lt(self, other)

    def __le__(self, other):
        return le(self, other)

    def __gt__(self, other):
        return gt(self, other)

    def __ge__(self, other):
        return ge(self, other)

    def __invert__(self):
        return logical_not(self) if self.data.dtype == np.bool_ else bitwise_not(self)

    def __and__(self, other):
        return bitwise_and(self, other)

    def __or__(self, other):
        return bitwise_or(self, other)

    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value) -> None:
        _inplace.setitem_(self, index, value)

    # --- in-place ops: the values change in this tensor's memory (so every view and detached
    # copy sees them), the version counter moves, and under grad mode the history follows ---
    def add_(self, other, alpha=1) -> Tensor:
        """In place: self += alpha * other."""
        return _inplace.add_(self, other, alpha)

    def sub_(self, other, alpha=1) -> Tensor:
        """In place: self -= alpha * other."""
        return _inplace.sub_(self, other, alpha)

    def mul_(self, other) -> Tensor:
        """In place: self *= other."""
        return _inplace.mul_(self, other)

    def div_(self, other) -> Tensor:
        """In place: self /= other."""
        return _inplace.div_(self, other)

    def clamp_(self, min=None, max=None) -> Tensor:
        """In place: clamp the values to [min, max]."""
        return _inplace.clamp_(self, min, max)

    def copy_(self, src) -> Tensor:
        """In place: copy ``src``'s values (broadcast to this shape, cast to this dtype)."""
        return _inplace.copy_(self, src)

    def fill_(self, value) -> Tensor:
        """In place: set every element to ``value``."""
        return _inplace.fill_(self, value)

    def relu_(self) -> Tensor:
        """In place: max(self, 0) (PyTorch's ``relu_``; see ``ops.inplace.relu_``)."""
        return _inplace.relu_(self)

    def zero_(self) -> Tensor:
        """In place: set every element to zero."""
        return _inplace.fill_(self, 0)

    # augmented assignment updates the tensor in place, as in PyTorch (the manual-SGD idiom
    # `with no_grad(): w -= lr * w.grad` must keep w the same leaf)
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __floordiv__(self, other):
        # piecewise constant: no gradient (PyTorch's floor_divide has none either)
        return _wrap(np.asarray(np.floor_divide(self.data, _raw(other))), False, None, 0)

    def __rfloordiv__(self, other):
        return _wrap(np.asarray(np.floor_divide(_raw(other), self.data)), False, None, 0)

    def __mod__(self, other):
        # PyTorch's remainder: a - floor(a / b)·b (the sign of b), differentiable in a and b
        return self - (self // other) * other

    def __rmod__(self, other):
        return other - (other // self) * self


def _bind() -> None:
    """Bind the ops the operators call (run by ``backprop.tensor`` at its end)."""
    global Tensor, _Add, _Div, _Mul, _Pow, _Sub, _inplace, _raw, _wrap, abs, bitwise_and
    global bitwise_not, bitwise_or, eq, ge, getitem, gt, le, logical_not, lt, matmul, ne, neg
    from backprop.ops import (
        abs,
        bitwise_and,
        bitwise_not,
        bitwise_or,
        eq,
        ge,
        getitem,
        gt,
        le,
        logical_not,
        lt,
        matmul,
        ne,
        neg,
    )
    from backprop.ops import inplace as _inplace
    from backprop.ops.elementwise import Add as _Add
    from backprop.ops.elementwise import Div as _Div
    from backprop.ops.elementwise import Mul as _Mul
    from backprop.ops.elementwise import Pow as _Pow
    from backprop.ops.elementwise import Sub as _Sub
    from backprop.tensor import Tensor, _raw, _wrap
