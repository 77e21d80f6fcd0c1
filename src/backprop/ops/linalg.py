"""Matrix products: matmul (batched, with NumPy's 1-D rules) and einsum."""

from __future__ import annotations

import string

import numpy as np

from backprop import _blas
from backprop.autograd.function import Function
from backprop.errors import ShapeError, check_same_dtype
from backprop.ops._util import const, first_order
from backprop.ops.activation import relu_array
from backprop.ops.reduction import Sum
from backprop.tensor import Tensor, _raw


class MatMul(Function):
    """Y = A @ B;  ∂L/∂A = G @ Bᵀ, ∂L/∂B = Aᵀ @ G (1-D operands act as a row / column vector;
    batch dimensions broadcast and their gradients are summed back by the engine).

    ``transpose_a`` / ``transpose_b`` swap an operand's last two dimensions first: the backward
    uses them so that G @ Bᵀ is one op, not a transpose and a product (speed).
    """

    label = "MM"
    broadcasts = True

    @staticmethod
    def forward(ctx, a, b, transpose_a=False, transpose_b=False):
        ctx.ta, ctx.tb = transpose_a, transpose_b
        ctx.save_for_backward(a, b)
        return product(a, b, transpose_a, transpose_b)

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        g = grad_out
        a_1d, b_1d = a.data.ndim == 1, b.data.ndim == 1
        if a_1d and b_1d:
            return (g * b if need_a else None), (g * a if need_b else None)
        if a_1d:  # (k,) @ (..., k, n) -> (..., n): a is a row vector
            grad_a = squeeze(matmul(unsqueeze(g, -2), b.mT), -2) if need_a else None
            grad_b = matmul(unsqueeze(a, -1), unsqueeze(g, -2)) if need_b else None
            return grad_a, grad_b
        if b_1d:  # (..., m, k) @ (k,) -> (..., m): b is a column vector
            grad_a = matmul(unsqueeze(g, -1), unsqueeze(b, -2)) if need_a else None
            grad_b = squeeze(matmul(a.mT, unsqueeze(g, -1)), -1) if need_b else None
            return grad_a, grad_b
        # with A' = op(A), B' = op(B):  ∂L/∂A' = G B'ᵀ,  ∂L/∂B' = A'ᵀ G, transposed back if flagged
        ta, tb = ctx.ta, ctx.tb
        grad_a = grad_b = None
        if first_order():  # the same products on arrays (see ops._util.first_order)
            grad_a, grad_b = matmul_grads(a.data, b.data, g.data, ta, tb, need_a, need_b)
            return (None if grad_a is None else const(grad_a)), \
                (None if grad_b is None else const(grad_b))
        if need_a:
            grad_a = (MatMul.apply(b, g, transpose_a=tb, transpose_b=True) if ta
                      else MatMul.apply(g, b, transpose_b=not tb))
        if need_b:
            grad_b = (MatMul.apply(g, a, transpose_a=True, transpose_b=ta) if tb
                      else MatMul.apply(a, g, transpose_a=not ta))
        return grad_a, grad_b


class Addmm(Function):
    """Y = X Wᵀ + b;  ∂L/∂X = G W, ∂L/∂W = Gᵀ X, ∂L/∂b = Σₙ G[n] (a linear layer as one op:
    PyTorch's ``addmm``, AddmmBackward0 in its graphs).

    X (n, in), W (out, in), b (out,) -> (n, out). One op rather than MatMul and Add (speed: a
    node and a graph step fewer per layer, and the bias added in place into the product's
    fresh output instead of into a temporary). The same kernels as MatMul then Add, so the
    same bits.
    """

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return linear_array(x, w, b)

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        if first_order():  # the same kernels on arrays (see ops._util.first_order)
            return tuple(None if g is None else const(g) for g in addmm_grads(
                x.data, w.data, grad_out.data, need_x, need_w, need_b))
        # MatMul's own rule for transpose_b=True, and the engine's bias reduction (a sum over
        # the batch axis)
        grad_x = MatMul.apply(grad_out, w) if need_x else None
        grad_w = MatMul.apply(grad_out, x, transpose_a=True) if need_w else None
        grad_b = Sum.apply(grad_out, dims=(0,)) if need_b else None
        return grad_x, grad_w, grad_b


def matmul_grads(a, b, g, ta: bool, tb: bool, need_a: bool, need_b: bool) -> tuple:
    """MatMul's first-order rule on arrays for 2-D-or-more operands: the products its rule
    applies (each ``product``, MatMul.forward's kernel), None where not needed."""
    grad_a = grad_b = None
    if need_a:
        grad_a = product(b, g, tb, True) if ta else product(g, b, False, not tb)
    if need_b:
        grad_b = product(g, a, True, ta) if tb else product(a, g, not ta, False)
    return grad_a, grad_b


def addmm_grads(x, w, g, need_x: bool, need_w: bool, need_b: bool) -> tuple:
    """Addmm's first-order rule on arrays: G W, Gᵀ X (MatMul's kernel) and Σₙ G (Sum's)."""
    return (product(g, w, False, False) if need_x else None,
            product(g, x, True, False) if need_w else None,
            g.sum(axis=(0,)) if need_b else None)


def linear_array(x, w, b, relu: bool = False):
    """Addmm's kernel on arrays: x @ wᵀ + b, then ReLU when ``relu`` (the compiled step's
    Addmm followed by ReLU): ``_blas.linear``'s two column blocks, the bias (and ReLU) added
    by the thread that computed each, where it applies; else the product, the bias added in
    place (and ReLU in place). The same bits either way."""
    y = _blas.linear(x, w, b, relu)
    if y is None:
        y = product(x, w, False, True)
        y += b
        if relu:
            relu_array(y, out=y)
    return y


def product(a, b, transpose_a: bool, transpose_b: bool):
    """MatMul's kernel on arrays: op(a) @ op(b), op swapping the last two dimensions where
    flagged, on the threads backprop._blas gives its size."""
    return _blas.matmul(a.swapaxes(-1, -2) if transpose_a else a,
                        b.swapaxes(-1, -2) if transpose_b else b)


def matmul(input, other) -> Tensor:
    """Matrix product with NumPy's rules: batched over leading dimensions, 1-D operands
    promoted to a row (first) or column (second) vector and the added dimension removed.

    Shapes: (..., m, k) @ (..., k, n) -> (..., m, n); (k,) @ (k,) -> ().

    Example:
        >>> import backprop as bp
        >>> (bp.ones(2, 3) @ bp.ones(3)).shape
        (2,)
    """
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        mixed = input.data.dtype is not other.data.dtype  # (the full check only when it can fail)
    else:
        try:
            mixed = input.dtype is not other.dtype
        except AttributeError:  # a Python number or list: apply converts it
            mixed = False
    if mixed:
        check_same_dtype("matmul", input, other)
    try:
        return MatMul.apply(input, other)
    except ValueError:
        # raised here, not in forward: Function.apply would replace a forward's ShapeError with
        # its generic broadcasting message, which cannot say which dimension is wrong
        raise _matmul_error(np.shape(_raw(input)), np.shape(_raw(other))) from None


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """The product of two matrices, PyTorch's ``mm`` (no broadcasting, no 1-D promotion).
    Shapes: (n, k) @ (k, m) -> (n, m)."""
    for name, t in (("self", input), ("mat2", mat2)):
        if t.ndim != 2:
            raise ShapeError(f"mm: {name} must be a matrix, got shape {tuple(t.shape)}")
    if input.shape[1] != mat2.shape[0]:
        raise ShapeError(
            f"mm: mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x{input.shape[1]} "
            f"and {mat2.shape[0]}x{mat2.shape[1]})"
        )
    return matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched matrix product, PyTorch's ``bmm`` (no broadcasting).
    Shapes: (b, n, k) @ (b, k, m) -> (b, n, m)."""
    for name, t in (("batch1", input), ("batch2", mat2)):
        if t.ndim != 3:
            raise ShapeError(f"bmm: {name} must be a 3D tensor, got shape {tuple(t.shape)}")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise ShapeError(
            f"bmm: shapes {tuple(input.shape)} and {tuple(mat2.shape)} do not fit: expected "
            "(b, n, k) and (b, k, m) with the same b"
        )
    return matmul(input, mat2)


def _matmul_error(a_shape: tuple, b_shape: tuple) -> ShapeError:
    shapes = f"matmul: shapes {a_shape} and {b_shape}"
    if not a_shape or not b_shape:
        return ShapeError(f"{shapes}: both operands need at least one dimension; use * to "
                          "multiply by a scalar")
    k_b, where_b = (b_shape[0], "only") if len(b_shape) == 1 else (b_shape[-2], "second-to-last")
    if a_shape[-1] != k_b:
        return ShapeError(
            f"{shapes} do not fit: the last dimension of the first ({a_shape[-1]}) must equal "
            f"the {where_b} dimension of the second ({k_b})"
        )
    return ShapeError(
        f"{shapes} do not fit: the batch dimensions {a_shape[:-2]} and {b_shape[:-2]} cannot be "
        "broadcast together (aligned from the right, each must be equal or 1)"
    )


class Einsum(Function):
    """Y = einsum(spec, X₁, ..., Xₙ);  ∂L/∂Xₖ = einsum of G with every other operand, into Xₖ's
    subscripts (ones stand in for indices only Xₖ has; repeated indices go to the diagonal)."""

    @staticmethod
    def forward(ctx, *operands, spec=""):
        ctx.spec = spec
        ctx.save_for_backward(*operands)
        return np.einsum(spec, *operands, optimize=len(operands) > 2)

    @staticmethod
    def backward(ctx, grad_out):
        ops = ctx.saved_tensors
        ins, out = ctx.spec.split("->")
        subs = ins.split(",")
        sizes = {}
        for s, t in zip(subs, ops):
            for c, n in zip(s, t.shape):
                sizes[c] = n
        free = [c for c in string.ascii_letters if c not in ctx.spec]
        grads = []
        for k, need in enumerate(ctx.needs_input_grad):
            if not need:
                grads.append(None)
                continue
            target = subs[k]
            terms = [out] + [s for j, s in enumerate(subs) if j != k]
            operands = [grad_out] + [t for j, t in enumerate(ops) if j != k]
            known = set("".join(terms))
            for c in dict.fromkeys(target):  # indices no other operand carries: broadcast ones
                if c not in known:
                    terms.append(c)
                    operands.append(const(np.ones(sizes[c], dtype=grad_out.dtype)))
            # a repeated index (a diagonal, as in 'ii->'): rename repeats and mask with identity
            seen, renamed = set(), []
            for c in target:
                if c in seen:
                    new = free.pop()
                    terms.append(c + new)
                    operands.append(const(np.eye(sizes[c], dtype=grad_out.dtype)))
                    renamed.append(new)
                else:
                    seen.add(c)
                    renamed.append(c)
            grads.append(einsum(",".join(terms) + "->" + "".join(renamed), *operands))
        return tuple(grads)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, as ``numpy.einsum`` / ``torch.einsum`` (explicit or implicit output,
    ``...`` for leading dimensions); differentiable in every operand.

    Example:
        >>> import backprop as bp
        >>> bp.einsum("ij,jk->ik", bp.ones(2, 3), bp.ones(3, 4)).shape
        (2, 4)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    spec = _explicit_spec(equation.replace(" ", ""), [np.ndim(_raw(o)) for o in operands])
    try:
        return Einsum.apply(*operands, spec=spec)
    except ValueError as e:
        shapes = ", ".join(str(tuple(np.shape(_raw(o)))) for o in operands)
        raise ShapeError(
            f"einsum '{equation}': operands of shapes {shapes} do not fit: {e}"
        ) from None


def _explicit_spec(equation: str, ndims: list) -> str:
    """Rewrite the equation with '...' expanded to letters and an explicit output."""
    if "->" in equation:
        ins, out = equation.split("->")
    else:
        ins, out = equation, None
    subs = ins.split(",")
    if len(subs) != len(ndims):
        raise ValueError(
            f"einsum '{equation}': {len(subs)} operand subscripts for {len(ndims)} operands"
        )
    unused = [c for c in string.ascii_letters if c not in equation]
    n_ell = max(
        (nd - len(s.replace("...", "")) for s, nd in zip(subs, ndims) if "..." in s), default=0
    )
    ell = "".join(unused[:n_ell])
    full = []
    for s, nd in zip(subs, ndims):
        if "..." in s:
            k = nd - len(s.replace("...", ""))
            s = s.replace("...", ell[len(ell) - k :] if k else "")
        if len(s) != nd:
            raise ShapeError(
                f"einsum '{equation}': subscripts '{s}' do not match an operand with {nd} "
                "dimensions"
            )
        full.append(s)
    if out is None:
        counts = {}
        for s in full:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return ",".join(full) + "->" + out


from backprop.ops.shape import squeeze, unsqueeze  # noqa: E402
