"""The Transformer (Vaswani et al. 2017), PyTorch's modules with PyTorch's names, defaults,
state-dict keys and arithmetic: ``TransformerEncoderLayer``, ``TransformerEncoder``,
``TransformerDecoderLayer``, ``TransformerDecoder`` and ``Transformer``.

A PyTorch ``state_dict`` loads and gives the same outputs (``tests/nn/test_transformer.py``).
One deliberate difference: in evaluation with a ``src_key_padding_mask`` PyTorch's encoder may
take a nested-tensor fast path that writes zeros at the padded positions; here those positions
hold whatever the layers compute (they are padding either way, and no real position depends on
them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from backprop.devices import check_device
from backprop.errors import ShapeError
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.attention import MultiheadAttention
from backprop.nn.dropout import Dropout
from backprop.nn.linear import Linear
from backprop.nn.module import Module, ModuleList
from backprop.nn.normalization import LayerNorm
from backprop.tensor import Tensor, _wrap

__all__ = ["Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerEncoderLayer"]


def _activation(activation) -> Callable:
    if callable(activation):
        return activation
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


def _clones(module: Module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _build_layer(layer: Module, d_model, nhead, dim_feedforward, dropout, activation,
                 layer_norm_eps, batch_first, norm_first, bias, device, dtype,
                 cross_attention: bool) -> None:
    """Register an encoder (or, with ``cross_attention``, a decoder) layer's parts in
    PyTorch's order, which is the order of its state-dict keys."""
    check_device(device)

    def attention():
        return MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                  batch_first=batch_first, dtype=dtype)

    def norm():
        return LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)

    norms = 3 if cross_attention else 2
    layer.self_attn = attention()
    if cross_attention:
        layer.multihead_attn = attention()
    layer.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
    layer.dropout = Dropout(dropout)
    layer.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
    layer.norm_first = norm_first
    for i in range(1, norms + 1):
        setattr(layer, f"norm{i}", norm())
    for i in range(1, norms + 1):
        setattr(layer, f"dropout{i}", Dropout(dropout))
    layer.activation = _activation(activation)


def _feed_forward(layer: Module, x: Tensor) -> Tensor:
    return layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))


def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
    """The causal mask for a sequence of ``sz``: 0 on and below the diagonal, -inf above.
    Shape (sz, sz), float32 by default."""
    check_device(device)
    dtype = np.float32 if dtype is None else dtype
    return _wrap(np.triu(np.full((sz, sz), -np.inf), 1).astype(dtype), False, None, 0)


def _is_causal(mask, is_causal, size: int | None) -> bool:
    # PyTorch's rule: a hint given is used as is; without one, a mask equal to the causal mask
    # of the sequence's length counts as causal
    if is_causal is not None:
        return bool(is_causal)
    if mask is None:
        return False
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    sz = size if size is not None else m.shape[-2]
    causal = np.triu(np.full((sz, sz), -np.inf), 1)
    if m.shape != causal.shape:
        return False
    if m.dtype == np.bool_:
        return False  # PyTorch compares against the float mask: a bool mask never matches
    return bool((m == causal).all())


def _seq_len(x: Tensor, batch_first: bool) -> int:
    if x.ndim == 2:
        return x.shape[0]
    return x.shape[1 if batch_first else 0]


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with dropout, a residual connection and
    layer normalisation, PyTorch's ``nn.TransformerEncoderLayer``.

    Post-norm (default): x = norm1(x + SA(x)); x = norm2(x + FF(x)). With ``norm_first``:
    x = x + SA(norm1(x)); x = x + FF(norm2(x)). FF(x) = linear2(dropout(act(linear1(x)))).

    Args:
        d_model: model width.
        nhead: attention heads.
        dim_feedforward: width of the feed-forward block.
        dropout: dropout probability everywhere in the layer.
        activation: ``"relu"``, ``"gelu"`` or a callable.
        layer_norm_eps: the LayerNorms' eps.
        batch_first: (N, L, E) instead of (L, N, E).
        norm_first: pre-norm instead of post-norm.
        bias: learn biases in the linear layers, attention and LayerNorms.
        device, dtype: as for every layer.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``: masks as in
    :class:`MultiheadAttention` (bool True = ignore, float added). Shape: src -> same.

    Example:
        >>> import backprop as bp
        >>> layer = bp.nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16)
        >>> layer(bp.randn(5, 3, 8)).shape
        (5, 3, 8)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        _build_layer(self, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                     batch_first, norm_first, bias, device, dtype, cross_attention=False)

    def forward(self, src: Tensor, src_mask=None, src_key_padding_mask=None,
                is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(_feed_forward(self, x))


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's output (``memory``) and a feed-forward
    block, each with dropout, a residual connection and layer normalisation, PyTorch's
    ``nn.TransformerDecoderLayer`` (arguments as :class:`TransformerEncoderLayer`).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``.
    Shapes: tgt (T, N, E), memory (S, N, E) -> (T, N, E) (batch first: (N, T, E)).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        _build_layer(self, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                     batch_first, norm_first, bias, device, dtype, cross_attention=True)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Tensor:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                           memory_is_causal))
        return self.norm3(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           is_causal=is_causal, need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal) -> Tensor:
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout3(_feed_forward(self, x))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (deep copies: independent weights) applied in
    turn, then ``norm`` if given; PyTorch's ``nn.TransformerEncoder`` (keys ``layers.0. ...``).

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``; a ``mask`` equal
    to the causal mask is recognised as such when ``is_causal`` is None, as in PyTorch.

    Example:
        >>> import backprop as bp
        >>> layer = bp.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
        >>> encoder = bp.nn.TransformerEncoder(layer, num_layers=2)
        >>> encoder(bp.randn(3, 5, 8)).shape, len(encoder.layers)
        ((3, 5, 8), 2)
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor  # accepted; nothing is nested here
        self.mask_check = mask_check

    def forward(self, src: Tensor, mask=None, src_key_padding_mask=None,
                is_causal: bool | None = None) -> Tensor:
        batch_first = getattr(getattr(self.layers[0], "self_attn", None), "batch_first", False)
        is_causal = _is_causal(mask, is_causal, _seq_len(src, batch_first))
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, is_causal=is_causal,
                        src_key_padding_mask=src_key_padding_mask)
        return out if self.norm is None else self.norm(out)


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` applied in turn, then ``norm`` if given;
    PyTorch's ``nn.TransformerDecoder``.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``.
    """

    def __init__(self, decoder_layer: Module, num_layers: int,
                 norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
        batch_first = getattr(getattr(self.layers[0], "self_attn", None), "batch_first", False)
        tgt_is_causal = _is_causal(tgt_mask, tgt_is_causal, _seq_len(tgt, batch_first))
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return out if self.norm is None else self.norm(out)


class Transformer(Module):
    """The encoder-decoder Transformer, PyTorch's ``nn.Transformer``: an encoder of
    ``num_encoder_layers`` layers and a decoder of ``num_decoder_layers``, each ending in a
    LayerNorm; every weight matrix Xavier-uniform initialised.

    Args:
        d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout,
        activation, custom_encoder, custom_decoder, layer_norm_eps, batch_first, norm_first,
        bias, device, dtype: PyTorch's, with PyTorch's defaults (512, 8, 6, 6, 2048, 0.1, relu).

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
    src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
    src_is_causal=None, tgt_is_causal=None, memory_is_causal=False)``.
    Shapes: src (S, N, E), tgt (T, N, E) -> (T, N, E) (batch first: (N, ·, E)).

    Example:
        >>> import backprop as bp
        >>> model = bp.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1,
        ...                           num_decoder_layers=1, dim_feedforward=16)
        >>> mask = model.generate_square_subsequent_mask(4)
        >>> model(bp.randn(6, 2, 8), bp.randn(4, 2, 8), tgt_mask=mask).shape
        (4, 2, 8)
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", custom_encoder: Module | None = None,
                 custom_decoder: Module | None = None, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        check_device(device)
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                batch_first, norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(
                TransformerEncoderLayer(*args, dtype=dtype), num_encoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(
                TransformerDecoderLayer(*args, dtype=dtype), num_decoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src: Tensor, tgt: Tensor, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal: bool | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
        batch_dim = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise ShapeError(f"Transformer: the batch number of src and tgt must be equal, got "
                             f"shapes {src.shape} and {tgt.shape} (batch_first="
                             f"{self.batch_first})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ShapeError(f"Transformer: the feature number of src and tgt must be equal to "
                             f"d_model={self.d_model}, got shapes {src.shape} and {tgt.shape}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)
