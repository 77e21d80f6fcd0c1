"""Op cases for the PyTorch-compatibility ops (issue 15): sort, argsort, topk, narrow (negative
start), triu, tril, index_fill, mm, bmm, scaled_dot_product_attention.
Appended to ``cases.CASES``."""

from __future__ import annotations

import numpy as np

import backprop as bp

from .cases import F, OpCase, fixed, torch


def _sort_ref(x, dim=-1, descending=False):
    idx = np.argsort(-x if descending else x, axis=dim, kind="stable")
    return np.take_along_axis(x, idx, dim), idx


def _topk_ref(x, k, dim=-1, largest=True):
    values, idx = _sort_ref(x, dim, largest)
    keep = np.arange(k)
    return np.take(values, keep, axis=dim), np.take(idx, keep, axis=dim)


def _index_fill_ref(x, dim, index, value):
    y = x.copy()
    y[(slice(None),) * dim + (index,)] = value
    return y


def _sdpa_ref(q, k, v, mask=None, causal=False, scale=None):
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


_INDEX = np.array([2, 0])
_BOOL_MASK = np.array([[True, False, True, True], [True, True, False, True],
                       [False, True, True, True]])

PYTORCH_OPS = [
    OpCase("sort_last_dim", lambda x: x.sort(), ((3, 5),), _sort_ref),
    OpCase("sort_dim0_descending", lambda x: x.sort(dim=0, descending=True), ((4, 3),),
           lambda x: _sort_ref(x, 0, True)),
    OpCase("sort_0d", lambda x: bp.sort(x), ((),), lambda x: (x, np.zeros((), np.int64)),
           torch_fn=lambda x: x.sort()),
    OpCase("argsort_descending", lambda x: x.argsort(dim=1, descending=True), ((2, 5),),
           lambda x: _sort_ref(x, 1, True)[1], differentiable=False),
    OpCase("topk_largest", lambda x: x.topk(2), ((3, 5),), lambda x: _topk_ref(x, 2)),
    OpCase("topk_smallest_dim0", lambda x: x.topk(3, dim=0, largest=False), ((4, 2),),
           lambda x: _topk_ref(x, 3, 0, False)),
    OpCase("topk_size1_axis", lambda x: x.topk(1, dim=1), ((3, 1, 2),),
           lambda x: _topk_ref(x, 1, 1)),
    OpCase("narrow_negative_start", lambda x: x.narrow(0, -2, 2), ((4, 2),), lambda x: x[-2:]),
    OpCase("triu", lambda x: x.triu(), ((3, 4),), np.triu),
    OpCase("tril_batched_offset", lambda x: bp.tril(x, -1), ((2, 3, 3),),
           lambda x: np.tril(x, -1), torch_fn=lambda x: torch.tril(x, -1)),
    OpCase("index_fill", lambda x: x.index_fill(1, bp.tensor(_INDEX), -1.5), ((3, 4),),
           lambda x: _index_fill_ref(x, 1, _INDEX, -1.5),
           torch_fn=lambda x: x.index_fill(1, torch.tensor(_INDEX), -1.5)),
    OpCase("index_fill_tensor_value", lambda x, v: x.index_fill(0, bp.tensor(_INDEX), v),
           ((3, 2), ()), lambda x, v: _index_fill_ref(x, 0, _INDEX, v),
           torch_fn=lambda x, v: x.index_fill(0, torch.tensor(_INDEX), v)),
    OpCase("mm", lambda a, b: a.mm(b), ((2, 3), (3, 4)), np.matmul),
    OpCase("bmm", lambda a, b: bp.bmm(a, b), ((2, 3, 4), (2, 4, 2)), np.matmul,
           torch_fn=lambda a, b: torch.bmm(a, b)),
    OpCase("scaled_dot_product_attention",
           lambda q, k, v: bp.nn.functional.scaled_dot_product_attention(q, k, v),
           ((2, 3, 4), (2, 5, 4), (2, 5, 3)), _sdpa_ref,
           torch_fn=lambda q, k, v: F.scaled_dot_product_attention(q, k, v)),
    OpCase("scaled_dot_product_attention_causal_scale",
           lambda q, k, v: bp.nn.functional.scaled_dot_product_attention(
               q, k, v, is_causal=True, scale=0.3),
           ((1, 2, 4, 3), (1, 2, 4, 3), (1, 2, 4, 2)),
           lambda q, k, v: _sdpa_ref(q, k, v, causal=True, scale=0.3),
           torch_fn=lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                   scale=0.3)),
    OpCase("scaled_dot_product_attention_bool_mask",
           lambda q, k, v, m: bp.nn.functional.scaled_dot_product_attention(q, k, v, m),
           ((2, 3, 2), (2, 4, 2), (2, 4, 2), fixed(_BOOL_MASK)),
           lambda q, k, v, m: _sdpa_ref(q, k, v, m),
           torch_fn=lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m)),
    OpCase("scaled_dot_product_attention_float_mask",
           lambda q, k, v, m: bp.nn.functional.scaled_dot_product_attention(q, k, v, m),
           ((3, 2), (4, 2), (4, 3), (3, 4)), lambda q, k, v, m: _sdpa_ref(q, k, v, m),
           torch_fn=lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m)),
]

