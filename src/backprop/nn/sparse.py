"""``Embedding``: a lookup table of learned vectors."""

from __future__ import annotations

from backprop import creation
from backprop.autograd.grad_mode import no_grad
from backprop.devices import check_device
from backprop.nn import _functional_layers as FL
from backprop.nn import init
from backprop.nn.module import Module, Parameter
from backprop.tensor import Tensor


class Embedding(Module):
    """Row ``i`` of ``weight`` for each index ``i``: PyTorch's ``Embedding``.

    Args:
        num_embeddings: number of rows (valid indices are 0 .. num_embeddings - 1).
        embedding_dim: length of each row.
        padding_idx: a row that receives no gradient and is initialised to zeros (negative
            values count from the end).
        dtype: weight dtype (float32 by default).

    Shapes: input (*) integers -> (*, embedding_dim). ``weight`` is
    (num_embeddings, embedding_dim), initialised N(0, 1). An index out of range raises
    IndexError.

    Example:
        >>> import backprop as bp
        >>> bp.nn.Embedding(10, 3)(bp.tensor([[1, 2], [4, 9]])).shape
        (2, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype=None, device=None) -> None:
        super().__init__()
        check_device(device, "module")
        if num_embeddings <= 0 or embedding_dim <= 0:
            raise ValueError(
                f"Embedding: num_embeddings and embedding_dim must be positive, got "
                f"{num_embeddings} and {embedding_dim}"
            )
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx must be within num_embeddings "
                    f"(in [{-num_embeddings}, {num_embeddings - 1}]), got {padding_idx}"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(creation.empty(num_embeddings, embedding_dim, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise as PyTorch does: N(0, 1), with the padding row zeroed."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight.data[self.padding_idx] = 0

    def forward(self, input: Tensor) -> Tensor:
        return FL.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"
