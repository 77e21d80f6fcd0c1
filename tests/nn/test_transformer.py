"""MultiheadAttention and the Transformer modules against PyTorch (issue 15): the same state-dict
keys, and from the same weights the same outputs, attention weights and gradients (float64, to
round-off), with every kind of mask; errors where PyTorch raises."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")


def _copy_weights(ours, theirs):
    """Load torch's weights into ours, after checking the keys are PyTorch's, in its order."""
    state = theirs.state_dict()
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict({k: v.detach().numpy() for k, v in state.items()})


def _close(a, b, what=""):
    np.testing.assert_allclose(a.data if isinstance(a, bp.Tensor) else a,
                               b.detach().numpy(), rtol=1e-9, atol=1e-11, err_msg=what)


def _grads_close(ours, theirs):
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert (p.grad is None) == (tp.grad is None), name
        if p.grad is not None:
            _close(p.grad, tp.grad, name)


def _inputs(rng, *shapes):
    arrays = [rng.standard_normal(s) for s in shapes]
    return ([bp.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


MHA_VARIANTS = [
    {},
    {"batch_first": True},
    {"kdim": 3, "vdim": 5},
    {"add_bias_kv": True, "add_zero_attn": True},
    {"bias": False},
]


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")
@pytest.mark.parametrize("kw", MHA_VARIANTS, ids=lambda kw: ",".join(kw) or "default")
@pytest.mark.parametrize("masks", ["none", "padding+float", "bool", "3d", "per_head_weights"])
def test_multihead_attention_matches_torch(kw, masks, rng):
    ours = bp.nn.MultiheadAttention(8, 2, dtype=bp.float64, **kw)
    theirs = torch.nn.MultiheadAttention(8, 2, **kw).double()
    _copy_weights(ours, theirs)
    n, length, source = 3, 4, 6
    shapes = [(length, n, 8), (source, n, kw.get("kdim", 8)), (source, n, kw.get("vdim", 8))]
    if kw.get("batch_first"):
        shapes = [(s[1], s[0], s[2]) for s in shapes]
    (q, k, v), (tq, tk, tv) = _inputs(rng, *shapes)
    extra = {}
    padding = np.zeros((n, source), bool)
    padding[1, 4:] = True
    if masks == "padding+float":
        extra = {"key_padding_mask": padding, "attn_mask": rng.standard_normal((length, source))}
    elif masks == "bool":
        extra = {"attn_mask": rng.random((length, source)) < 0.3,
                 "key_padding_mask": padding}
    elif masks == "3d":
        extra = {"attn_mask": rng.standard_normal((n * 2, length, source))}
    elif masks == "per_head_weights":
        extra = {"average_attn_weights": False}
    bkw = {key: bp.tensor(val) if isinstance(val, np.ndarray) else val
           for key, val in extra.items()}
    tkw = {key: torch.tensor(val) if isinstance(val, np.ndarray) else val
           for key, val in extra.items()}
    out, weights = ours(q, k, v, **bkw)
    tout, tweights = theirs(tq, tk, tv, **tkw)
    _close(out, tout, "output")
    _close(weights, tweights, "weights")
    g = rng.standard_normal(out.shape)
    (out * bp.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    _grads_close(ours, theirs)
    for a, b in ((q, tq), (k, tk), (v, tv)):
        _close(a.grad, b.grad, "input gradient")


def test_self_attention_unbatched_and_without_weights_matches_torch(rng):
    ours = bp.nn.MultiheadAttention(6, 3, dtype=bp.float64)
    theirs = torch.nn.MultiheadAttention(6, 3).double()
    _copy_weights(ours, theirs)
    (x,), (tx,) = _inputs(rng, (5, 6))
    out, weights = ours(x, x, x)
    tout, tweights = theirs(tx, tx, tx)
    _close(out, tout)
    _close(weights, tweights)
    causal = bp.nn.Transformer.generate_square_subsequent_mask(5, dtype=bp.float64)
    tcausal = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    _close(causal, tcausal)
    out, none = ours(x, x, x, attn_mask=causal, need_weights=False, is_causal=True)
    tout, tnone = theirs(tx, tx, tx, attn_mask=tcausal, need_weights=False, is_causal=True)
    assert none is None and tnone is None
    _close(out, tout)


@pytest.mark.parametrize("bad", [
    lambda m: m.nn.MultiheadAttention(10, 3),                        # not divisible
    lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(3, 1, 4), m.ones(3, 1, 4), m.ones(3, 1, 4),
                                            is_causal=True),         # hint without a mask
    lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(3, 1, 4), m.ones(3, 1, 4), m.ones(3, 1, 4),
                                            attn_mask=m.zeros(2, 3)),  # wrong mask shape
    lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 3), m.ones(2, 3), m.ones(2, 3), m.zeros(2, 2), is_causal=True),
    lambda m: m.nn.Transformer(8, 2, 1, 1, 16)(m.ones(3, 2, 8), m.ones(3, 1, 8)),  # batches
    lambda m: m.nn.TransformerEncoderLayer(4, 2, 8, activation="tanh"),
])
def test_attention_raises_where_torch_raises(bad):
    with pytest.raises((AssertionError, RuntimeError, ValueError)):
        bad(torch)
    with pytest.raises((ValueError, RuntimeError, bp.ShapeError)):
        bad(bp)


def test_scaled_dot_product_attention_grouped_query_matches_torch(rng):
    (q, k, v), (tq, tk, tv) = _inputs(rng, (2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 3))
    out = bp.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True)
    _close(out, tout)
    out.sum().backward()
    tout.sum().backward()
    _close(k.grad, tk.grad)


@pytest.mark.parametrize("kw", [
    {},
    {"norm_first": True, "activation": "gelu", "batch_first": True},
    {"bias": False, "layer_norm_eps": 1e-3},
], ids=["post_norm", "pre_norm_gelu_batch_first", "no_bias"])
def test_encoder_decoder_layers_and_stacks_match_torch(kw, rng):
    batch_first = kw.get("batch_first", False)
    def seq(length):
        return (2, length, 8) if batch_first else (length, 2, 8)

    pairs = [
        (bp.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, dtype=bp.float64, **kw),
         torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, **kw).double()),
        (bp.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, dtype=bp.float64, **kw),
         torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, **kw).double()),
    ]
    pairs.append((bp.nn.TransformerEncoder(pairs[0][0], 2, bp.nn.LayerNorm(8,
                                                                           dtype=bp.float64)),
                  torch.nn.TransformerEncoder(pairs[0][1], 2, torch.nn.LayerNorm(8).double(),
                                              enable_nested_tensor=False)))
    pairs.append((bp.nn.TransformerDecoder(pairs[1][0], 2), torch.nn.TransformerDecoder(
        pairs[1][1], 2)))
    mask = np.triu(np.full((5, 5), -np.inf), 1)
    padding = np.zeros((2, 6), bool)
    padding[0, 5:] = True
    for ours, theirs in pairs:
        _copy_weights(ours, theirs)
        decoder = "Decoder" in type(ours).__name__
        (x, mem), (tx, tmem) = _inputs(rng, seq(5), seq(6))
        if decoder:
            out = ours(x, mem, tgt_mask=bp.tensor(mask),
                       memory_key_padding_mask=bp.tensor(padding))
            tout = theirs(tx, tmem, tgt_mask=torch.tensor(mask),
                          memory_key_padding_mask=torch.tensor(padding))
        else:
            out = ours(mem, src_key_padding_mask=bp.tensor(padding))
            tout = theirs(tmem, src_key_padding_mask=torch.tensor(padding))
        _close(out, tout, type(ours).__name__)
        out.pow(2).sum().backward()
        tout.pow(2).sum().backward()
        _grads_close(ours, theirs)
        _close(mem.grad, tmem.grad)


def test_transformer_loads_torch_weights_and_agrees_in_eval_and_training(rng):
    ours = bp.nn.Transformer(8, 2, 2, 2, 16, dtype=bp.float64)
    theirs = torch.nn.Transformer(8, 2, 2, 2, 16).double()
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in theirs.parameters())
    _copy_weights(ours, theirs)
    (src, tgt), (tsrc, ttgt) = _inputs(rng, (6, 3, 8), (4, 3, 8))
    mask = ours.generate_square_subsequent_mask(4, dtype=bp.float64)
    tmask = theirs.generate_square_subsequent_mask(4, dtype=torch.float64)
    ours.eval(), theirs.eval()
    _close(ours(src, tgt, tgt_mask=mask), theirs(tsrc, ttgt, tgt_mask=tmask))
    ours.train()
    bp.manual_seed(0)
    a = ours(src, tgt, tgt_mask=mask)
    b = ours(src, tgt, tgt_mask=mask)
    assert not np.allclose(a.data, b.data)  # dropout 0.1 is active in training


def test_encoder_layers_are_independent_copies():
    layer = bp.nn.TransformerEncoderLayer(4, 2, 8)
    encoder = bp.nn.TransformerEncoder(layer, 3)
    first, second = encoder.layers[0], encoder.layers[1]
    assert first is not layer and first.linear1.weight is not second.linear1.weight
    with bp.no_grad():
        first.linear1.weight.fill_(1.0)
    assert not np.allclose(second.linear1.weight.data, 1.0)
    assert len(list(encoder.parameters())) == 3 * len(list(layer.parameters()))
    keys = list(encoder.state_dict())
    assert keys[0] == "layers.0.self_attn.in_proj_weight" and keys[-1] == "layers.2.norm2.bias"
