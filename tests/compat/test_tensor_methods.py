"""The Tensor methods PyTorch programs call (issue 15), each run on backprop and on torch from
the same values: same results, same dtypes, and errors where torch raises. The differentiable
ops among them (sort, topk, narrow, triu, index_fill, mm, bmm) are also in the op table
(``tests/ops/cases_pytorch.py``: gradcheck, gradgradcheck, torch)."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")


def _pair(array):
    return bp.tensor(array), torch.tensor(array)


def _same(ours, theirs):
    if isinstance(theirs, tuple):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
        return
    expected = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    got = ours.data if isinstance(ours, bp.Tensor) else np.asarray(ours)
    assert got.shape == expected.shape and got.dtype == expected.dtype, (got, expected)
    np.testing.assert_array_equal(got, expected)


def _raises_like_torch(fn, ours, theirs):
    with pytest.raises(Exception) as t_exc:
        fn(theirs)
    with pytest.raises(Exception) as b_exc:
        fn(ours)
    return t_exc.value, b_exc.value


def test_comparison_methods_match_the_operators_and_torch(rng):
    a = rng.integers(0, 3, (3, 4)).astype(np.float32)
    b = rng.integers(0, 3, (3, 4)).astype(np.float32)
    (x, tx), (y, ty) = _pair(a), _pair(b)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        _same(getattr(x, name)(y), getattr(tx, name)(ty))
        _same(getattr(x, name)(1.0), getattr(tx, name)(1.0))
    # the evaluation idiom
    pred, target = bp.tensor([1, 2, 0, 2]), bp.tensor([1, 0, 0, 2])
    assert pred.eq(target.view_as(pred)).sum().item() == 3


def test_shape_queries_type_and_format(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    x, tx = _pair(a)
    assert x.size(1) == tx.size(1) and x.size(-1) == tx.size(-1)
    assert x.dim() == tx.dim() and x.numel() == tx.numel() == x.nelement()
    for dtype in ("float32", "float64", "float16", "int64", "int32", "uint8", "bool"):
        assert x.to(getattr(bp, dtype)).element_size() == \
            tx.to(getattr(torch, dtype)).element_size()
        assert x.to(getattr(bp, dtype)).type() == tx.to(getattr(torch, dtype)).type()
    assert x.type(bp.float64).dtype == np.float64 and x.type("torch.DoubleTensor").dtype == \
        np.float64
    assert x.contiguous() is x and x.is_contiguous() == tx.is_contiguous()
    loss, tloss = _pair(np.float32(0.123456))
    assert f"{loss:.4f}" == f"{tloss:.4f}" == "0.1235"
    assert f"{bp.tensor(3):>4d}" == f"{torch.tensor(3):>4d}"
    assert f"{x}" == str(x)
    for t in (x, tx):  # torch refuses a format spec on a tensor with elements
        with pytest.raises(TypeError):
            format(t, ".2f")


def test_new_constructors_follow_the_tensor_dtype(rng):
    for dtype in ("float64", "int64"):
        x = bp.ones(2, dtype=getattr(bp, dtype))
        tx = torch.ones(2, dtype=getattr(torch, dtype))
        _same(x.new_zeros(2, 3), tx.new_zeros(2, 3))
        _same(x.new_ones((3,)), tx.new_ones((3,)))
        _same(x.new_full((2, 2), 7), tx.new_full((2, 2), 7))
        _same(x.new_tensor([1, 2]), tx.new_tensor([1, 2]))
        assert x.new_empty(4).shape == tuple(tx.new_empty(4).shape)
    x = bp.ones(2)
    assert x.new_zeros(2, dtype=bp.int64).dtype == np.int64
    assert x.new_zeros(2, requires_grad=True).requires_grad


def test_mm_bmm_narrow_topk_sort_match_torch(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    (x, tx), (y, ty) = _pair(a), _pair(b)
    np.testing.assert_allclose(x.mm(y).data, tx.mm(ty).numpy(), rtol=1e-12)
    c, d = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    np.testing.assert_allclose(bp.bmm(bp.tensor(c), bp.tensor(d)).data,
                               torch.bmm(torch.tensor(c), torch.tensor(d)).numpy(), rtol=1e-12)
    _same(x.narrow(1, 1, 2), tx.narrow(1, 1, 2))
    _same(x.narrow(0, -2, 2), tx.narrow(0, -2, 2))
    _same(x.topk(2), tx.topk(2))
    _same(x.topk(3, dim=0, largest=False), tx.topk(3, dim=0, largest=False))
    _same(x.sort(dim=0, descending=True), tx.sort(dim=0, descending=True))
    _same(x.argsort(dim=1), tx.argsort(dim=1))
    # the named fields of torch's return type
    _same((x.topk(1).values, x.topk(1).indices), (tx.topk(1).values, tx.topk(1).indices))
    _same((x.sort().values, x.sort().indices), (tx.sort().values, tx.sort().indices))
    ints = np.array([[3, 1, 2], [0, 5, 4]])
    _same(bp.tensor(ints).sort(descending=True), torch.tensor(ints).sort(descending=True))
    _same(bp.triu(x, 1), torch.triu(tx, 1))
    _same(x.tril(-1), tx.tril(-1))


@pytest.mark.parametrize("bad", [
    lambda t: t.mm(t),                    # (3, 4) @ (3, 4)
    lambda t: t.mm(t[0]),                 # a vector
    lambda t: t.bmm(t),                   # not 3-D
    lambda t: t.narrow(0, 2, 2),          # past the end
    lambda t: t.topk(5),                  # k larger than the dimension
    lambda t: t.triu()[0].triu(),         # 1-D
    lambda t: t.index_fill(1, t.new_tensor([5]).long(), 0.0),  # index out of range
    lambda t: t.fill_diagonal_(1.0) if t.ndim == 3 else t.reshape(2, 2, 3).fill_diagonal_(0.0),
])
def test_the_new_methods_raise_where_torch_raises(bad, rng):
    x, tx = _pair(rng.standard_normal((3, 4)))
    _raises_like_torch(bad, x, tx)


def test_fill_diagonal_matches_torch_including_tall_and_wrap():
    for shape, wrap in [((3, 3), False), ((4, 2), False), ((7, 3), False), ((7, 3), True),
                        ((2, 5), True), ((3, 3, 3), False)]:
        x, tx = bp.zeros(*shape), torch.zeros(*shape)
        assert x.fill_diagonal_(2.5, wrap=wrap) is x
        tx.fill_diagonal_(2.5, wrap=wrap)
        _same(x, tx)


def test_index_fill_and_masked_fill_in_place_match_torch(rng):
    a = rng.standard_normal((3, 4))
    x, tx = _pair(a)
    idx = [3, 0]
    assert x.index_fill_(1, bp.tensor(idx), -1.0) is x
    tx.index_fill_(1, torch.tensor(idx), -1.0)
    _same(x, tx)
    mask = rng.random((1, 4)) < 0.5  # broadcast over the rows
    assert x.masked_fill_(bp.tensor(mask), 9.0) is x
    tx.masked_fill_(torch.tensor(mask), 9.0)
    _same(x, tx)
    _same(x.index_fill(0, bp.tensor([1]), 0.5), tx.index_fill(0, torch.tensor([1]), 0.5))


def test_in_place_fills_on_a_recorded_tensor_give_torch_s_gradients(rng):
    a = rng.standard_normal((3, 3))
    results = []
    for m in (bp, torch):
        w = m.tensor(a, requires_grad=True)
        v = m.tensor(2.0, dtype=w.dtype, requires_grad=True)
        y = w * 3  # a non-leaf: in-place ops on it are recorded
        y.fill_diagonal_(0.0)
        y.index_fill_(1, m.tensor([2]), v)
        y.masked_fill_(y > 2.0, -1.0)
        (y * m.tensor(np.arange(9.0).reshape(3, 3))).sum().backward()
        results.append((np.asarray(y.detach()), np.asarray(w.grad), float(v.grad)))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    leaf = bp.ones(2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf.fill_diagonal_(0.0)  # as torch: a leaf that requires grad is not changed in place


def test_uniform_and_normal_fill_in_place_under_no_grad():
    w = bp.empty(200, 50)
    g = bp.Generator().manual_seed(0)
    with bp.no_grad():
        assert w.uniform_(-2.0, 2.0, generator=g) is w
    assert w.data.min() >= -2.0 and w.data.max() < 2.0 and abs(w.data.mean()) < 0.05
    w.normal_(1.0, 0.5)
    assert abs(w.data.mean() - 1.0) < 0.02 and abs(w.data.std() - 0.5) < 0.02
    assert w.dtype == np.float32


def test_augmented_assignment_updates_in_place_as_torch(rng):
    # the manual-SGD idiom of PyTorch's autograd tutorial: w must stay the same leaf
    a = rng.standard_normal(3)
    results = []
    for m in (bp, torch):
        w = m.tensor(a, requires_grad=True)
        alias = w
        for _ in range(3):
            loss = (w * w).sum()
            loss.backward()
            with m.no_grad():
                w -= 0.1 * w.grad
                w *= 1.0
                w /= 1.0
                w += 0.0
            w.grad = None
        assert w is alias and w.is_leaf and w.requires_grad
        results.append(np.asarray(w.detach()))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
    y, ty = bp.ones(2, requires_grad=True) * 2, torch.ones(2, requires_grad=True) * 2
    y += 1.0  # recorded on a non-leaf, in both
    ty += 1.0
    assert y.requires_grad and ty.requires_grad and y.tolist() == ty.tolist()


def test_floor_division_and_remainder_match_torch(rng):
    a = np.array([-7.5, -3.0, 0.0, 2.5, 7.0, 1.25])
    b = np.array([2.0, -3.0, 4.0, 2.0, -2.5, 0.5])
    (x, tx), (y, ty) = _pair(a), _pair(b)
    for op in (lambda u, v: u // v, lambda u, v: u % v, lambda u, v: u % 2.0,
               lambda u, v: 7.0 // v, lambda u, v: 5.0 % v):
        np.testing.assert_allclose(op(x, y).data, op(tx, ty).numpy(), rtol=1e-12, atol=1e-12)
    ints = np.arange(-5, 6)
    _same(bp.tensor(ints) % 3, torch.tensor(ints) % 3)
    _same(bp.tensor(ints) // 3, torch.tensor(ints) // 3)
    xg, txg = bp.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    yg, tyg = bp.tensor(b, requires_grad=True), torch.tensor(b, requires_grad=True)
    (xg % yg).sum().backward()
    (txg % tyg).sum().backward()
    np.testing.assert_allclose(xg.grad.data, txg.grad.numpy())
    np.testing.assert_allclose(yg.grad.data, tyg.grad.numpy())
