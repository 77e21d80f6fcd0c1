"""``SyncBatchNorm``: batch normalisation whose batch statistics are taken over the samples of
every rank, so N ranks with batch B normalise exactly as one process with batch N·B."""

from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function, once_differentiable
from backprop.autograd.grad_mode import no_grad
from backprop.distributed import comm
from backprop.nn.module import Module
from backprop.nn.normalization import _BatchNorm
from backprop.ops._util import const
from backprop.tensor import Tensor

__all__ = ["SyncBatchNorm", "sync_batch_norm"]


class SyncBatchNormFunction(Function):
    """y = (x - μ)/√(σ² + eps)·γ + β with μ, σ² (biased) over dim 0 and dims ≥ 2 of the inputs
    of *every rank* (M values per channel in all). Gradients, with Σ over all ranks:
    ∂L/∂x = γr·(g - Σg/M - x̂·Σ(g·x̂)/M) (r = 1/√(σ² + eps)), ∂L/∂γ = Σ_local g·x̂,
    ∂L/∂β = Σ_local g. The parameter gradients stay local: DistributedDataParallel averages
    them, as it averages the rest; the input gradient is the one of the sum of every rank's
    loss, which the averaging turns into the gradient of the mean (PyTorch's scheme).

    Outputs (y, mean, var); mean and var (C,) are for the running statistics and carry no
    gradient.
    """

    label = "SyncBatchNorm"

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        if weight is not None:  # backward needs γ
            ctx.save_for_backward(weight)
        n, c = x.shape[0], x.shape[1]
        x3 = x.reshape(n, c, -1)
        # sums in float64: the statistics of N·B samples must not depend on how they are split
        stats = np.empty(c + 1, dtype=np.float64)
        stats[:c] = x3.sum(axis=(0, 2), dtype=np.float64)
        stats[c] = x3.shape[0] * x3.shape[2]
        comm.all_reduce(stats, what="SyncBatchNorm's batch mean")
        m = stats[c]
        if m <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all "
                             f"ranks, got input of shape {x.shape} and {int(m)} in all")
        mu = stats[:c] / m
        centred = x3 - mu.astype(x.dtype)[:, None]
        # two passes (mean, then squares about it): no cancellation as in E[x²] - μ²
        sq = np.einsum("ncs,ncs->c", centred, centred, dtype=np.float64)
        comm.all_reduce(sq, what="SyncBatchNorm's batch variance")
        var = sq / m
        r = 1.0 / np.sqrt(var + eps)
        xhat = centred * r.astype(x.dtype)[:, None]
        y = xhat
        if weight is not None:
            y = y * weight[:, None]
        if bias is not None:
            y = y + bias[:, None]
        ctx.xhat, ctx.r, ctx.m, ctx.x_shape = xhat, r, m, x.shape
        mean_out, var_out = mu.astype(x.dtype), var.astype(x.dtype)
        ctx.mark_non_differentiable(mean_out, var_out)
        return y.reshape(x.shape).astype(x.dtype, copy=False), mean_out, var_out

    @staticmethod
    @once_differentiable  # saves x̂ (an intermediate) and reduces across ranks in NumPy
    def backward(ctx, grad_y, grad_mean, grad_var):
        weight = ctx.saved_tensors[0] if ctx.saved_tensors else None
        xhat, r, m = ctx.xhat, ctx.r, ctx.m
        n, c, s = xhat.shape
        g = grad_y.data.reshape(n, c, s)
        local = np.empty(2 * c, dtype=np.float64)
        local[:c] = g.sum(axis=(0, 2), dtype=np.float64)
        local[c:] = np.einsum("ncs,ncs->c", g, xhat, dtype=np.float64)
        sums = comm.all_reduce(local.copy(), what="SyncBatchNorm's gradient sums")
        k = r if weight is None else r * weight.data
        grad_x = g - (sums[:c] / m).astype(g.dtype)[:, None]
        grad_x -= xhat * (sums[c:] / m).astype(g.dtype)[:, None]
        grad_x *= k.astype(g.dtype)[:, None]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        w_dtype = g.dtype if weight is None else weight.dtype
        return (const(grad_x.reshape(ctx.x_shape)) if need_x else None,
                const(local[c:].astype(w_dtype)) if need_w else None,
                const(local[:c].astype(w_dtype)) if need_b else None)


def sync_batch_norm(input: Tensor, weight: Tensor | None, bias: Tensor | None,
                    eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """Batch normalisation with statistics over every rank's batch (one op).

    Returns (y, mean, var): the normalised input and the global per-channel mean and biased
    variance. In a world of one it equals ``batch_norm`` in training mode.

    Shapes: input (N, C, *), weight and bias (C,) or None -> y (N, C, *), mean and var (C,).
    """
    return SyncBatchNormFunction.apply(input, weight, bias, eps=eps)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics span every rank (PyTorch's
    ``torch.nn.SyncBatchNorm``): N ranks with batch B each normalise as one process with batch
    N·B would, and keep the same running statistics. In eval mode, or in a world of one, it is
    ``BatchNorm``.

    Args: as ``BatchNorm1d`` (num_features, eps, momentum, affine, track_running_stats, dtype).

    Shapes: (N, C, *) -> same (any rank from 2, as PyTorch).

    Example:
        >>> import backprop as bp
        >>> bn = bp.nn.SyncBatchNorm(3)
        >>> bn(bp.randn(4, 3, 5, 5)).shape
        (4, 3, 5, 5)
    """

    _ranks = (2, 3, 4, 5)
    _shape_text = "(N, C, *)"

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or comm.world_size() == 1:
            return super().forward(input)
        if input.ndim < 2 or input.shape[1] != self.num_features:
            return super().forward(input)  # raises the BatchNorm shape error
        y, mu, var = sync_batch_norm(input, self.weight, self.bias, self.eps)
        if self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / int(self.num_batches_tracked.item()) if self.momentum is None
                          else self.momentum)
                m = _global_count(input)
                self.running_mean.mul_(1.0 - factor).add_(mu, alpha=factor)
                self.running_var.mul_(1.0 - factor).add_(var * (m / (m - 1)), alpha=factor)
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every BatchNorm layer in ``module`` (and ``module`` itself) by a
        SyncBatchNorm with the same parameters and statistics; returns the converted module."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, dtype=(module.weight.dtype if module.affine
                                                         else None),
                      bias=module.bias is not None or not module.affine)
            new.load_state_dict(module.state_dict())
            new.train(module.training)
            return new
        for name, child in list(module.named_children()):
            setattr(module, name, cls.convert_sync_batchnorm(child))
        return module


def _global_count(input: Tensor) -> int:
    per_channel = np.array([input.numel() // input.shape[1]], dtype=np.int64)
    return int(comm.all_reduce(per_channel, what="SyncBatchNorm's sample count")[0])
