"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm`` (PyTorch's)."""

from __future__ import annotations

from backprop import creation
from backprop.autograd.grad_mode import no_grad
from backprop.devices import check_device
from backprop.errors import ShapeError
from backprop.nn import _functional_layers as FL
from backprop.nn import init
from backprop.nn.module import Module, Parameter
from backprop.tensor import Tensor, int64


class _BatchNorm(Module):
    """Shared by the BatchNorm layers; subclasses only say which input ranks they accept."""

    _ranks: tuple = ()
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None, *,
                 bias: bool = True, device=None) -> None:
        super().__init__()
        check_device(device, "module")
        if num_features <= 0:
            raise ValueError(
                f"{type(self).__name__}: num_features must be positive, got {num_features}"
            )
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(creation.empty(num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(creation.empty(num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", creation.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", creation.tensor(0, dtype=int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics, and weight to 1 and bias to 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._ranks:
            raise ShapeError(
                f"{type(self).__name__}: expected an input of shape {self._shape_text}, got "
                f"shape {tuple(input.shape)}"
            )
        if input.shape[1] != self.num_features:
            raise ShapeError(
                f"{type(self).__name__}: expected {self.num_features} channels (dimension 1), "
                f"got input of shape {tuple(input.shape)}"
            )
        # PyTorch's rule: momentum None means a cumulative average, 1/(batches seen so far)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / int(self.num_batches_tracked.item())
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return FL.batch_norm(
            input,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            self.weight, self.bias, use_batch, factor, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation per channel of (N, C) or (N, C, L) input: PyTorch's ``BatchNorm1d``.

    y = (x - μ) / √(σ² + eps) · weight + bias. In training μ, σ² are the batch mean and biased
    variance over N (and L), and ``running_mean``/``running_var`` move towards the batch mean
    and *unbiased* variance by ``momentum`` (None: a cumulative average over
    ``num_batches_tracked`` batches). In eval mode the running statistics are used (the batch
    statistics if ``track_running_stats=False``).

    Args:
        num_features: C.
        eps: added to the variance for stability.
        momentum: weight of the new batch in the running statistics, or None.
        affine: learn ``weight`` (ones) and ``bias`` (zeros), each (C,).
        bias: keyword-only; with ``affine``, whether to learn ``bias`` too (PyTorch 2.13).
        track_running_stats: keep the buffers ``running_mean``, ``running_var`` (C,) and
            ``num_batches_tracked`` (an int64 scalar).
        dtype: parameter and buffer dtype (float32 by default).

    Shapes: (N, C) -> (N, C); (N, C, L) -> (N, C, L).

    Example:
        >>> import backprop as bp
        >>> bp.nn.BatchNorm1d(3)(bp.randn(4, 3)).shape
        (4, 3)
    """

    _ranks = (2, 3)
    _shape_text = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation per channel of (N, C, H, W) input: PyTorch's ``BatchNorm2d``.

    Statistics are taken over N, H and W; otherwise as ``BatchNorm1d`` (same arguments).

    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    _ranks = (4,)
    _shape_text = "(N, C, H, W)"


class LayerNorm(Module):
    """Normalise over the last dimensions given by ``normalized_shape``: PyTorch's
    ``LayerNorm``. y = (x - μ) / √(σ² + eps) · weight + bias, with the biased variance and the
    same statistics in training and eval.

    Args:
        normalized_shape: the trailing shape to normalise over (an int for the last dimension).
        eps: added to the variance for stability.
        elementwise_affine: learn ``weight`` (ones) of shape ``normalized_shape``.
        bias: learn ``bias`` (zeros) as well (only with ``elementwise_affine``).
        dtype: parameter dtype (float32 by default).

    Shapes: (*, *normalized_shape) -> same.

    Example:
        >>> import backprop as bp
        >>> bp.nn.LayerNorm(4)(bp.randn(2, 3, 4)).shape
        (2, 3, 4)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None, device=None) -> None:
        super().__init__()
        check_device(device, "module")
        self.normalized_shape = FL._normalized_shape(normalized_shape)
        if any(s <= 0 for s in self.normalized_shape):
            raise ValueError(
                f"LayerNorm: normalized_shape must be positive, got {self.normalized_shape}"
            )
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.ones(*self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(creation.zeros(*self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        """weight to 1 and bias to 0."""
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return FL.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


