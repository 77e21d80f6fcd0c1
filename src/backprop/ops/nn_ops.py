"""Fused neural-network kernels, each with a stated reason for being one op."""

from __future__ import annotations

import numpy as np

from backprop import _fast
from backprop import random as _random
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _state
from backprop.ops._util import norm_dim
from backprop.tensor import Tensor


def _log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """x - logsumexp(x) along ``dim``, shifted by the max so ±1e4 stays finite (one buffer:
    the shift, the exponentials and the result reuse it)."""
    y = x - np.max(x, axis=dim, keepdims=True)
    e = np.exp(y)
    y -= np.log(np.sum(e, axis=dim, keepdims=True))
    return y


class LogSoftmax(Function):
    """y = x - logsumexp(x) along dim;  ∂L/∂x = g - eʸ·Σ g.  Fused for stability and speed: the
    shift by the max keeps ±1e4 logits finite, and the backward needs only the output."""

    @staticmethod
    def forward(ctx, x, dim=-1):
        y = _log_softmax(x, dim)
        ctx.dim = dim
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out - exp(y) * sum(grad_out, ctx.dim, keepdim=True)


def log_softmax(input, dim: int = -1) -> Tensor:
    """ln softmax(x) along ``dim``, stable for any finite input. Shape: unchanged.

    Example:
        >>> import backprop as bp
        >>> bp.log_softmax(bp.tensor([0.0, 1e4]), dim=0)
        tensor([-10000.,      0.])
    """
    return LogSoftmax.apply(input, dim=norm_dim("log_softmax", dim, input.ndim))


def softmax(input, dim: int = -1) -> Tensor:
    """e^(xᵢ) / Σⱼ e^(xⱼ) along ``dim``, computed as exp(log_softmax) so ±1e4 inputs stay finite.

    Example:
        >>> import backprop as bp
        >>> bp.softmax(bp.tensor([1e4, 1e4]), dim=0)
        tensor([0.5, 0.5])
    """
    return exp(log_softmax(input, dim))


# --- losses ---


# Primitive for speed: the loss is linear in x with a coefficient fixed by the targets, so backward
# is one multiply, not a gather/mask/weight/sum/divide chain; after the fused LogSoftmax (stable at
# ±1e4) it is cross_entropy, the decomposition PyTorch uses.
class NLLLoss(Function):
    """Negative log-likelihood of class ``target`` (a constant int array) under log-probabilities
    x of shape (C,), (N, C) or (N, C, d1, ...), classes on dim 1 (dim 0 for (C,)).

    Per position n with tₙ ≠ ignore_index:
    yₙ = -[(1 - ε)·w_tₙ·x[n, tₙ] + (ε/C)·Σ_c w_c·x[n, c]], else yₙ = 0 (ε: label smoothing,
    w: class weights, 1 when absent). reduction 'none' gives y, 'sum' Σ yₙ, 'mean' Σ yₙ / D with
    D = Σ w_tₙ over the non-ignored positions (PyTorch's weighted mean).
    ∂y/∂x[n, c] = -[(1 - ε)·w_c·[c = tₙ] + (ε/C)·w_c] (÷ D for 'mean'; 0 where tₙ is ignored).
    """

    @staticmethod
    def forward(ctx, x, target=None, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
        cdim = 1 if x.ndim > 1 else 0
        ignored = target == ignore_index
        if not ignored.any():
            ignored = None  # the usual case: no masking work below
        safe = target if ignored is None else np.where(ignored, 0, target)  # any valid class
        # x[n, tₙ, d1, ...] for every position: sparse aranges plus the targets on the class dim
        at = list(np.indices(target.shape, sparse=True))
        at.insert(cdim, safe)
        at = tuple(at)
        w_t = np.ones(target.shape, x.dtype) if weight is None else weight[safe]
        y = x[at] if ignored is None else np.where(ignored, 0, x[at])  # never 0·(-inf)
        y = y * w_t if weight is not None else y
        if label_smoothing:
            xw = x if weight is None else x * _class_shape(weight, x.ndim, cdim)
            smooth = np.sum(xw, axis=cdim) * (label_smoothing / x.shape[cdim])
            y = y * (1 - label_smoothing) + smooth
        if ignored is not None:
            w_t = np.where(ignored, 0, w_t)
            y = np.where(ignored, 0, y)
        ctx.x_shape, ctx.cdim, ctx.at, ctx.ignored, ctx.w_t = x.shape, cdim, at, ignored, w_t
        ctx.weight, ctx.reduction, ctx.smoothing = weight, reduction, label_smoothing
        if reduction == "none":
            return -y
        if reduction == "sum":
            return -np.sum(y)
        ctx.total = np.sum(w_t)
        with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan, as PyTorch
            return -np.sum(y) / ctx.total

    @staticmethod
    def backward(ctx, grad_out):
        coef = NLLLoss.coefficients(ctx, grad_out.dtype)
        if ctx.reduction == "none":
            grad_out = unsqueeze(grad_out, ctx.cdim)
        return grad_out * const(-coef)

    @staticmethod
    def coefficients(ctx, dtype) -> np.ndarray:
        """-∂y/∂x of the forward that filled ``ctx`` (x's shape): a constant of the targets and
        weights, so the gradient built from it stays differentiable."""
        cdim, eps = ctx.cdim, ctx.smoothing
        if ctx.at is None:  # the fast forward (_fast_cross_entropy) left them to be built here
            ctx.at = (np.arange(ctx.x_shape[0]), ctx.target)
            ctx.w_t = np.ones(ctx.target.shape, dtype)
        with np.errstate(divide="ignore", invalid="ignore"):  # D = 0: nan, as PyTorch
            scale = 1 / ctx.total if ctx.reduction == "mean" else 1
            coef = np.zeros(ctx.x_shape, dtype)
            at_target = ctx.w_t * ((1 - eps) * scale)
            if ctx.ignored is not None:  # 0 there, not 0·∞ when all are ignored
                at_target = np.where(ctx.ignored, 0, at_target)
            coef[ctx.at] = at_target
            if eps:
                w = 1 if ctx.weight is None else _class_shape(ctx.weight, coef.ndim, cdim)
                spread = w * (eps / coef.shape[cdim] * scale)
                if ctx.ignored is not None:
                    spread = np.where(np.expand_dims(ctx.ignored, cdim), 0, spread)
                coef += spread
        return coef


class CrossEntropy(Function):
    """Cross-entropy of class-index targets from logits: ``NLLLoss(LogSoftmax(x))`` as one op.

    y is NLLLoss's (weights, ignore_index, label smoothing, reductions alike) of
    ln p = x - logsumexp(x) along the class dim (stable for ±1e4 logits). With k = -∂y/∂ln p
    (NLLLoss's constant coefficients), ∂L/∂x = g·(p·Σ_c k - k): for plain targets and 'mean',
    (softmax(x) - onehot(t)) / N, the classic result. Fused because the two ops' backward is six
    tensor ops over (N, C) with a Python dispatch each, where this is three in-place passes; the
    loss is then one node of the graph, named as what it computes. Under ``create_graph`` the
    gradient is rebuilt from tensor ops (a recomputed log_softmax), so it is differentiable.
    """

    @staticmethod
    def forward(ctx, x, target=None, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
        ctx.save_for_backward(x)
        if weight is None and not label_smoothing:
            y = _fast_cross_entropy(ctx, x, target, ignore_index, reduction)
            if y is not None:
                return y
        cdim = 1 if x.ndim > 1 else 0
        logp = _log_softmax(x, cdim)
        y = NLLLoss.forward(ctx, logp, target, weight, ignore_index, reduction, label_smoothing)
        ctx.logp = logp
        ctx.fast = None
        return y

    @staticmethod
    def backward(ctx, grad_out):
        if not _state.grad_enabled:
            p = fast_cross_entropy_grad(ctx, grad_out.data)
            if p is not None:
                return const(p)
        cdim = ctx.cdim
        coef = NLLLoss.coefficients(ctx, grad_out.dtype)
        if ctx.reduction == "none":
            grad_out = unsqueeze(grad_out, cdim)
        if _state.grad_enabled:  # create_graph: the softmax must be a function of x
            (x,) = ctx.saved_tensors
            g = grad_out * const(-coef)
            return g - exp(log_softmax(x, cdim)) * sum(g, cdim, keepdim=True)
        with np.errstate(invalid="ignore"):  # all positions ignored: nan, as NLLLoss gives
            p = np.exp(ctx.logp)
            p *= np.sum(coef, axis=cdim, keepdims=True)
            p -= coef
            p *= grad_out.data
        return const(p)


def _fast_cross_entropy(ctx, x, target, ignore_index, reduction):
    """CrossEntropy's forward by the fast path's kernels (``_fast/loss.py``, the same bits as
    the NumPy path) for unweighted, unsmoothed (N, C) logits whose targets are all class
    indices (none ignored); None when they do not apply. Fills ``ctx`` as NLLLoss.forward does,
    except the gather index and target weights, which ``NLLLoss.coefficients`` builds if a
    differentiable backward asks (``ctx.at`` None)."""
    if x.ndim != 2 or target.ndim != 1 or target.shape[0] != x.shape[0] or x.shape[1] == 0 \
            or target.dtype.kind != "i" or not _fast.suits(x):
        return None
    fk = _fast.kernels("loss")
    if fk is None:
        return None
    dtype = x.dtype.type
    logp = np.empty_like(x)
    if fk.shift_by_row_max(x, target, int(ignore_index), logp):
        return None  # an ignored (or invalid) target: the NumPy path masks (or raises)
    e = np.exp(logp)
    sums = np.empty(x.shape[0], x.dtype)
    fk.row_sums(e, sums)
    np.log(sums, out=sums)
    picked = np.empty_like(sums)
    total = dtype(fk.finish_log_softmax(logp, sums, target, picked))  # numba returns a float
    n = x.shape[0]
    ctx.x_shape, ctx.cdim, ctx.at, ctx.ignored, ctx.w_t = x.shape, 1, None, None, None
    ctx.weight, ctx.reduction, ctx.smoothing, ctx.target = None, reduction, 0.0, target
    ctx.logp = logp
    if reduction == "none":
        ctx.fast = (fk, target, dtype(1))
        return -picked
    if reduction == "sum":
        ctx.fast = (fk, target, dtype(1))
        return -total
    ctx.total = dtype(n)
    with np.errstate(invalid="ignore", divide="ignore"):  # no rows: nan, as NLLLoss gives
        ctx.fast = (fk, target, 1 / ctx.total)
        return -total / ctx.total


def fast_cross_entropy_grad(ctx, g: np.ndarray) -> np.ndarray | None:
    """CrossEntropy's first-order gradient (N, C) by the fast path's kernel, from the incoming
    gradient g (() or (N,)) and what ``_fast_cross_entropy`` left in ``ctx`` (the same bits as
    the NumPy rule); None when the forward took the NumPy path or g has another dtype."""
    if ctx.fast is None or g.dtype != ctx.logp.dtype:
        return None
    fk, target, scale = ctx.fast
    p = np.exp(ctx.logp)
    fk.grad_from_probs(p, target, scale, np.broadcast_to(g, target.shape) if g.ndim
                       else np.full(target.shape, g, g.dtype))
    return p


class MseLoss(Function):
    """y = mean((x - t)²) or sum((x - t)²); ∂L/∂x = g·k·(x - t), k = 2/n or 2; ∂L/∂t = -∂L/∂x

    (n: the element count; 'mean' or 'sum' reduction.)

    One op for the common case of ``mse_loss`` (same shapes and dtypes, no weight), as
    PyTorch's MseLossBackward0: the composite is four ops (Sub, Mul, Sum, Div) and four graph
    nodes, most of a small model's loss cost. The forward computes what the composite did, in
    its order; under ``create_graph`` the gradient is rebuilt from tensor ops, so it is
    differentiable.
    """

    @staticmethod
    def forward(ctx, x, t, reduction="mean"):
        d = x - t
        ctx.save_for_backward(x, t)
        ctx.d = d  # first-order backward reuses it (higher orders recompute from x and t)
        ctx.scale = 2 / d.size if reduction == "mean" else 2
        y = np.multiply(d, d).sum()
        return y / d.size if reduction == "mean" else y

    @staticmethod
    def backward(ctx, grad_out):
        need_x, need_t = ctx.needs_input_grad
        x, t = ctx.saved_tensors  # (also the check that neither changed in place since)
        if _state.grad_enabled:  # create_graph: a function of x and t
            gx = (x - t) * (grad_out * ctx.scale)
        else:
            gx = const(mse_grad(ctx.d, grad_out.data, ctx.scale))
        return (gx if need_x else None), (-gx if need_t else None)


def mse_grad(d: np.ndarray, g: np.ndarray, scale: float) -> np.ndarray:
    """MseLoss's first-order input gradient on arrays: d·(g·scale), d = x - t."""
    return d * (g * scale)


def _class_shape(weight: np.ndarray, ndim: int, cdim: int) -> np.ndarray:
    """Class weights (C,) shaped to broadcast along the class dimension of an ndim-d array."""
    return weight.reshape((-1,) + (1,) * (ndim - cdim - 1))


_BCE_EPS = float(np.float32(1e-12))  # PyTorch's EPSILON is the float 1e-12f, not the double


# Primitive for stability: where the log is clamped at -100 (x = 0 or 1) the composite's gradient
# is 0·∞ = NaN; PyTorch's formula (x - t)/max(x(1 - x), 1e-12) stays finite.
class BinaryCrossEntropy(Function):
    """y = -[t·max(ln x, -100) + (1 - t)·max(ln(1 - x), -100)], elementwise (no reduction);
    ∂y/∂x = (x - t) / max(x(1 - x), 10⁻¹²), ∂y/∂t = ln(1 - x) - ln x (PyTorch's formulas: the
    derivatives of the unclamped loss, so ∂y/∂t is ±∞ at x = 0 or 1, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, t):
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped just below
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log1p(-x), -100)
        ctx.save_for_backward(x, t)
        return (t - 1) * log_1mx - t * log_x

    @staticmethod
    def backward(ctx, grad_out):
        x, t = ctx.saved_tensors
        need_x, need_t = ctx.needs_input_grad
        grad_x = grad_out * (x - t) / clamp(x * (1 - x), min=_BCE_EPS) if need_x else None
        grad_t = None
        if need_t:
            with np.errstate(divide="ignore", invalid="ignore"):
                grad_t = grad_out * (log1p(-x) - log(x))
        return grad_x, grad_t


# --- batch normalisation ---


# Fused for speed: the composite (mean, sub, mul, mean, add, pow, div, mul, add) makes about nine
# full passes over the activations in forward and as many again in backward, each with a new
# array; this op makes six in each, allocating only x̂ (kept for backward), y and ∂L/∂x.
class BatchNorm(Function):
    """Batch normalisation with the batch's statistics, per channel c (dim 1) over the M = N·S
    values of the other dims (S: the product of the spatial sizes):
    μ = Σ x / M,  σ² = Σ (x - μ)² / M (biased),  r = 1/√(σ² + eps),  x̂ = (x - μ)·r,
    y = γ·x̂ + β (γ = 1 without weight, β = 0 without bias). Outputs (y, μ, σ²) (the batch
    statistics feed the running statistics).

    With g = ∂L/∂y and the means and sums over the non-channel dims:
    ∂L/∂x = γ·r·(g - mean(g) - x̂·mean(g·x̂)) + ∂L/∂μ / M + ∂L/∂σ²·2(x - μ)/M,
    ∂L/∂γ = Σ g·x̂,  ∂L/∂β = Σ g.

    Shapes: x (N, C, *), weight and bias (C,) or None -> y (N, C, *), μ and σ² (C,).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        if x.dtype.kind != "f":
            x = x.astype(np.float32)  # integers normalise to the default float, as the composite
        ctx.fast = None
        out = _fast_batch_norm(ctx, x, weight, bias, eps)
        if out is not None:
            return out
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)
        m = x3.shape[0] * x3.shape[2]
        # statistics accumulate in float64 (see _channel_sum); x̂ and y stay in x's dtype
        mu = _channel_sum(x3) / m
        xhat = x3 - mu.astype(x.dtype)[:, None]
        # two-pass variance (Σ (x - μ)², not Σ x² - Mμ²): no cancellation when |μ| ≫ σ
        var = _channel_dot(xhat, xhat) / m
        r = 1.0 / np.sqrt(var + eps)
        xhat *= r.astype(x.dtype)[:, None]
        if weight is not None:
            y = xhat * weight[:, None]
            if bias is not None:
                y += bias[:, None]
        elif bias is not None:
            y = xhat + bias[:, None]
        else:  # a copy: an in-place op on y must not change the x̂ that backward reads
            y = xhat.copy()
        ctx.eps, ctx.m = eps, m
        # x̂ and r serve only the NumPy first-order path; the recorded path recomputes them
        ctx.save_for_backward(x, weight, xhat, r)
        return y.reshape(x.shape), mu.astype(x.dtype), var.astype(x.dtype)

    @staticmethod
    def backward(ctx, grad_y, grad_mean, grad_var):
        x, weight, xhat, r = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        if _state.grad_enabled:
            return _batch_norm_backward_recorded(x, weight, grad_y, grad_mean, grad_var,
                                                 ctx.eps, ctx.needs_input_grad)
        if ctx.fast is not None:
            return _fast_batch_norm_backward(ctx, x.data, weight, grad_y.data, grad_mean.data,
                                             grad_var.data)
        xh = xhat.data
        n, c, s = xh.shape
        g = grad_y.data.reshape(n, c, s)
        sum_g = _channel_sum(g)
        sum_gx = _channel_dot(g, xh)
        grad_x = None
        if need_x:
            k = r.data if weight is None else r.data * weight.data
            # γr·(g - Σg/M - x̂·Σ(g·x̂)/M) in four in-place passes over one new array
            grad_x = xh * (sum_gx / -ctx.m).astype(xh.dtype)[:, None]
            grad_x -= (sum_g / ctx.m).astype(xh.dtype)[:, None]
            grad_x += g
            grad_x *= k.astype(xh.dtype)[:, None]
            gm, gv = grad_mean.data, grad_var.data
            if gm.any() or gv.any():  # the statistics are used (rare)
                _add_statistics_grads(grad_x, xh, gm, gv, ctx.m, r.data, (-1, 1))
            grad_x = const(grad_x.reshape(x.shape))
        w_dtype = xh.dtype if weight is None else weight.dtype
        return (grad_x,
                const(sum_gx.astype(w_dtype)) if need_w else None,
                const(sum_g.astype(w_dtype)) if need_b else None)


def _add_statistics_grads(grad_x, xh, gm, gv, m, r, shape) -> None:
    """Add the batch statistics' share to BatchNorm's ∂L/∂x, in place: ∂L/∂μ / M +
    ∂L/∂σ²·2(x - μ)/M, with 2(x - μ)/M = 2x̂/(rM). gm, gv, r (C,) (r float64), reshaped by
    ``shape`` to meet grad_x and x̂ on their channel axis."""
    grad_x += (gm / m).astype(grad_x.dtype).reshape(shape)
    grad_x += xh * (gv * (2 / m) / r).astype(grad_x.dtype).reshape(shape)


def _fast_batch_norm(ctx, x, weight, bias, eps):
    """BatchNorm's forward by the fast path's kernels (``_fast/norm.py``): (y, μ, σ²) in the
    NumPy path's dtypes, y laid out as x (C order or a convolution's channel-major memory), ctx
    filled for ``_fast_batch_norm_backward``; None when they do not apply (no numba, another
    dtype or layout, no elements, or one value per sample and channel: BatchNorm1d's (N, C),
    which the NumPy path sums along C at once, where the kernels' per-row sums ran 4-10x
    slower)."""
    if x.ndim < 2 or x.size == 0 or x.dtype.char not in "fd" \
            or x.size == x.shape[0] * x.shape[1]:
        return None
    for p in (weight, bias):
        if p is not None and (p.dtype != x.dtype or not p.flags.c_contiguous or p.ndim != 1):
            return None
    fk = _fast.kernels("norm")
    if fk is None:
        return None
    none = np.empty(0, x.dtype)
    out = fk.forward(x, none if weight is None else weight, none if bias is None else bias, eps)
    if out is None:  # neither C-contiguous nor channel-major
        return None
    y, stats = out
    ctx.eps, ctx.m = eps, x.size // x.shape[1]
    ctx.fast = (fk, stats)
    ctx.save_for_backward(x, weight, None, None)
    return y, stats[0].astype(x.dtype), stats[1].astype(x.dtype)


def _fast_batch_norm_backward(ctx, x, weight, g, gm, gv):
    """BatchNorm's first-order backward from ``_fast_batch_norm``'s ctx (kernels)."""
    fk, stats = ctx.fast
    need_x, need_w, need_b = ctx.needs_input_grad
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)
    w = np.empty(0, x.dtype) if weight is None else weight.data
    grad_x, sums = fk.backward(x, g, w, stats, need_x)
    if need_x:
        if gm.any() or gv.any():  # the statistics are used (rare): as the NumPy path
            shape = (1, -1) + (1,) * (x.ndim - 2)
            mu, r = stats[0], stats[2]
            xh = (x - mu.astype(x.dtype).reshape(shape)) * r.astype(x.dtype).reshape(shape)
            _add_statistics_grads(grad_x, xh, gm, gv, ctx.m, r, shape)
        grad_x = const(grad_x)
    w_dtype = x.dtype if weight is None else weight.dtype
    return (grad_x,
            const(sums[1].astype(w_dtype)) if need_w else None,
            const(sums[0].astype(w_dtype)) if need_b else None)


def _channel_sum(a3: np.ndarray) -> np.ndarray:
    """Σ over dims 0 and 2 of an (N, C, S) array, as float64 (C,).

    Each row of S values is summed in the array's dtype (NumPy sums a contiguous axis pairwise,
    so float32 keeps about 1e-7 relative error), and the N row sums in float64: as accurate as
    summing in float64, at float32 speed.
    """
    rows = a3.sum(2) if a3.shape[2] > 1 else a3[:, :, 0]
    return rows.sum(0, dtype=np.float64)


def _channel_dot(a3: np.ndarray, b3: np.ndarray) -> np.ndarray:
    """Σ a·b over dims 0 and 2 of two (N, C, S) arrays, as float64 (C,).

    One dot per (n, c) row, as a batched (1, S) @ (S, 1) matmul: no product temporary, and as
    fast as a float32 sum over the array; the N row results are summed in float64. (Measured at
    (128, 16, 784): ~1e-7 relative error in float32, against ~4e-7 for einsum or a float32 sum.)
    """
    if a3.shape[2] > 1:
        rows = np.matmul(a3[:, :, None, :], b3[:, :, :, None])[:, :, 0, 0]
    else:
        rows = a3[:, :, 0] * b3[:, :, 0]
    return rows.sum(0, dtype=np.float64)


def _batch_norm_backward_recorded(x, weight, grad_y, grad_mean, grad_var, eps, needs):
    """BatchNorm's backward in Tensor ops, recomputed from x (higher order)."""
    dims = (0,) + tuple(range(2, x.ndim))
    stat_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    m = x.numel() // x.shape[1]
    centred = x - mean(x, dims, keepdim=True)
    r = (mean(centred * centred, dims, keepdim=True) + eps) ** -0.5
    xhat = centred * r
    gx = grad_y * xhat
    grad_x = None
    if needs[0]:
        k = r if weight is None else r * reshape(weight, stat_shape)
        grad_x = (grad_y - mean(grad_y, dims, keepdim=True)
                  - xhat * mean(gx, dims, keepdim=True)) * k
        grad_x = (grad_x + reshape(grad_mean, stat_shape) / m
                  + reshape(grad_var, stat_shape) * centred * (2 / m))
    return (grad_x,
            sum(gx, dims) if needs[1] else None,
            sum(grad_y, dims) if needs[2] else None)


def batch_norm_train(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                     eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """Normalise ``input`` with its own batch statistics over every dim but dim 1 (one op).

    Returns (y, mean, var): y = (x - mean)/√(var + eps)·weight + bias, and the per-channel batch
    mean and *biased* variance (e.g. for a running-statistics update; differentiable too).

    Shapes: input (N, C, *), weight and bias (C,) or None -> y (N, C, *), mean and var (C,).

    Example:
        >>> import backprop as bp
        >>> y, mu, var = bp.ops.nn_ops.batch_norm_train(bp.tensor([[1.0], [3.0]]), eps=0.0)
        >>> y.flatten(), mu, var
        (tensor([-1.,  1.]), tensor([2.]), tensor([1.]))
    """
    return BatchNorm.apply(input, weight, bias, eps=eps)


from backprop.ops._util import const  # noqa: E402
from backprop.ops.elementwise import clamp, exp, log, log1p  # noqa: E402
from backprop.ops.reduction import mean, sum  # noqa: E402
from backprop.ops.shape import reshape, unsqueeze  # noqa: E402


class DropoutMask(Function):
    """m = 1/(1 - p) where a uniform draw is ≥ p, else 0 (the inverted-dropout mask), shape
    ``shape``; no inputs, no gradient. An op rather than a draw in Python so that the draw is
    part of the recorded step: a replay draws again, from the same generator, in the same order.
    """

    sets_dtype = True

    @staticmethod
    def forward(ctx, shape=(), p=0.5, dtype=np.float32):
        keep = _random.default_generator().random(shape) >= p
        scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)  # p = 1 zeroes everything (no 1/0)
        return (keep * scale).astype(dtype)


def dropout_mask(shape: tuple, p: float, dtype) -> Tensor:
    """A dropout mask drawn from ``backprop.random.default_generator()`` (see DropoutMask)."""
    return DropoutMask.apply(shape=tuple(shape), p=float(p), dtype=np.dtype(dtype))
