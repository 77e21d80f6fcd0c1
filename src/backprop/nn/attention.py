"""Attention: ``scaled_dot_product_attention`` and ``MultiheadAttention``, PyTorch's names,
arguments, masks, parameter names and initialisation, so a PyTorch state dict loads and the
outputs agree.

Both are composites of matmul, softmax, masking and dropout (STYLE: no new gradient rule), so
their gradients of every order follow from those ops.

Masks, as in PyTorch (the two functions read bool masks the opposite way round):

- ``scaled_dot_product_attention(attn_mask=...)``: a bool mask says where attention is
  *allowed* (True = take part); a float mask is added to the scores.
- ``MultiheadAttention``: ``attn_mask`` and ``key_padding_mask`` as bool say what is
  *masked out* (True = ignore); float masks are added.
"""

from __future__ import annotations

import math

import numpy as np

from backprop import creation
from backprop.devices import check_device
from backprop.errors import ShapeError
from backprop.nn import _functional_layers as FL
from backprop.nn import init
from backprop.nn.linear import Linear
from backprop.nn.module import Module, Parameter
from backprop.ops.elementwise import where
from backprop.ops.linalg import MatMul
from backprop.ops.nn_ops import softmax
from backprop.ops.reduction import mean
from backprop.ops.shape import cat, reshape, transpose
from backprop.tensor import Tensor, _wrap

__all__ = ["MultiheadAttention", "multi_head_attention_forward", "scaled_dot_product_attention"]


def _raw_mask(mask) -> np.ndarray:
    return mask.data if isinstance(mask, Tensor) else np.asarray(mask)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    """softmax(Q Kᵀ · scale + mask) V, PyTorch's ``F.scaled_dot_product_attention``.

    Args:
        query: (..., L, E).
        key: (..., S, E).
        value: (..., S, E_v).
        attn_mask: broadcastable to (..., L, S): bool (True = may attend) or float (added to
            the scores).
        dropout_p: dropout on the attention weights (applied whenever > 0, as in PyTorch: pass
            0.0 in evaluation).
        is_causal: attend only to positions j <= i (the top-left lower triangle); excludes
            ``attn_mask``.
        scale: the score scale; 1/√E by default.
        enable_gqa: let query have more heads (dim -3) than key and value, each key/value head
            serving a group of query heads.

    Returns:
        (..., L, E_v).

    Example:
        >>> import backprop as bp
        >>> q = bp.ones(2, 4, 8)
        >>> bp.nn.functional.scaled_dot_product_attention(q, q, bp.ones(2, 4, 3)).shape
        (2, 4, 3)
    """
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(f"scaled_dot_product_attention: query, key and value need at least 2 "
                         f"dimensions, got shapes {query.shape}, {key.shape}, {value.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value "
            f"{value.shape} do not fit: expected (..., L, E), (..., S, E) and (..., S, E_v)"
        )
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: explicit attn_mask should not be set "
                           "when is_causal=True")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key, value = _repeat_heads(key, groups), _repeat_heads(value, groups)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = MatMul.apply(query, key, transpose_b=True) * scale
    length, source = query.shape[-2], key.shape[-2]
    if is_causal:
        attn_mask = np.tril(np.ones((length, source), dtype=bool))
    if attn_mask is not None:
        m = _raw_mask(attn_mask)
        if m.dtype == np.bool_:
            scores = where(m, scores, np.array(-np.inf, scores.dtype))
        else:
            scores = scores + attn_mask
    weights = softmax(scores, -1)
    if dropout_p > 0.0:
        weights = FL.dropout(weights, dropout_p, True)
    return MatMul.apply(weights, value)


def _repeat_heads(t: Tensor, groups: int) -> Tensor:
    # (..., H, S, E) -> (..., H·groups, S, E), each head repeated in place (repeat_interleave)
    shape = t.shape
    t = reshape(t, shape[:-2] + (1,) + shape[-2:])
    t = t.expand(*shape[:-3], shape[-3], groups, *shape[-2:])
    return reshape(t, shape[:-3] + (shape[-3] * groups,) + shape[-2:])


def _float_mask(mask, name: str, dtype) -> Tensor | None:
    """PyTorch's canonical form of a MultiheadAttention mask: bool True -> -inf, else 0; a float
    mask as it is (it must have the query's dtype)."""
    if mask is None:
        return None
    m = _raw_mask(mask)
    if m.dtype == np.bool_:
        return _wrap(np.where(m, -np.inf, 0.0).astype(dtype), False, None, 0)
    if m.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: only bool and floating types of {name} are "
                        f"supported, got {m.dtype}")
    if m.dtype != dtype:
        raise TypeError(f"MultiheadAttention: {name} of dtype {m.dtype} does not match the "
                        f"query's dtype {dtype}")
    return mask if isinstance(mask, Tensor) else _wrap(m, False, None, 0)


def _proj(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    y = MatMul.apply(x, weight, transpose_b=True)
    return y if bias is None else y + bias


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, num_heads: int,
                                 in_proj_weight: Tensor | None, in_proj_bias: Tensor | None,
                                 out_proj_weight: Tensor, out_proj_bias: Tensor | None, *,
                                 bias_k: Tensor | None = None, bias_v: Tensor | None = None,
                                 add_zero_attn: bool = False, dropout_p: float = 0.0,
                                 training: bool = True, key_padding_mask=None,
                                 need_weights: bool = True, attn_mask=None,
                                 average_attn_weights: bool = True, is_causal: bool = False,
                                 q_proj_weight: Tensor | None = None,
                                 k_proj_weight: Tensor | None = None,
                                 v_proj_weight: Tensor | None = None) -> tuple:
    """Multi-head attention on sequence-first inputs, PyTorch's
    ``F.multi_head_attention_forward`` (keyword arguments after the weights).

    Shapes: query (L, N, E), key (S, N, E_k), value (S, N, E_v) -> output (L, N, E) and weights
    (N, L, S) averaged over heads, (N, num_heads, L, S) otherwise, or None without
    ``need_weights``. ``attn_mask`` (L, S) or (N·num_heads, L, S); ``key_padding_mask`` (N, S).
    """
    length, batch, embed = query.shape
    source = key.shape[0]
    head = embed // num_heads
    if head * num_heads != embed:
        raise ValueError(f"MultiheadAttention: embed_dim {embed} is not divisible by num_heads "
                         f"{num_heads}")
    if key.shape[:2] != value.shape[:2]:
        raise ShapeError(f"MultiheadAttention: key's sequence and batch dims {key.shape[:2]} do "
                         f"not match value's {value.shape[:2]}")
    kpm = _float_mask(key_padding_mask, "key_padding_mask", query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("MultiheadAttention: need attn_mask if specifying the is_causal hint; "
                           "Transformer.generate_square_subsequent_mask makes one")
    if is_causal and kpm is None and not need_weights:
        # PyTorch then trusts the hint and applies the causal mask itself
        mask = _wrap(np.triu(np.full((length, source), -np.inf), 1).astype(query.dtype), False,
                     None, 0)
    else:
        mask = _float_mask(attn_mask, "attn_mask", query.dtype)
    if mask is not None:
        if mask.ndim == 2:
            if mask.shape != (length, source):
                raise ShapeError(f"MultiheadAttention: the 2D attn_mask has shape {mask.shape}, "
                                 f"but should be {(length, source)}")
            mask = reshape(mask, (1, length, source))
        elif mask.ndim == 3:
            if mask.shape != (batch * num_heads, length, source):
                raise ShapeError(f"MultiheadAttention: the 3D attn_mask has shape {mask.shape}, "
                                 f"but should be {(batch * num_heads, length, source)}")
        else:
            raise ShapeError(f"MultiheadAttention: attn_mask of {mask.ndim} dimensions is not "
                             "supported (2 or 3)")
    if in_proj_weight is not None:
        w_q, w_k, w_v = in_proj_weight[:embed], in_proj_weight[embed:2 * embed], \
            in_proj_weight[2 * embed:]
    else:
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = in_proj_bias[:embed], in_proj_bias[embed:2 * embed], \
            in_proj_bias[2 * embed:]
    if in_proj_weight is not None and query is key and key is value:
        q, k, v = _proj(query, in_proj_weight, in_proj_bias).chunk(3, -1)  # one GEMM
    else:
        q, k, v = _proj(query, w_q, b_q), _proj(key, w_k, b_k), _proj(value, w_v, b_v)
    if bias_k is not None and bias_v is not None:
        k = cat([k, bias_k.expand(1, batch, embed)])
        v = cat([v, bias_v.expand(1, batch, embed)])
        mask = None if mask is None else _pad_last(mask)
        kpm = None if kpm is None else _pad_last(kpm)
    # (T, N, E) -> (N·heads, T, head)
    q = transpose(reshape(q, (length, batch * num_heads, head)), 0, 1)
    k = transpose(reshape(k, (k.shape[0], batch * num_heads, head)), 0, 1)
    v = transpose(reshape(v, (v.shape[0], batch * num_heads, head)), 0, 1)
    if add_zero_attn:
        zeros = creation.zeros(batch * num_heads, 1, head, dtype=k.dtype)
        k, v = cat([k, zeros], 1), cat([v, zeros], 1)
        mask = None if mask is None else _pad_last(mask)
        kpm = None if kpm is None else _pad_last(kpm)
    source = k.shape[1]
    if kpm is not None:
        if kpm.shape != (batch, source):
            raise ShapeError(f"MultiheadAttention: expected key_padding_mask of shape "
                             f"{(batch, source)}, got {kpm.shape}")
        kpm = reshape(kpm.expand(num_heads, batch, source).transpose(0, 1),
                      (batch * num_heads, 1, source))
        mask = kpm if mask is None else mask + kpm
    p = dropout_p if training else 0.0
    scores = MatMul.apply(q * (1.0 / math.sqrt(head)), k, transpose_b=True)
    if mask is not None:
        scores = scores + mask
    weights = softmax(scores, -1)
    if p > 0.0:
        weights = FL.dropout(weights, p, True)
    out = MatMul.apply(weights, v)  # (N·heads, L, head)
    out = reshape(transpose(out, 0, 1), (length * batch, embed))
    out = reshape(_proj(out, out_proj_weight, out_proj_bias), (length, batch, embed))
    if not need_weights:
        return out, None
    weights = reshape(weights, (batch, num_heads, length, source))
    return out, (mean(weights, 1) if average_attn_weights else weights)


def _pad_last(mask: Tensor) -> Tensor:
    zeros = creation.zeros(*mask.shape[:-1], 1, dtype=mask.dtype)
    return cat([mask, zeros], -1)


class MultiheadAttention(Module):
    """Multi-head attention, PyTorch's ``nn.MultiheadAttention``:
    concat(head₁, ..., head_h) W_outᵀ + b_out with headᵢ = softmax(QᵢKᵢᵀ/√d + mask) Vᵢ.

    Args:
        embed_dim: model width E (split into ``num_heads`` heads of E / num_heads).
        num_heads: number of heads.
        dropout: dropout on the attention weights (training only).
        bias: learn the input and output projection biases.
        add_bias_kv: learn a bias added as one extra key and value position.
        add_zero_attn: append a zero key and value position.
        kdim, vdim: key and value widths (E by default); other widths use separate
            ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` instead of ``in_proj_weight``.
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).
        device: the CPU (see ``backprop.device``).
        dtype: parameter dtype (float32 by default).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``: output
    (L, N, E) [(N, L, E) batch first, (L, E) unbatched], weights (N, L, S) averaged over heads
    or (N, num_heads, L, S), None when ``need_weights`` is False. Bool masks: True = ignore.

    Parameters (PyTorch's names): ``in_proj_weight`` (3E, E), ``in_proj_bias`` (3E,),
    ``out_proj.weight`` (E, E), ``out_proj.bias`` (E,); Xavier-uniform projections, zero biases.

    Example:
        >>> import backprop as bp
        >>> mha = bp.nn.MultiheadAttention(8, 2, batch_first=True)
        >>> x = bp.randn(3, 5, 8)
        >>> out, weights = mha(x, x, x)
        >>> out.shape, weights.shape
        ((3, 5, 8), (3, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got "
                             f"{embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by "
                             f"num_heads {num_heads}")
        check_device(device)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(creation.empty(3 * embed_dim, embed_dim, dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(creation.empty(embed_dim, embed_dim, dtype=dtype))
            self.k_proj_weight = Parameter(creation.empty(embed_dim, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(creation.empty(embed_dim, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(creation.empty(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(creation.empty(1, 1, embed_dim, dtype=dtype))
            self.bias_v = Parameter(creation.empty(1, 1, embed_dim, dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None,
                need_weights: bool = True, attn_mask=None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple:
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(
                f"MultiheadAttention: query, key and value must all be 3-D (batched) or 2-D "
                f"(unbatched), got shapes {query.shape}, {key.shape}, {value.shape}"
            )
        if query.shape[-1] != self.embed_dim:
            raise ShapeError(f"MultiheadAttention: expected query of width embed_dim="
                             f"{self.embed_dim}, got shape {query.shape}")
        batched = query.ndim == 3
        same = query is key and key is value
        if not batched:
            query, key, value = (reshape(t, (t.shape[0], 1, t.shape[1]))
                                 for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = _raw_mask(key_padding_mask)[None]
        elif self.batch_first:
            query, key, value = (transpose(t, 0, 1) for t in (query, key, value))
        if same:  # keep the identity, so the packed projection runs as one GEMM
            key = value = query
        out, weights = multi_head_attention_forward(
            query, key, value, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.out_proj.weight, self.out_proj.bias, bias_k=self.bias_k, bias_v=self.bias_v,
            add_zero_attn=self.add_zero_attn, dropout_p=self.dropout, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight)
        if not batched:
            out = reshape(out, (out.shape[0], out.shape[2]))
            if weights is not None:
                weights = reshape(weights, weights.shape[1:])
        elif self.batch_first:
            out = transpose(out, 0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
                f", batch_first={self.batch_first}")
