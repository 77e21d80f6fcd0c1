"""Normalize, flatten, one_hot on arrays and Tensors."""

import numpy as np
import pytest

import backprop as bp
from backprop.data.transforms import Normalize, flatten, one_hot


def test_normalize_scalar_keeps_float32(rng):
    x = rng.random((4, 1, 3, 3)).astype(np.float32)
    out = Normalize(0.1307, 0.3081)(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (x - 0.1307) / 0.3081, rtol=1e-6)


def test_normalize_per_channel_uses_dim_minus_3_of_images(rng):
    x = rng.random((2, 3, 4, 5)).astype(np.float32)
    out = Normalize([0.1, 0.2, 0.3], [1.0, 2.0, 4.0])(x)
    for c, (m, s) in enumerate([(0.1, 1.0), (0.2, 2.0), (0.3, 4.0)]):
        np.testing.assert_allclose(out[:, c], (x[:, c] - m) / s, rtol=1e-6)
    np.testing.assert_allclose(Normalize([0.1, 0.2, 0.3], [1, 2, 4])(x[0]), out[0], rtol=1e-6)


def test_normalize_per_feature_uses_the_last_dim_of_tables(rng):
    x = rng.random((6, 2)).astype(np.float32)
    out = Normalize([1.0, -1.0], [2.0, 0.5])(x)
    np.testing.assert_allclose(out, (x - [1.0, -1.0]) / [2.0, 0.5], rtol=1e-6)


def test_normalize_channel_count_mismatch_is_named(rng):
    with pytest.raises(ValueError, match=r"3 per-channel values.*\(2, 4, 5, 5\) has 4 channels"):
        Normalize([0, 0, 0], [1, 1, 1])(np.zeros((2, 4, 5, 5), np.float32))


def test_normalize_rejects_zero_std():
    with pytest.raises(ValueError, match="non-zero"):
        Normalize(0.0, [1.0, 0.0])


def test_normalize_on_a_tensor_is_differentiable(rng):
    x = bp.tensor(rng.random((2, 3)).astype(np.float32), requires_grad=True)
    out = Normalize([0.0, 1.0, 2.0], [2.0, 4.0, 8.0])(x)
    assert isinstance(out, bp.Tensor) and out.dtype == np.float32
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.tile([0.5, 0.25, 0.125], (2, 1)))


def test_normalize_fit_standardises_each_channel(rng):
    x = (rng.standard_normal((50, 3, 4, 4)) * np.array([2.0, 5.0, 0.5])[:, None, None] + 3.0)
    x = x.astype(np.float32)
    out = Normalize.fit(x)(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-5)
    overall = Normalize.fit(x, per_channel=False)
    assert len(overall.mean) == 1
    const = Normalize.fit(np.ones((4, 2), np.float32))
    assert const.std.tolist() == [1.0, 1.0]


def test_flatten_arrays_and_tensors():
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert flatten(x).shape == (2, 12)
    assert flatten(x, start_dim=2).shape == (2, 3, 4)
    assert flatten(x, start_dim=0).shape == (24,)
    t = flatten(bp.tensor(x.astype(np.float32)))
    assert isinstance(t, bp.Tensor) and t.shape == (2, 12)


def test_one_hot_matches_pytorch_semantics():
    out = one_hot(np.array([2, 0, 1]))
    assert out.dtype == np.int64
    assert out.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert one_hot(np.array([[1], [0]]), 4).shape == (2, 1, 4)
    assert one_hot(np.array([1]), 3, dtype=np.float32).dtype == np.float32
    t = one_hot(bp.tensor([1, 0]), 2)
    assert isinstance(t, bp.Tensor) and t.tolist() == [[0, 1], [1, 0]]


def test_one_hot_rejects_out_of_range_and_float_labels():
    with pytest.raises(ValueError, match=r"0..2, found 0..3"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(TypeError, match="integers"):
        one_hot(np.array([0.0, 1.0]))
