"""The op test table: one ``OpCase`` per (op, shape) case, read by ``test_ops.py``.

Every case names a callable on backprop tensors, its inputs (shapes drawn from a domain, or
generators for indices, masks and ties), a NumPy reference for the forward values, whether
second derivatives are checked, the gradcheck tolerances and the torch callable to compare with
(by default the same lambda: operators and methods have the same names in both libraries).
Float inputs are differentiated; integer and bool inputs (indices, masks) are passed through.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import backprop as bp
from backprop.ops.elementwise import SigmoidGrad, TanhGrad
from backprop.ops.linalg import Addmm, MatMul


class _Lazy:
    """A module imported on first attribute access: torch is only needed by the torch test."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


torch = _Lazy("torch")
F = _Lazy("torch.nn.functional")

SAME = "same"
"""``torch_fn`` default: run the case's own ``fn`` on torch tensors."""

InputSpec = tuple | Callable[[np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class OpCase:
    """One row of the table.

    Attributes:
        name: the pytest id (unique).
        fn: the op under test, called as ``fn(*inputs)`` on backprop tensors; returns a Tensor or
            a tuple of Tensors.
        shapes: one entry per input: a shape (float64 values drawn uniformly from [low, high],
            at least ``margin`` away from every point in ``avoid``) or a generator
            ``rng -> ndarray`` (index arrays, masks, values with ties).
        ref: the NumPy reference, called on the float64 input arrays.
        make: a generator ``rng -> [arrays]`` for inputs that must be drawn together (ties
            between two inputs); overrides ``shapes``, which then only document the shapes.
        double_backward: whether gradgradcheck applies (False for piecewise-constant gradients
            evaluated at a tie, and for once-differentiable paths).
        differentiable: False for forward-only ops (argmax, one_hot).
        out_dtype: the dtype of float outputs when it does not follow the input (casts).
        torch_fn: the same computation on torch tensors; ``SAME`` reuses ``fn``; None: no torch
            counterpart.
    """

    name: str
    fn: Callable
    shapes: tuple[InputSpec, ...]
    ref: Callable
    low: float = -2.0
    high: float = 2.0
    avoid: tuple = ()
    margin: float = 0.1
    make: Callable | None = None
    double_backward: bool = True
    differentiable: bool = True
    out_dtype: type | None = None
    eps: float = 1e-6
    atol: float = 1e-5
    rtol: float = 1e-3
    fwd_atol: float = 1e-12
    fwd_rtol: float = 1e-10
    torch_fn: Callable | str | None = SAME

    def make_inputs(self, rng: np.random.Generator) -> list[np.ndarray]:
        """The input arrays (floats as float64) for one run, drawn from ``rng``."""
        if self.make is not None:
            arrays = [np.asarray(a) for a in self.make(rng)]
        else:
            arrays = [
                spec(rng) if callable(spec)
                else _draw(rng, spec, self.low, self.high, self.avoid, self.margin)
                for spec in self.shapes
            ]
        for spec, a in zip(self.shapes, arrays, strict=True):
            if not callable(spec) and a.shape != tuple(spec):
                raise AssertionError(f"{self.name}: an input has shape {a.shape}, not {spec}")
        return [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]

    def torch_callable(self) -> Callable | None:
        return self.fn if self.torch_fn == SAME else self.torch_fn


def _draw(rng, shape, low, high, avoid=(), margin=0.1) -> np.ndarray:
    x = rng.uniform(low, high, shape)
    for _ in range(100):
        bad = np.zeros(x.shape, dtype=bool)
        for p in avoid:
            bad |= np.abs(x - p) < margin
        if not bad.any():
            return x
        x[bad] = rng.uniform(low, high, int(bad.sum()))
    raise AssertionError(f"could not draw values in [{low}, {high}] away from {avoid}")


def uniform(shape, low, high, avoid=(), margin=0.1):
    """An input drawn from its own domain (e.g. a divisor kept away from zero)."""
    return lambda rng: _draw(rng, shape, low, high, avoid, margin)


def fixed(values, dtype=None):
    """An input with given values: index arrays with repeats, data with exact ties."""
    arr = np.array(values, dtype=dtype)
    return lambda rng: arr.copy()


def mask(shape):
    """A random bool mask with at least one True and one False."""

    def make(rng):
        m = rng.random(shape) < 0.5
        m.flat[0], m.flat[-1] = True, False
        return m

    return make


def tied_pair(shape):
    """Two float inputs equal at about half the positions (always at the first)."""

    def make(rng):
        a, b = rng.uniform(-2, 2, shape), rng.uniform(-2, 2, shape)
        tie = rng.random(shape) < 0.5
        tie.flat[0] = True
        b[tie] = a[tie]
        return [a, b]

    return make


_erf_ref = np.vectorize(math.erf, otypes=[np.float64])


def _scatter_add_ref(x, dim, index, src):
    out = x.copy()
    for pos in np.ndindex(index.shape):
        target = list(pos)
        target[dim] = index[pos]
        out[tuple(target)] += src[pos]
    return out


def _index_add_ref(x, index, src, alpha=1):
    out = x.copy()
    for i, k in enumerate(index):
        out[k] += alpha * src[i]
    return out


def _gather_ref(x, dim, index):
    out = np.empty(index.shape)
    for pos in np.ndindex(index.shape):
        source = list(pos)
        source[dim] = index[pos]
        out[pos] = x[tuple(source)]
    return out


def _softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _nll_ref(x, t, w=None, ignore_index=-100, reduction="mean", smoothing=0.0):
    xc = np.moveaxis(x, 1, -1) if x.ndim > 1 else x  # classes last
    n_classes = xc.shape[-1]
    w = np.ones(n_classes) if w is None else w
    keep = t != ignore_index
    safe = np.where(keep, t, 0)
    picked = np.take_along_axis(xc, safe[..., None], -1)[..., 0]
    y = -((1 - smoothing) * w[safe] * picked + smoothing / n_classes * (xc * w).sum(-1)) * keep
    if reduction == "none":
        return y
    return y.sum() / (w[safe] * keep).sum() if reduction == "mean" else y.sum()


def _setitem_ref(index):
    def ref(x, v):
        y = x.copy()
        y[index] = v
        return y

    return ref


def _set_slice(x, v):
    y = x * 1
    y[1:3] = v
    return y


def _set_point(x, v):
    y = x * 1
    y[1, 2] = v
    return y


def _set_rows(x, v, idx):
    y = x * 1
    y[idx] = v
    return y


def _set_masked(x, m):
    y = x * 1
    y[m] = 0.0
    return y


# in-place ops through views: the write reaches the base (CopySlices), in values and gradients
def _mul_through_slice(x, w):
    h = x * 1
    h[1:3].mul_(w)
    return h


def _mul_through_reshape_transpose(x):
    h = x * 1
    h.reshape(3, 2).T.mul_(2.0)
    return h


def _exp_through_row_then_read_other_view(x):
    h = x * 1
    first = h[0]
    h.T[:, 1].mul_(3.0)  # row 1, written through another view
    return first * h[1]  # first is stale: regenerated from h's new history


def _ref_mul_slice(x, w):
    y = x.copy()
    y[1:3] *= w
    return y


def _ref_mul_reshape(x):
    return x * 2.0


def _ref_other_view(x):
    return x[0] * (3.0 * x[1])


# dropout's mask is an op that draws from the global generator: seeded, it is reproducible
def _seeded_dropout(x):
    bp.manual_seed(7)
    return bp.nn.functional.dropout(x, p=0.5)


def _ref_seeded_dropout(x):
    keep = np.random.default_rng(7).random(x.shape) >= 0.5
    return x * keep * 2.0


# the untracked in-place kernels (what optimizers run under no_grad)
def _kernels(x, w):
    with bp.no_grad():
        y = x.clone()
        y.add_(w).sub_(w, alpha=0.5).mul_(w).div_(2.0).clamp_(-1.0, 1.0)
        y.clamp_(bp.zeros(3), None)
        z = bp.zeros_like(y)
        z.copy_(y)
        z[0] = 5.0
        y.fill_(0.5)
    return z + y


def _activation_kernels(x):
    with bp.no_grad():
        parts = [x.clone() for _ in range(4)]
        F_ = bp.nn.functional
        F_.relu(parts[0], inplace=True)
        F_.leaky_relu(parts[1], 0.2, inplace=True)
        F_.elu(parts[2], 0.5, inplace=True)
        F_.silu(parts[3], inplace=True)
    return bp.stack(parts)


def _ref_activation_kernels(x):
    return np.stack([np.maximum(x, 0), np.where(x > 0, x, 0.2 * x),
                     np.where(x > 0, x, 0.5 * np.expm1(x)), x / (1 + np.exp(-x))])


def _ref_kernels(x, w):
    y = np.clip((x + w - 0.5 * w) * w / 2.0, -1.0, 1.0)
    z = np.maximum(y, 0.0)
    z[0] = 5.0
    return z + 0.5


# --- elementwise: each unary op on a size-1 axis and on a 0-d tensor ---


def unary(name, fn, ref, torch_fn=SAME, **kw) -> list[OpCase]:
    return [
        OpCase(name, fn, ((2, 1, 3),), ref, torch_fn=torch_fn, **kw),
        OpCase(name + "_0d", fn, ((),), ref, torch_fn=torch_fn, **kw),
    ]


UNARY = [
    *unary("neg", lambda x: -x, np.negative),
    *unary("exp", lambda x: x.exp(), np.exp),
    *unary("log", lambda x: x.log(), np.log, low=0.1, high=3.0),
    *unary("log1p", lambda x: x.log1p(), np.log1p, low=-0.5, high=2.0),
    *unary("sqrt", lambda x: x.sqrt(), np.sqrt, low=0.1, high=3.0),
    *unary("abs", lambda x: x.abs(), np.abs, avoid=(0.0,)),
    *unary("sin", lambda x: x.sin(), np.sin, low=-3.0, high=3.0),
    *unary("cos", lambda x: x.cos(), np.cos, low=-3.0, high=3.0),
    *unary("tanh", lambda x: x.tanh(), np.tanh, low=-3.0, high=3.0),
    *unary("sigmoid", lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), low=-4, high=4),
    OpCase("tanh_grad", TanhGrad.apply, ((2, 3), (2, 3)), lambda g, y: g * (1 - y * y),
           low=-0.9, high=0.9, torch_fn=None),
    OpCase("sigmoid_grad", SigmoidGrad.apply, ((2, 3), (3,)), lambda g, y: g * y * (1 - y),
           low=0.1, high=0.9, torch_fn=None),
    *unary("erf", bp.erf, _erf_ref, lambda x: torch.erf(x), low=-3.0, high=3.0),
    *unary("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), avoid=(0.0,)),
    *unary("leaky_relu", lambda x: bp.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
           lambda x: F.leaky_relu(x, 0.2), avoid=(0.0,)),
    *unary("elu", bp.elu, lambda x: np.where(x > 0, x, np.expm1(x)), lambda x: F.elu(x),
           avoid=(0.0,)),
    *unary("elu_alpha", lambda x: bp.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)),
           lambda x: F.elu(x, 0.5), avoid=(0.0,)),
    *unary("gelu", bp.gelu, lambda x: x * 0.5 * (1 + _erf_ref(x / math.sqrt(2))),
           lambda x: F.gelu(x), low=-3.0, high=3.0),
    *unary("gelu_tanh", lambda x: bp.gelu(x, approximate="tanh"),
           lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
           lambda x: F.gelu(x, approximate="tanh"), low=-3.0, high=3.0),
    *unary("softplus", bp.softplus, lambda x: np.log1p(np.exp(x)), lambda x: F.softplus(x),
           low=-3.0, high=3.0),
    # beta=2, threshold=3: the linear branch (x > 1.5) and the jump there are both exercised
    *unary("softplus_beta_threshold", lambda x: bp.softplus(x, beta=2.0, threshold=3.0),
           lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2),
           lambda x: F.softplus(x, beta=2.0, threshold=3.0), low=-3.0, high=3.0, avoid=(1.5,)),
    *unary("clamp", lambda x: x.clamp(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
           avoid=(-0.5, 0.5)),
    *unary("clamp_min", lambda x: x.clamp(min=0.0), lambda x: np.maximum(x, 0.0), avoid=(0.0,)),
    *unary("clamp_max", lambda x: x.clamp(max=0.3), lambda x: np.minimum(x, 0.3), avoid=(0.3,)),
    *unary("clone", lambda x: x.clone(), np.copy),
    *unary("mul_scalar", lambda x: x * 2.5, lambda x: x * 2.5),
    *unary("rmul_scalar", lambda x: 2.5 * x, lambda x: 2.5 * x),
    *unary("radd_scalar", lambda x: 1.5 + x, lambda x: 1.5 + x),
    *unary("rsub_scalar", lambda x: 1.5 - x, lambda x: 1.5 - x),
    *unary("rdiv_scalar", lambda x: 1.5 / x, lambda x: 1.5 / x, low=0.5, high=2.0),
    *unary("pow_int", lambda x: x**3, lambda x: x**3),
    *unary("pow_negative", lambda x: x**-1.5, lambda x: x**-1.5, low=0.5, high=2.0),
    *unary("pow_half", lambda x: x**0.5, np.sqrt, low=0.1, high=3.0),
    *unary("rpow_scalar", lambda x: 2.0**x, lambda x: 2.0**x),
    # a⁰ = 1 is constant, so its gradient is 0 even at a = 0 (not 0·∞)
    OpCase("pow_zero_exponent", lambda x: x**0, (fixed([[0.0, 1.5, -2.0]]),), np.ones_like),
]


# --- elementwise binary: same shape, a broadcasting pair, a 0-d operand ---

_EXPONENTS = np.array([0.0, 2.0, 0.0, 1.5])


def binary(name, fn, ref, torch_fn=SAME, a=None, b=None, **kw) -> list[OpCase]:
    def spec(shape, dom):
        return shape if dom is None else uniform(shape, *dom)

    variants = [("", (2, 3), (2, 3)), ("_broadcast", (2, 1, 3), (4, 1)), ("_0d", (), (2, 3))]
    return [
        OpCase(name + suffix, fn, (spec(sa, a), spec(sb, b)), ref, torch_fn=torch_fn, **kw)
        for suffix, sa, sb in variants
    ]


BINARY = [
    *binary("add", lambda a, b: a + b, np.add),
    *binary("sub", lambda a, b: a - b, np.subtract),
    *binary("mul", lambda a, b: a * b, np.multiply),
    *binary("div", lambda a, b: a / b, np.divide, b=(0.5, 2.0)),
    *binary("pow_tensor", lambda a, b: a**b, np.power, a=(0.5, 2.0)),
    *binary("maximum", lambda a, b: a.maximum(b), np.maximum),
    *binary("minimum", lambda a, b: a.minimum(b), np.minimum),
    OpCase("pow_tensor_zero_exponent", lambda a: a ** bp.tensor(_EXPONENTS, dtype=a.dtype),
           (fixed([0.0, 0.0, 1.5, 2.0]),), lambda a: a**_EXPONENTS,
           torch_fn=lambda a: a ** torch.tensor(_EXPONENTS, dtype=a.dtype)),
    OpCase("pow_tensor_exponent_zeros", lambda a, b: a**b,
           (uniform((4,), 0.5, 2.0), fixed([0.0, 1.0, 0.0, 2.0])), np.power),
    OpCase("add_alpha", lambda a, b: bp.add(a, b, alpha=2), ((2, 3), (3,)),
           lambda a, b: a + 2 * b, torch_fn=lambda a, b: torch.add(a, b, alpha=2)),
    OpCase("sub_alpha", lambda a, b: bp.sub(a, b, alpha=0.5), ((2, 3), (3,)),
           lambda a, b: a - 0.5 * b, torch_fn=lambda a, b: torch.sub(a, b, alpha=0.5)),
    # at a tie each side gets half the gradient, which is also the central difference
    OpCase("maximum_ties", lambda a, b: a.maximum(b), ((3, 4), (3, 4)), np.maximum,
           make=tied_pair((3, 4)), double_backward=False),
    OpCase("minimum_ties", lambda a, b: a.minimum(b), ((3, 4), (3, 4)), np.minimum,
           make=tied_pair((3, 4)), double_backward=False),
    OpCase("clamp_tensor_bounds", lambda x, lo, hi: bp.clamp(x, lo, hi),
           ((3, 4), uniform((3, 4), -1.5, -0.3), uniform((4,), 0.3, 1.5)),
           lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
           torch_fn=lambda x, lo, hi: torch.clamp(x, lo, hi)),
    OpCase("where", bp.where, (mask((3, 4)), (3, 4), (1, 4)), np.where,
           torch_fn=lambda c, a, b: torch.where(c, a, b)),
    OpCase("where_0d", bp.where, (mask((2, 3)), (), (2, 3)), np.where,
           torch_fn=lambda c, a, b: torch.where(c, a, b)),
    OpCase("masked_fill", lambda x, m: x.masked_fill(m, 0.5), ((3, 4), mask((1, 4))),
           lambda x, m: np.where(m, 0.5, x)),
]


# --- reductions ---

_CLASS_W = np.array([0.5, 2.0, 1.5])  # class weights for the loss cases

_TIED_MAX = [[1.0, 3.0, 3.0, 0.5], [2.0, -1.0, 2.0, 0.0], [4.0, 4.0, -1.0, -2.0]]

REDUCTIONS = [
    OpCase("sum_all", lambda x: x.sum(), ((3, 4),), np.sum),
    OpCase("sum_dim", lambda x: x.sum(1), ((3, 4),), lambda x: x.sum(1)),
    OpCase("sum_dims_keepdim", lambda x: x.sum((0, 2), keepdim=True), ((2, 3, 2),),
           lambda x: x.sum((0, 2), keepdims=True)),
    OpCase("sum_size1_axis", lambda x: x.sum(1), ((3, 1),), lambda x: x.sum(1)),
    OpCase("sum_0d", lambda x: x.sum(), ((),), np.sum),
    OpCase("sum_0d_dim", lambda x: x.sum(0), ((),), np.sum),
    OpCase("mean_all", lambda x: x.mean(), ((3, 4),), np.mean),
    OpCase("mean_dims", lambda x: x.mean((0, 2)), ((2, 3, 2),), lambda x: x.mean((0, 2))),
    OpCase("mean_keepdim", lambda x: x.mean(-1, keepdim=True), ((3, 4),),
           lambda x: x.mean(-1, keepdims=True)),
    OpCase("mean_size1_axis", lambda x: x.mean(1), ((3, 1),), lambda x: x.mean(1)),
    OpCase("mean_0d", lambda x: x.mean(), ((),), np.mean),
    OpCase("var_all", lambda x: x.var(), ((3, 4),), lambda x: np.var(x, ddof=1)),
    OpCase("var_dim", lambda x: x.var(1), ((3, 4),), lambda x: np.var(x, 1, ddof=1)),
    OpCase("var_correction0_keepdim", lambda x: x.var(0, keepdim=True, correction=0), ((3, 4),),
           lambda x: np.var(x, 0, keepdims=True)),
    OpCase("var_0d_correction0", lambda x: x.var(correction=0), ((),), np.var),
    OpCase("std_all", lambda x: x.std(), ((3, 4),), lambda x: np.std(x, ddof=1)),
    # all values equal: std is not differentiable there; PyTorch (and we) take the gradient 0
    OpCase("std_constant_row", lambda x: x.std(1), ((3, 4),), lambda x: np.std(x, 1, ddof=1),
           make=lambda rng: [np.vstack([np.full(4, 0.7), rng.uniform(-2, 2, (2, 4))])],
           double_backward=False),
    OpCase("std_dim_keepdim", lambda x: x.std(1, keepdim=True), ((3, 4),),
           lambda x: np.std(x, 1, ddof=1, keepdims=True)),
    OpCase("prod_all", lambda x: x.prod(), ((2, 3),), np.prod, avoid=(0.0,), margin=0.3),
    OpCase("prod_dim", lambda x: x.prod(1), ((3, 4),), lambda x: x.prod(1), avoid=(0.0,),
           margin=0.3),
    OpCase("prod_dim_keepdim", lambda x: x.prod(0, keepdim=True), ((3, 1),),
           lambda x: x.prod(0, keepdims=True), avoid=(0.0,), margin=0.3),
    OpCase("prod_0d", lambda x: x.prod(), ((),), np.prod),
    # with zeros y/x is undefined: the gradient is the product of the other elements, formed
    # from constants (first order only)
    OpCase("prod_one_zero", lambda x: x.prod(), ((2, 3),), np.prod,
           make=lambda rng: [np.where(np.arange(6).reshape(2, 3) == 4, 0.0,
                                      rng.uniform(0.5, 2.0, (2, 3)))],
           double_backward=False),
    OpCase("prod_zeros_dim", lambda x: x.prod(1), ((3, 4),), lambda x: x.prod(1),
           make=lambda rng: [rng.uniform(0.5, 2.0, (3, 4)) * np.array(
               [[1, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1]])],
           double_backward=False),
    OpCase("norm_2_all", lambda x: x.norm(), ((3, 4),), lambda x: np.sqrt(np.sum(x * x))),
    OpCase("norm_1_dim", lambda x: x.norm(1, 1), ((3, 4),), lambda x: np.abs(x).sum(1),
           avoid=(0.0,)),
    OpCase("norm_inf_dim", lambda x: x.norm(math.inf, 0), ((3, 4),),
           lambda x: np.abs(x).max(0), avoid=(0.0,)),
    OpCase("norm_2_dim_keepdim", lambda x: x.norm(2, 1, True), ((3, 4),),
           lambda x: np.sqrt((x * x).sum(1, keepdims=True))),
    # an all-zero slice: the gradient is taken as 0 (PyTorch's subgradient), not NaN
    OpCase("norm_2_zero_row", lambda x: x.norm(2, 1), ((3, 4),),
           lambda x: np.sqrt((x * x).sum(1)),
           make=lambda rng: [np.vstack([np.zeros(4), rng.uniform(-2, 2, (2, 4))])],
           double_backward=False),
    OpCase("norm_3_zero_all", lambda x: x.norm(3), ((2, 3),), lambda x: np.zeros(()),
           make=lambda rng: [np.zeros((2, 3))], double_backward=False),
    OpCase("norm_3_dim", lambda x: x.norm(3, 1), ((3, 4),),
           lambda x: (np.abs(x) ** 3).sum(1) ** (1 / 3), avoid=(0.0,)),
    OpCase("max_all", lambda x: x.max(), ((3, 4),), np.max),
    OpCase("min_all", lambda x: x.min(), ((3, 4),), np.min),
    OpCase("max_all_ties", lambda x: x.max(), (fixed([[1.0, 3.0], [3.0, 0.0]]),), np.max,
           double_backward=False),
    OpCase("max_dim", lambda x: x.max(1), ((3, 4),),
           lambda x: (x.max(1), x.argmax(1).astype(np.int64))),
    OpCase("max_dim_keepdim", lambda x: x.max(0, keepdim=True), ((3, 4),),
           lambda x: (x.max(0, keepdims=True), x.argmax(0, keepdims=True).astype(np.int64))),
    OpCase("min_dim", lambda x: x.min(1), ((3, 4),),
           lambda x: (x.min(1), x.argmin(1).astype(np.int64))),
    OpCase("max_dim_size1_axis", lambda x: x.max(1), ((3, 1),),
           lambda x: (x.max(1), x.argmax(1).astype(np.int64))),
    OpCase("max_dim_0d", lambda x: x.max(0), ((),),
           lambda x: (x, np.array(0, dtype=np.int64))),
    OpCase("amax_dim", lambda x: x.amax(1), ((3, 4),), lambda x: x.max(1)),
    OpCase("amin_dims", lambda x: x.amin((0, 2)), ((2, 3, 2),), lambda x: x.min((0, 2))),
    OpCase("amax_keepdim", lambda x: x.amax(0, keepdim=True), ((3, 4),),
           lambda x: x.max(0, keepdims=True)),
    OpCase("amax_0d", lambda x: x.amax(), ((),), np.max),
    # exactly two tied extremes per row: the even split equals the central difference
    OpCase("amax_ties", lambda x: x.amax(1), (fixed(_TIED_MAX),), lambda x: x.max(1),
           double_backward=False),
    OpCase("amin_ties", lambda x: x.amin(1), (fixed(np.negative(_TIED_MAX)),),
           lambda x: x.min(1), double_backward=False),
    OpCase("argmax_dim", lambda x: x.argmax(1), ((3, 4),),
           lambda x: x.argmax(1).astype(np.int64), differentiable=False),
    OpCase("argmax_all", lambda x: x.argmax(), ((3, 4),),
           lambda x: np.int64(x.argmax()), differentiable=False),
    OpCase("argmin_keepdim", lambda x: x.argmin(0, keepdim=True), ((3, 4),),
           lambda x: x.argmin(0, keepdims=True).astype(np.int64), differentiable=False),
    OpCase("logsumexp_dim", lambda x: x.logsumexp(1), ((3, 4),),
           lambda x: np.log(np.exp(x).sum(1))),
    OpCase("logsumexp_all", lambda x: x.logsumexp(), ((3, 4),), lambda x: np.log(np.exp(x).sum()),
           torch_fn=lambda x: torch.logsumexp(x, dim=(0, 1))),
    OpCase("logsumexp_keepdim", lambda x: x.logsumexp(0, keepdim=True), ((3, 1),),
           lambda x: np.log(np.exp(x).sum(0, keepdims=True))),
    OpCase("logsumexp_0d", lambda x: x.logsumexp(), ((),), lambda x: x,
           torch_fn=lambda x: torch.logsumexp(x, dim=())),
    OpCase("softmax", lambda x: x.softmax(1), ((3, 4),), lambda x: _softmax_ref(x, 1)),
    OpCase("softmax_dim0", lambda x: x.softmax(0), ((2, 3, 2),), lambda x: _softmax_ref(x, 0)),
    OpCase("softmax_size1_axis", lambda x: x.softmax(1), ((3, 1),), lambda x: _softmax_ref(x, 1)),
    OpCase("softmax_0d", lambda x: x.softmax(0), ((),), lambda x: np.ones_like(x)),
    OpCase("log_softmax", lambda x: x.log_softmax(-1), ((3, 4),),
           lambda x: np.log(_softmax_ref(x, -1))),
    OpCase("log_softmax_dim1", lambda x: x.log_softmax(1), ((2, 3, 2),),
           lambda x: np.log(_softmax_ref(x, 1))),
    # the loss primitives NLLLoss (also inside cross_entropy) and BinaryCrossEntropy
    OpCase("nll_loss", lambda x, t: bp.nn.functional.nll_loss(x, t), ((3, 4), fixed([0, 3, 3])),
           _nll_ref, torch_fn=lambda x, t: F.nll_loss(x, t)),
    OpCase("nll_loss_kdim_weight_ignore_none",
           lambda x, t: bp.nn.functional.nll_loss(x, t, bp.tensor(_CLASS_W), reduction="none"),
           ((2, 3, 2), fixed([[0, 2], [1, -100]])),
           lambda x, t: _nll_ref(x, t, _CLASS_W, reduction="none"),
           torch_fn=lambda x, t: F.nll_loss(x, t, torch.tensor(_CLASS_W), reduction="none")),
    OpCase("nll_loss_unbatched_sum", lambda x, t: bp.nn.functional.nll_loss(x, t, reduction="sum"),
           ((3,), fixed(2)), lambda x, t: _nll_ref(x, t, reduction="sum"),
           torch_fn=lambda x, t: F.nll_loss(x, t, reduction="sum")),
    OpCase("nll_loss_size1_class_axis", lambda x, t: bp.nn.functional.nll_loss(x, t),
           ((3, 1), fixed([0, 0, 0])), _nll_ref, torch_fn=lambda x, t: F.nll_loss(x, t)),
    OpCase("cross_entropy_weight_ignore_smoothing",
           lambda x, t: bp.nn.functional.cross_entropy(x, t, bp.tensor(_CLASS_W), ignore_index=1,
                                                       label_smoothing=0.2),
           ((4, 3), fixed([0, 1, 2, 2])),
           lambda x, t: _nll_ref(np.log(_softmax_ref(x, 1)), t, _CLASS_W, 1, smoothing=0.2),
           torch_fn=lambda x, t: F.cross_entropy(x, t, torch.tensor(_CLASS_W), ignore_index=1,
                                                 label_smoothing=0.2)),
    # the fused MseLoss op (input and target both differentiated), and a 0-d input
    OpCase("mse_loss_mean", lambda x, t: bp.nn.functional.mse_loss(x, t), ((4, 3), (4, 3)),
           lambda x, t: np.mean((x - t) ** 2), torch_fn=lambda x, t: F.mse_loss(x, t)),
    OpCase("mse_loss_sum", lambda x, t: bp.nn.functional.mse_loss(x, t, reduction="sum"),
           ((2, 3, 2), (2, 3, 2)), lambda x, t: np.sum((x - t) ** 2),
           torch_fn=lambda x, t: F.mse_loss(x, t, reduction="sum")),
    OpCase("mse_loss_0d", lambda x, t: bp.nn.functional.mse_loss(x, t), ((), ()),
           lambda x, t: (x - t) ** 2, torch_fn=lambda x, t: F.mse_loss(x, t)),
    # the fused CrossEntropy op: every reduction, class dims, ignored positions
    OpCase("cross_entropy", lambda x, t: bp.nn.functional.cross_entropy(x, t),
           ((5, 4), fixed([0, 3, 3, 1, 2])),
           lambda x, t: _nll_ref(np.log(_softmax_ref(x, 1)), t),
           torch_fn=lambda x, t: F.cross_entropy(x, t)),
    OpCase("cross_entropy_kdim_ignore_none",
           lambda x, t: bp.nn.functional.cross_entropy(x, t, ignore_index=2, reduction="none"),
           ((2, 3, 2), fixed([[0, 2], [1, 1]])),
           lambda x, t: _nll_ref(np.log(_softmax_ref(x, 1)), t, None, 2, reduction="none"),
           torch_fn=lambda x, t: F.cross_entropy(x, t, ignore_index=2, reduction="none")),
    OpCase("cross_entropy_unbatched_sum_smoothing",
           lambda x, t: bp.nn.functional.cross_entropy(x, t, reduction="sum",
                                                       label_smoothing=0.1),
           ((4,), fixed(1)),
           lambda x, t: _nll_ref(np.log(_softmax_ref(x, 0)), t, reduction="sum",
                                 smoothing=0.1),
           torch_fn=lambda x, t: F.cross_entropy(x, t, reduction="sum", label_smoothing=0.1)),
    OpCase("cross_entropy_size1_class_axis", lambda x, t: bp.nn.functional.cross_entropy(x, t),
           ((3, 1), fixed([0, 0, 0])), lambda x, t: _nll_ref(np.log(_softmax_ref(x, 1)), t),
           torch_fn=lambda x, t: F.cross_entropy(x, t)),
    OpCase("binary_cross_entropy", lambda x, t: bp.nn.functional.binary_cross_entropy(x, t),
           ((2, 3), uniform((2, 3), 0.0, 1.0)),
           lambda x, t: np.mean(-(t * np.log(x) + (1 - t) * np.log1p(-x))), low=0.05, high=0.95,
           torch_fn=lambda x, t: F.binary_cross_entropy(x, t)),
    OpCase("binary_cross_entropy_0d",
           lambda x, t: bp.nn.functional.binary_cross_entropy(x, t, reduction="none"),
           ((), uniform((), 0.0, 1.0)), lambda x, t: -(t * np.log(x) + (1 - t) * np.log1p(-x)),
           low=0.05, high=0.95,
           torch_fn=lambda x, t: F.binary_cross_entropy(x, t, reduction="none")),
    OpCase("cumsum", lambda x: x.cumsum(1), ((3, 4),), lambda x: np.cumsum(x, 1)),
    OpCase("cumsum_last", lambda x: x.cumsum(-1), ((2, 3, 2),), lambda x: np.cumsum(x, -1)),
    OpCase("cumsum_size1_axis", lambda x: x.cumsum(1), ((3, 1),), lambda x: np.cumsum(x, 1)),
    OpCase("cumsum_0d", lambda x: x.cumsum(0), ((),), lambda x: x.copy()),
]


# --- matrix products ---


def _einsum(name, spec, *shapes) -> OpCase:
    return OpCase(name, lambda *xs: bp.einsum(spec, *xs), shapes,
                  lambda *xs: np.einsum(spec, *xs),
                  torch_fn=lambda *xs: torch.einsum(spec, *xs))


LINALG = [
    OpCase("matmul_2d", lambda a, b: a @ b, ((2, 3), (3, 4)), np.matmul),
    OpCase("matmul_batched_broadcast", lambda a, b: a @ b, ((2, 1, 2, 3), (3, 3, 2)), np.matmul),
    OpCase("matmul_size1_dims", lambda a, b: a @ b, ((1, 3), (3, 1)), np.matmul),
    OpCase("matmul_1d_2d", lambda a, b: a @ b, ((3,), (3, 4)), np.matmul),
    OpCase("matmul_2d_1d", lambda a, b: a @ b, ((2, 3), (3,)), np.matmul),
    OpCase("matmul_1d_1d", lambda a, b: a @ b, ((4,), (4,)), np.matmul),
    OpCase("matmul_1d_batched", lambda a, b: a @ b, ((3,), (2, 3, 2)), np.matmul),
    OpCase("matmul_batched_1d", lambda a, b: a @ b, ((2, 2, 3), (3,)), np.matmul),
    OpCase("matmul_function", bp.matmul, ((2, 3), (3, 2)), np.matmul,
           torch_fn=lambda a, b: torch.matmul(a, b)),
    *(OpCase(f"matmul_transpose_flags_{int(ta)}{int(tb)}",
             lambda a, b, ta=ta, tb=tb: MatMul.apply(a, b, transpose_a=ta, transpose_b=tb),
             ((2, 1, 3, 2) if ta else (2, 1, 2, 3), (3, 4, 3) if tb else (3, 3, 4)),
             lambda a, b, ta=ta, tb=tb: np.matmul(a.swapaxes(-1, -2) if ta else a,
                                                  b.swapaxes(-1, -2) if tb else b),
             torch_fn=None)
      for ta in (False, True) for tb in (False, True)),
    OpCase("linear_addmm", lambda x, w, b: bp.nn.functional.linear(x, w, b), ((4, 3), (2, 3), (2,)),
           lambda x, w, b: x @ w.T + b, torch_fn=lambda x, w, b: F.linear(x, w, b)),
    OpCase("addmm_apply", lambda x, w, b: Addmm.apply(x, w, b), ((1, 3), (5, 3), (5,)),
           lambda x, w, b: x @ w.T + b, torch_fn=lambda x, w, b: F.linear(x, w, b)),
    _einsum("einsum_matmul", "ij,jk->ik", (2, 3), (3, 4)),
    _einsum("einsum_trace", "ii->", (3, 3)),
    _einsum("einsum_sum", "ij->", (2, 3)),
    _einsum("einsum_transpose", "ij->ji", (2, 3)),
    _einsum("einsum_batched", "bij,bjk->bik", (2, 2, 3), (2, 3, 2)),
    _einsum("einsum_ellipsis", "...ij,...jk->...ik", (2, 2, 3), (3, 2)),
    _einsum("einsum_implicit", "ij,jk", (2, 3), (3, 4)),
    _einsum("einsum_outer", "i,j->ij", (3,), (4,)),
    _einsum("einsum_diagonal", "ii->i", (3, 3)),
    _einsum("einsum_partial_sum", "bij->j", (2, 3, 2)),
    _einsum("einsum_three_operands", "ij,jk,k->i", (2, 3), (3, 2), (2,)),
]


# --- shape and indexing ---

_GATHER_INDEX = [[0, 0], [3, 1], [2, 2]]  # repeats within rows: the gradient must accumulate

SHAPE = [
    OpCase("reshape", lambda x: x.reshape(3, -1), ((2, 6),), lambda x: x.reshape(3, -1)),
    OpCase("view_flat", lambda x: x.view(-1), ((2, 3, 2),), lambda x: x.reshape(-1)),
    OpCase("reshape_0d", lambda x: x.reshape(1, 1), ((),), lambda x: x.reshape(1, 1)),
    OpCase("reshape_function", lambda x: bp.reshape(x, (4, 3)), ((3, 4),),
           lambda x: x.reshape(4, 3), torch_fn=lambda x: torch.reshape(x, (4, 3))),
    OpCase("transpose", lambda x: x.transpose(0, 2), ((2, 3, 2),),
           lambda x: x.transpose(2, 1, 0)),
    OpCase("transpose_mT", lambda x: x.mT, ((2, 3, 2),), lambda x: x.swapaxes(-1, -2)),
    OpCase("permute", lambda x: x.permute(2, 0, 1), ((2, 3, 4),),
           lambda x: x.transpose(2, 0, 1)),
    OpCase("squeeze_dim", lambda x: x.squeeze(1), ((2, 1, 3),), lambda x: x.squeeze(1)),
    OpCase("squeeze_all", lambda x: x.squeeze(), ((1, 3, 1),), np.squeeze),
    OpCase("squeeze_dims", lambda x: x.squeeze((0, 2)), ((1, 3, 1, 2),),
           lambda x: x.squeeze((0, 2))),
    OpCase("unsqueeze", lambda x: x.unsqueeze(0), ((2, 3),), lambda x: x[None]),
    OpCase("unsqueeze_last", lambda x: x.unsqueeze(-1), ((2, 3),), lambda x: x[..., None]),
    OpCase("unsqueeze_0d", lambda x: x.unsqueeze(0), ((),), lambda x: x.reshape(1)),
    OpCase("expand", lambda x: x.expand(2, 3, 4), ((3, 1),),
           lambda x: np.broadcast_to(x, (2, 3, 4))),
    OpCase("expand_keep", lambda x: x.expand(-1, 4), ((3, 1),),
           lambda x: np.broadcast_to(x, (3, 4))),
    OpCase("expand_0d", lambda x: x.expand(2, 3), ((),), lambda x: np.broadcast_to(x, (2, 3))),
    OpCase("broadcast_to", lambda x: bp.broadcast_to(x, (2, 3, 4)), ((1, 4),),
           lambda x: np.broadcast_to(x, (2, 3, 4)),
           torch_fn=lambda x: torch.broadcast_to(x, (2, 3, 4))),
    OpCase("flatten", lambda x: x.flatten(), ((2, 3, 2),), lambda x: x.reshape(-1)),
    OpCase("flatten_start1", lambda x: x.flatten(1), ((2, 3, 2),), lambda x: x.reshape(2, -1)),
    OpCase("flatten_end_dim", lambda x: x.flatten(0, 1), ((2, 3, 2),), lambda x: x.reshape(6, 2)),
    OpCase("flatten_0d", lambda x: x.flatten(), ((),), lambda x: x.reshape(1)),
    OpCase("cat", lambda a, b: bp.cat([a, b], 1), ((2, 3), (2, 1)),
           lambda a, b: np.concatenate([a, b], 1), torch_fn=lambda a, b: torch.cat([a, b], 1)),
    OpCase("cat_three", lambda a, b, c: bp.cat([a, b, c]), ((1, 3), (2, 3), (1, 3)),
           lambda a, b, c: np.concatenate([a, b, c]),
           torch_fn=lambda a, b, c: torch.cat([a, b, c])),
    OpCase("stack", lambda a, b: bp.stack([a, b], 1), ((2, 3), (2, 3)),
           lambda a, b: np.stack([a, b], 1), torch_fn=lambda a, b: torch.stack([a, b], 1)),
    OpCase("stack_0d", lambda a, b: bp.stack([a, b]), ((), ()), lambda a, b: np.stack([a, b]),
           torch_fn=lambda a, b: torch.stack([a, b])),
    OpCase("split", lambda x: x.split(2, 1), ((2, 5),), lambda x: tuple(np.split(x, [2, 4], 1))),
    OpCase("split_sections", lambda x: x.split([1, 3], 0), ((4, 2),),
           lambda x: tuple(np.split(x, [1], 0))),
    OpCase("split_last_dim", lambda x: x.split(1, -1), ((2, 3),),
           lambda x: tuple(np.split(x, 3, -1))),
    OpCase("chunk", lambda x: x.chunk(3, 1), ((2, 5),), lambda x: tuple(np.split(x, [2, 4], 1))),
    OpCase("pad", lambda x: bp.pad(x, (1, 2)), ((2, 3),), lambda x: np.pad(x, ((0, 0), (1, 2))),
           torch_fn=lambda x: F.pad(x, (1, 2))),
    OpCase("pad_two_dims_value", lambda x: bp.pad(x, (1, 0, 2, 1), value=0.5), ((2, 3),),
           lambda x: np.pad(x, ((2, 1), (1, 0)), constant_values=0.5),
           torch_fn=lambda x: F.pad(x, (1, 0, 2, 1), value=0.5)),
    OpCase("flip", lambda x: x.flip(0), ((3, 4),), lambda x: x[::-1]),
    OpCase("flip_two_dims", lambda x: x.flip((0, 2)), ((2, 3, 2),), lambda x: x[::-1, :, ::-1]),
    OpCase("gather", lambda x, i: x.gather(1, i), ((3, 4), fixed(_GATHER_INDEX)),
           lambda x, i: _gather_ref(x, 1, i)),
    OpCase("gather_dim0_smaller_index", lambda x, i: x.gather(0, i),
           ((3, 4), fixed([[2, 0], [2, 2]])), lambda x, i: _gather_ref(x, 0, i)),
    OpCase("scatter_add", lambda x, i, s: x.scatter_add(1, i, s),
           ((3, 4), fixed(_GATHER_INDEX), (3, 2)), lambda x, i, s: _scatter_add_ref(x, 1, i, s)),
    OpCase("scatter_add_larger_src", lambda x, i, s: x.scatter_add(0, i, s),
           ((3, 2), fixed([[0, 2], [0, 0]]), (3, 3)),
           lambda x, i, s: _scatter_add_ref(x, 0, i, s),
           torch_fn=None),  # torch's own backward rejects a src larger than index
    OpCase("index_select", lambda x, i: x.index_select(0, i), ((3, 4), fixed([2, 0, 2])),
           lambda x, i: x[i]),
    OpCase("index_select_dim1", lambda x, i: x.index_select(1, i), ((2, 4), fixed([3, 3])),
           lambda x, i: x[:, i]),
    OpCase("index_add", lambda x, i, s: x.index_add(0, i, s), ((3, 2), fixed([2, 0, 2]), (3, 2)),
           lambda x, i, s: _index_add_ref(x, i, s)),
    OpCase("index_add_dim1", lambda x, i, s: x.index_add(1, i, s), ((2, 3), fixed([0, 0]), (2, 2)),
           lambda x, i, s: _index_add_ref(x.T, i, s.T).T),
    OpCase("index_add_alpha", lambda x, i, s: x.index_add(0, i, s, alpha=2.0),
           ((3, 2), fixed([1, 1]), (2, 2)), lambda x, i, s: _index_add_ref(x, i, s, 2.0)),
    OpCase("repeat", lambda x: x.repeat(2, 1), ((2, 3),), lambda x: np.tile(x, (2, 1))),
    OpCase("repeat_new_dims", lambda x: x.repeat(2, 1, 2), ((2, 3),),
           lambda x: np.tile(x, (2, 1, 2))),
    OpCase("tile", lambda x: x.tile((2,)), ((2, 3),), lambda x: np.tile(x, (1, 2))),
    OpCase("tile_0d", lambda x: x.tile((3,)), ((),), lambda x: np.tile(x, 3)),
    OpCase("one_hot", lambda i: bp.one_hot(i, 4), (fixed([0, 3, 1, 3]),),
           lambda i: np.eye(4, dtype=np.int64)[i], differentiable=False,
           torch_fn=lambda i: F.one_hot(i, 4)),
    OpCase("getitem_slices", lambda x: x[1:3, ::2], ((4, 5),), lambda x: x[1:3, ::2]),
    OpCase("getitem_negative_step", lambda x: x[::-1, 1:], ((3, 4),), lambda x: x[::-1, 1:],
           torch_fn=lambda x: x.flip(0)[:, 1:]),
    OpCase("getitem_negative_step_stride", lambda x: x[::-2], ((5, 2),), lambda x: x[::-2],
           torch_fn=lambda x: x.flip(0)[::2]),
    OpCase("getitem_none_ellipsis", lambda x: x[None, ..., 1], ((2, 3, 2),),
           lambda x: x[None, ..., 1]),
    OpCase("getitem_int", lambda x: x[1], ((3, 4),), lambda x: x[1]),
    OpCase("getitem_int_to_0d", lambda x: x[-1, 2], ((3, 4),), lambda x: x[-1, 2]),
    OpCase("getitem_int_array_repeated", lambda x, i: x[i], ((3, 3), fixed([0, 2, 0, 0])),
           lambda x, i: x[i]),
    OpCase("getitem_list_repeated", lambda x: x[[0, 0, 2]], ((3, 2),), lambda x: x[[0, 0, 2]]),
    OpCase("getitem_int_arrays_pair", lambda x, i, j: x[i, j],
           ((3, 4), fixed([0, 2, 0, 0]), fixed([1, 3, 1, 2])), lambda x, i, j: x[i, j]),
    OpCase("getitem_int_array_and_slice", lambda x, i: x[i, 1:], ((3, 4), fixed([2, 2, 0])),
           lambda x, i: x[i, 1:]),
    OpCase("getitem_bool_mask", lambda x, m: x[m], ((3, 4), mask((3, 4))), lambda x, m: x[m]),
    OpCase("getitem_function", lambda x: bp.getitem(x, (slice(None), 0)), ((3, 4),),
           lambda x: x[:, 0], torch_fn=lambda x: x[:, 0]),
    OpCase("setitem_slice", _set_slice, ((4, 3), (2, 3)), _setitem_ref(slice(1, 3))),
    OpCase("setitem_broadcast", _set_slice, ((4, 3), (3,)), _setitem_ref(slice(1, 3))),
    OpCase("setitem_0d_value", _set_point, ((3, 4), ()), _setitem_ref((1, 2))),
    OpCase("setitem_int_array", _set_rows, ((4, 3), (2, 3), fixed([2, 0])),
           lambda x, v, i: _setitem_ref(i)(x, v)),
    OpCase("setitem_mask_scalar", _set_masked, ((3, 4), mask((3, 4))),
           lambda x, m: np.where(m, 0.0, x)),
    OpCase("inplace_mul_through_slice", _mul_through_slice, ((4, 3), (3,)), _ref_mul_slice),
    OpCase("inplace_mul_through_reshape_transpose", _mul_through_reshape_transpose, ((2, 3),),
           _ref_mul_reshape),
    OpCase("inplace_through_another_view", _exp_through_row_then_read_other_view, ((2, 3),),
           _ref_other_view, torch_fn=None),
    OpCase("inplace_kernels_no_grad", _kernels, ((3, 3), (3,)), _ref_kernels,
           differentiable=False, torch_fn=None),
    OpCase("inplace_activation_kernels_no_grad", _activation_kernels, ((2, 3),),
           _ref_activation_kernels, differentiable=False, torch_fn=None),
    # relu_ recorded on a tensor made by an op: one pass in its memory (ReluInplace)
    OpCase("inplace_relu_recorded", lambda x: bp.nn.functional.relu(x * 1.0, inplace=True),
           ((2, 3),), lambda x: np.maximum(x, 0), avoid=(0.0,),
           torch_fn=lambda x: F.relu(x * 1.0, inplace=True)),
    OpCase("inplace_elu_recorded", lambda x: bp.nn.functional.elu(x * 1.0, 0.5, inplace=True),
           ((2, 3),), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), avoid=(0.0,),
           torch_fn=lambda x: F.elu(x * 1.0, 0.5, inplace=True)),
    OpCase("diagonal", lambda x: x.diagonal(), ((3, 4),), lambda x: np.diagonal(x).copy()),
    OpCase("diagonal_offset_dims", lambda x: x.diagonal(1, 2, 0), ((3, 2, 4),),
           lambda x: np.diagonal(x, 1, 2, 0).copy()),
    OpCase("diagonal_negative_offset", lambda x: x.diagonal(-1), ((3, 3),),
           lambda x: np.diagonal(x, -1).copy()),
    OpCase("narrow", lambda x: x.narrow(1, 1, 2), ((2, 4),), lambda x: x[:, 1:3]),
    OpCase("select", lambda x: x.select(1, -1), ((2, 3, 2),), lambda x: x[:, -1]),
    OpCase("unflatten", lambda x: x.unflatten(1, (2, 3)), ((2, 6),),
           lambda x: x.reshape(2, 2, 3)),
    OpCase("dropout_seeded", _seeded_dropout, ((3, 4),), _ref_seeded_dropout, torch_fn=None),
    OpCase("eq_ne", lambda a, b: (a == b, a != b), ((2, 3), (3,)),
           lambda a, b: (a == b, a != b), differentiable=False),
    OpCase("lt_le_gt_ge", lambda a, b: (a < b, a <= b, a > b, a >= b), ((2, 3), (2, 3)),
           lambda a, b: (a < b, a <= b, a > b, a >= b), differentiable=False),
    OpCase("logical", lambda a: (~(a > 0), (a > 0) & (a < 1), (a > 1) | (a < -1)), ((2, 3),),
           lambda a: (~(a > 0), (a > 0) & (a < 1), (a > 1) | (a < -1)), differentiable=False),
    OpCase("bitwise_not_int", lambda i: ~i, (fixed([0, 3, -2]),), lambda i: ~i,
           differentiable=False),
    OpCase("any_all", lambda a: ((a > 1).any(), (a > -3).all(), (a > 0).any(1)), ((2, 3),),
           lambda a: ((a > 1).any(), (a > -3).all(), (a > 0).any(1)), differentiable=False),
    OpCase("to_float32", lambda x: x.to(bp.float32), ((2, 3),), lambda x: x.astype(np.float32),
           out_dtype=np.float32, eps=1e-2, atol=1e-4, fwd_atol=0, fwd_rtol=0,
           torch_fn=lambda x: x.to(torch.float32)),
    OpCase("to_float64", lambda x: x.to(bp.float64), ((2, 3),), lambda x: x.astype(np.float64),
           out_dtype=np.float64, torch_fn=lambda x: x.to(torch.float64)),
]


CASES: list[OpCase] = UNARY + BINARY + REDUCTIONS + LINALG + SHAPE


# --- convolution and pooling (issue 5): loop references over output positions ---


def _pair2(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    (sh, sw), (dh, dw) = _pair2(stride), _pair2(dilation)
    o, cg, kh, kw = w.shape
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        ph, pw = _pair2(padding)
        pads = ((ph, ph), (pw, pw))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((x.shape[0], o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                       j * sw : j * sw + dw * (kw - 1) + 1 : dw]
            for g in range(groups):
                y[:, g * og : (g + 1) * og, i, j] = np.einsum(
                    "nckl,ockl->no", patch[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def _conv_transpose2d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                          dilation=1):
    (sh, sw), (dh, dw) = _pair2(stride), _pair2(dilation)
    (ph, pw), (oph, opw) = _pair2(padding), _pair2(output_padding)
    n, c, h, wd = x.shape
    cg, og, kh, kw = c // groups, w.shape[1], w.shape[2], w.shape[3]
    full = np.zeros((n, og * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oph,
                     (wd - 1) * sw + dw * (kw - 1) + 1 + opw))
    for i in range(h):
        for j in range(wd):
            for g in range(groups):
                full[:, g * og : (g + 1) * og, i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                     j * sw : j * sw + dw * (kw - 1) + 1 : dw] += np.einsum(
                    "nc,cokl->nokl", x[:, g * cg : (g + 1) * cg, i, j], w[g * cg : (g + 1) * cg])
    y = full[:, :, ph : full.shape[2] - ph, pw : full.shape[3] - pw]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def _max_pool2d_ref(x, kernel_size, stride=None, padding=0, dilation=1, return_indices=False):
    (kh, kw) = _pair2(kernel_size)
    (sh, sw) = _pair2(stride if stride is not None else kernel_size)
    (ph, pw), (dh, dw) = _pair2(padding), _pair2(dilation)
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y, idx = np.zeros((n, c, oh, ow)), np.zeros((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                     j * sw : j * sw + dw * (kw - 1) + 1 : dw].reshape(n, c, -1)
            a = win.argmax(-1)
            y[:, :, i, j] = win.max(-1)
            idx[:, :, i, j] = (i * sh - ph + (a // kw) * dh) * w + j * sw - pw + (a % kw) * dw
    return (y, idx) if return_indices else y


def _avg_pool2d_ref(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    (kh, kw) = _pair2(kernel_size)
    (sh, sw) = _pair2(stride if stride is not None else kernel_size)
    ph, pw = _pair2(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ones = np.pad(np.ones(x.shape[2:]), ((ph, ph), (pw, pw)))
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            div = kh * kw if count_include_pad else ones[rows, cols].sum()
            y[:, :, i, j] = xp[:, :, rows, cols].sum((2, 3)) / div
    return y


def _adaptive_avg_pool2d_ref(x, output_size):
    oh, ow = _pair2(output_size)
    h, w = x.shape[2:]
    y = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * h // oh, -(-(i + 1) * h // oh))
            cols = slice(j * w // ow, -(-(j + 1) * w // ow))
            y[:, :, i, j] = x[:, :, rows, cols].mean((2, 3))
    return y


def _nnf(name, **kw):
    """``nn.functional.<name>(*inputs, **kw)`` in backprop, and the same call in torch."""
    return (lambda *a: getattr(bp.nn.functional, name)(*a, **kw),
            lambda *a: getattr(F, name)(*a, **kw))


def _conv_case(name, shapes, ref, fn_name, **kw) -> OpCase:
    fn, torch_fn = _nnf(fn_name, **kw)
    return OpCase(name, fn, shapes, lambda *a: ref(*a, **kw), torch_fn=torch_fn,
                  fwd_atol=1e-12, fwd_rtol=1e-9)


def _distinct_2x4x5x5(rng):
    """(2, 4, 5, 5) values 0.02 apart: no ties for max pooling, none within gradcheck's eps."""
    return rng.permutation(2 * 4 * 5 * 5).reshape(2, 4, 5, 5) / 50.0 - 2

CONV_POOL = [
    _conv_case("conv2d", ((2, 3, 5, 5), (4, 3, 3, 3)), _conv2d_ref, "conv2d"),
    _conv_case("conv2d_bias_stride_pad", ((2, 3, 5, 6), (4, 3, 3, 2), (4,)), _conv2d_ref,
               "conv2d", stride=2, padding=1),
    _conv_case("conv2d_dilation_groups", ((1, 4, 6, 6), (6, 2, 2, 3)), _conv2d_ref, "conv2d",
               dilation=(2, 1), groups=2, stride=(1, 2), padding=(1, 0)),
    _conv_case("conv2d_same_even_kernel", ((1, 2, 4, 5), (3, 2, 2, 2), (3,)), _conv2d_ref,
               "conv2d", padding="same"),
    _conv_case("conv2d_depthwise", ((2, 3, 4, 4), (3, 1, 3, 3)), _conv2d_ref, "conv2d",
               groups=3, padding=1),
    _conv_case("conv1d", ((2, 3, 7), (4, 3, 3), (4,)),
               lambda x, w, b, **kw: _conv2d_ref(x[:, :, None], w[:, :, None], b, stride=(1, 2),
                                                 padding=(0, 1), dilation=(1, 2))[:, :, 0],
               "conv1d", stride=2, padding=1, dilation=2),
    _conv_case("conv_transpose2d", ((2, 3, 3, 3), (3, 2, 3, 3), (2,)), _conv_transpose2d_ref,
               "conv_transpose2d"),
    _conv_case("conv_transpose2d_stride_pad_outpad", ((1, 4, 3, 2), (4, 1, 3, 2)),
               _conv_transpose2d_ref, "conv_transpose2d", stride=(2, 3), padding=1,
               output_padding=(1, 2), groups=2, dilation=(1, 2)),
    _conv_case("max_pool2d", (_distinct_2x4x5x5,), _max_pool2d_ref, "max_pool2d", kernel_size=2),
    _conv_case("max_pool2d_overlap_pad_dilation", (_distinct_2x4x5x5,), _max_pool2d_ref,
               "max_pool2d", kernel_size=(3, 2), stride=1, padding=1, dilation=(1, 2)),
    _conv_case("max_pool2d_return_indices", (_distinct_2x4x5x5,), _max_pool2d_ref, "max_pool2d",
               kernel_size=3, stride=2, padding=1, return_indices=True),
    _conv_case("max_pool1d", (lambda rng: rng.permutation(24).reshape(2, 3, 4) / 6.0,),
               lambda x, **kw: _max_pool2d_ref(x[:, :, None], (1, 3), (1, 1), (0, 1))[:, :, 0],
               "max_pool1d", kernel_size=3, stride=1, padding=1),
    _conv_case("avg_pool2d", ((2, 3, 4, 4),), _avg_pool2d_ref, "avg_pool2d", kernel_size=2),
    _conv_case("avg_pool2d_pad_exclude", ((1, 2, 5, 4),), _avg_pool2d_ref, "avg_pool2d",
               kernel_size=3, stride=2, padding=1, count_include_pad=False),
    _conv_case("adaptive_avg_pool2d", ((2, 2, 5, 7),), _adaptive_avg_pool2d_ref,
               "adaptive_avg_pool2d", output_size=(3, 4)),
]

CASES += CONV_POOL


# --- recurrent kernels (issue 5) ---


def _sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


def _lstm_step_ref(xg, h, c, w):
    pre = xg + h @ w.T
    i, f, g, o = np.split(pre, 4, axis=1)
    c_new = _sigmoid_ref(f) * c + _sigmoid_ref(i) * np.tanh(g)
    return _sigmoid_ref(o) * np.tanh(c_new), c_new


def _lstm_step_torch(xg, h, c, w):
    i, f, g, o = (xg + h @ w.T).chunk(4, 1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c_new.tanh(), c_new


def _lstm_step(xg, h, c, w):
    from backprop.ops.recurrent import LSTMCellStep

    return LSTMCellStep.apply(xg, h, c, w)


def _unbind(x):
    return bp.ops.recurrent.unbind(x)


RECURRENT = [
    OpCase("lstm_cell_step", _lstm_step, ((2, 12), (2, 3), (2, 3), (12, 3)), _lstm_step_ref,
           fwd_atol=1e-12, fwd_rtol=1e-9, torch_fn=_lstm_step_torch),
    OpCase("lstm_cell_step_one_unit", _lstm_step, ((1, 4), (1, 1), (1, 1), (4, 1)),
           _lstm_step_ref, fwd_atol=1e-12, fwd_rtol=1e-9, torch_fn=_lstm_step_torch),
    OpCase("unbind", _unbind, ((3, 2, 4),), lambda x: tuple(x),
           torch_fn=lambda x: torch.unbind(x)),
    OpCase("stack_steps", lambda *xs: bp.ops.recurrent.Stack.apply(*xs), ((2, 3),) * 3,
           lambda *xs: np.stack(xs), torch_fn=lambda *xs: torch.stack(xs)),
    OpCase("unbind_dim1", lambda x: bp.ops.recurrent.unbind(x, 1), ((2, 3),),
           lambda x: tuple(x.T), torch_fn=lambda x: torch.unbind(x, 1)),
]

CASES += RECURRENT


def _lstm_layer(reverse=False, outputs=(0, 1, 2)):
    """LSTMLayer on (xg, h0, c0, w_hh), keeping only ``outputs`` (the others get zero grads)."""

    def fn(xg, h, c, w):
        from backprop.ops.recurrent import LSTMLayer

        out = LSTMLayer.apply(xg, h, c, w, reverse=reverse)
        return tuple(out[k] for k in outputs)

    def ref(xg, h, c, w):
        hs = [None] * xg.shape[0]
        for t in (range(xg.shape[0] - 1, -1, -1) if reverse else range(xg.shape[0])):
            h, c = _lstm_step_ref(xg[t], h, c, w)
            hs[t] = h
        out = (np.stack(hs), h, c)
        return tuple(out[k] for k in outputs)

    def torch_fn(xg, h, c, w):
        hs = [None] * xg.shape[0]
        for t in (range(xg.shape[0] - 1, -1, -1) if reverse else range(xg.shape[0])):
            h, c = _lstm_step_torch(xg[t], h, c, w)
            hs[t] = h
        out = (torch.stack(hs), h, c)
        return tuple(out[k] for k in outputs)

    return fn, ref, torch_fn


def _lstm_layer_case(name, shapes, **kw):
    fn, ref, torch_fn = _lstm_layer(**kw)
    return OpCase(name, fn, shapes, ref, fwd_atol=1e-12, fwd_rtol=1e-9, torch_fn=torch_fn)


_LSTM_LAYER_SHAPES = ((3, 2, 8), (2, 2), (2, 2), (8, 2))  # T=3, N=2, H=2

LSTM_LAYER = [
    _lstm_layer_case("lstm_layer", _LSTM_LAYER_SHAPES),
    _lstm_layer_case("lstm_layer_reverse", _LSTM_LAYER_SHAPES, reverse=True),
    # only hs used: the final-state gradients arrive as zeros
    _lstm_layer_case("lstm_layer_hs_only", _LSTM_LAYER_SHAPES, outputs=(0,)),
    _lstm_layer_case("lstm_layer_reverse_hs_only", _LSTM_LAYER_SHAPES, reverse=True,
                     outputs=(0,)),
    # only the final states used: no gradient through hs
    _lstm_layer_case("lstm_layer_final_state_only", _LSTM_LAYER_SHAPES, outputs=(1, 2)),
    _lstm_layer_case("lstm_layer_one_step_one_unit", ((1, 3, 4), (3, 1), (3, 1), (4, 1))),
]

CASES += LSTM_LAYER


def _gru_step_ref(xg, h, w, b):
    hg = h @ w.T + (0.0 if b is None else b)
    n = h.shape[1]
    r = _sigmoid_ref(xg[:, :n] + hg[:, :n])
    z = _sigmoid_ref(xg[:, n : 2 * n] + hg[:, n : 2 * n])
    cand = np.tanh(xg[:, 2 * n :] + r * hg[:, 2 * n :])
    return (1 - z) * cand + z * h


def _gru_step_torch(xg, h, w, b):
    hg = h @ w.T + (0.0 if b is None else b)
    xr, xz, xn = xg.chunk(3, 1)
    hr, hz, hn = hg.chunk(3, 1)
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    cand = (xn + r * hn).tanh()
    return (1 - z) * cand + z * h


def _gru_layer(reverse=False, outputs=(0, 1), bias=True):
    """GRULayer on (xg, h0, w_hh[, b_hh]), keeping only ``outputs``."""

    def fn(xg, h, w, *b):
        from backprop.ops.recurrent import GRULayer

        out = GRULayer.apply(xg, h, w, b[0] if bias else None, reverse=reverse)
        return tuple(out[k] for k in outputs)

    def loop(step, stack):
        def run(xg, h, w, *b):
            hs = [None] * xg.shape[0]
            for t in (range(xg.shape[0] - 1, -1, -1) if reverse else range(xg.shape[0])):
                h = step(xg[t], h, w, b[0] if bias else None)
                hs[t] = h
            out = (stack(hs), h)
            return tuple(out[k] for k in outputs)
        return run

    return fn, loop(_gru_step_ref, np.stack), loop(_gru_step_torch, lambda hs: torch.stack(hs))


def _gru_layer_case(name, shapes, **kw):
    fn, ref, torch_fn = _gru_layer(**kw)
    return OpCase(name, fn, shapes, ref, fwd_atol=1e-12, fwd_rtol=1e-9, torch_fn=torch_fn)


_GRU_LAYER_SHAPES = ((3, 2, 6), (2, 2), (6, 2), (6,))  # T=3, N=2, H=2

GRU_LAYER = [
    _gru_layer_case("gru_layer", _GRU_LAYER_SHAPES),
    _gru_layer_case("gru_layer_reverse", _GRU_LAYER_SHAPES, reverse=True),
    _gru_layer_case("gru_layer_no_bias", _GRU_LAYER_SHAPES[:3], bias=False),
    _gru_layer_case("gru_layer_hs_only", _GRU_LAYER_SHAPES, outputs=(0,)),
    _gru_layer_case("gru_layer_reverse_final_state_only", _GRU_LAYER_SHAPES, reverse=True,
                    outputs=(1,)),
    _gru_layer_case("gru_layer_one_step_one_unit", ((1, 3, 3), (3, 1), (3, 1), (3,))),
]

CASES += GRU_LAYER


def _rnn_layer(act="tanh", reverse=False, outputs=(0, 1)):
    """RNNLayer on (xg, h0, w_hh), keeping only ``outputs``."""

    def fn(xg, h, w):
        from backprop.ops.recurrent import RNNLayer

        out = RNNLayer.apply(xg, h, w, nonlinearity=act, reverse=reverse)
        return tuple(out[k] for k in outputs)

    def loop(f, stack):
        def run(xg, h, w):
            hs = [None] * xg.shape[0]
            for t in (range(xg.shape[0] - 1, -1, -1) if reverse else range(xg.shape[0])):
                h = f(xg[t] + h @ w.T)
                hs[t] = h
            out = (stack(hs), h)
            return tuple(out[k] for k in outputs)
        return run

    ref_act = np.tanh if act == "tanh" else (lambda v: np.maximum(v, 0))
    torch_act = (lambda v: v.tanh()) if act == "tanh" else (lambda v: v.relu())
    return fn, loop(ref_act, np.stack), loop(torch_act, lambda hs: torch.stack(hs))


def _rnn_layer_case(name, shapes, **kw):
    fn, ref, torch_fn = _rnn_layer(**kw)
    # relu: inputs away from the kink are not guaranteed through a recurrence, so no
    # second-order check there (relu's second derivative is zero almost everywhere anyway)
    return OpCase(name, fn, shapes, ref, fwd_atol=1e-12, fwd_rtol=1e-9, torch_fn=torch_fn,
                  double_backward=kw.get("act", "tanh") == "tanh")


_RNN_LAYER_SHAPES = ((3, 2, 3), (2, 3), (3, 3))  # T=3, N=2, H=3

RNN_LAYER = [
    _rnn_layer_case("rnn_layer_tanh", _RNN_LAYER_SHAPES),
    _rnn_layer_case("rnn_layer_tanh_reverse", _RNN_LAYER_SHAPES, reverse=True),
    _rnn_layer_case("rnn_layer_tanh_hs_only", _RNN_LAYER_SHAPES, outputs=(0,)),
    _rnn_layer_case("rnn_layer_relu", _RNN_LAYER_SHAPES, act="relu"),
    _rnn_layer_case("rnn_layer_relu_reverse_final_only", _RNN_LAYER_SHAPES, act="relu",
                    reverse=True, outputs=(1,)),
    _rnn_layer_case("rnn_layer_one_step_one_unit", ((1, 3, 1), (3, 1), (1, 1))),
]

CASES += RNN_LAYER


# --- normalisation kernels: BatchNorm with batch statistics (y, mean, biased variance) ---


def _bn_dims(ndim: int) -> tuple:
    return (0,) + tuple(range(2, ndim))


def _batch_norm_ref(x, w=None, b=None, eps=1e-5):
    dims = _bn_dims(x.ndim)
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    mu, var = x.mean(dims), x.var(dims)
    y = (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    y = y if w is None else y * w.reshape(shape)
    return (y if b is None else y + b.reshape(shape)), mu, var


def _batch_norm_torch(x, w=None, b=None, eps=1e-5):
    dims = _bn_dims(x.ndim)
    return (F.batch_norm(x, None, None, w, b, training=True, eps=eps),
            x.mean(dims), x.var(dims, unbiased=False))


def _bn_case(name, shapes, affine="wb", eps=1e-5, **kw):
    """A BatchNorm case; ``affine`` names the optional inputs: w (weight), b (bias)."""

    def split(args):
        x, rest = args[0], list(args[1:])
        w = rest.pop(0) if "w" in affine else None
        b = rest.pop(0) if "b" in affine else None
        return x, w, b

    def fn(*args):
        x, w, b = split(args)
        return bp.ops.nn_ops.batch_norm_train(x, w, b, eps)

    return OpCase(name, fn, shapes, lambda *a: _batch_norm_ref(*split(a), eps),
                  torch_fn=lambda *a: _batch_norm_torch(*split(a), eps), **kw)


NORMALIZATION = [
    _bn_case("batch_norm_nc", ((5, 3), (3,), (3,))),
    _bn_case("batch_norm_ncl", ((4, 3, 5), (3,), (3,))),
    _bn_case("batch_norm_nchw", ((3, 2, 3, 4), (2,), (2,))),
    _bn_case("batch_norm_nchw_no_affine", ((2, 3, 2, 3),), affine=""),
    _bn_case("batch_norm_ncl_weight_only", ((3, 2, 4), (2,)), affine="w", eps=1e-3),
    _bn_case("batch_norm_nc_bias_only", ((6, 2), (2,)), affine="b"),
    # a mean far from zero (|μ| ≫ σ): the two-pass variance must not cancel
    _bn_case("batch_norm_ncl_offset_mean", ((4, 2, 3), uniform((2,), -2, 2),
                                            uniform((2,), -2, 2)), low=99.0, high=101.0),
]

CASES += NORMALIZATION

# --- the PyTorch-compatibility ops (issue 15) live in their own table ---

from .cases_pytorch import PYTORCH_OPS  # noqa: E402

CASES += PYTORCH_OPS
