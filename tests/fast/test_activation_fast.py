"""ReLU's numba kernels (``_fast/activation.py``) against NumPy: the same bits forward and
backward (NaN, -0.0 and infinities included), for C-order and channel-major arrays, in place,
with proof that the kernels ran; the NumPy path for layouts they do not take; gradcheck on
both paths."""

import numpy as np
import pytest

import backprop as bp
from backprop import _fast
from backprop.ops import activation as act
from tests.fast.conftest import spy_calls


@pytest.fixture
def kernel_calls(needs_numba, monkeypatch):
    return spy_calls(monkeypatch, _fast.kernels("activation"), ("relu", "relu_grad"))


def _values(shape, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[:6] = [np.nan, -0.0, 0.0, -np.inf, np.inf, -1.0]
    return x


def _same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


LAYOUTS = {
    "c-order": lambda x: x,
    # a convolution's output: (N, C, H, W) over channel-major memory
    "channel-major": lambda x: np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernels_give_numpys_bits(kernel_calls, dtype, layout):
    x = LAYOUTS[layout](_values((4, 6, 16, 16), dtype))
    y = act.relu_array(x)
    _same_bits(y, np.maximum(x, 0))
    assert y.strides == x.strides  # the input's layout kept
    g = LAYOUTS[layout](_values((4, 6, 16, 16), dtype, seed=1))
    y[0, 0, 0, 6:9] = [0.0, 1.0, -0.0]  # y > 0 false and true beside g's NaN and -0.0
    with np.errstate(invalid="ignore"):  # inf·0 in NumPy's product
        expected = g * (y > 0)
    _same_bits(act.relu_grad_array(g, y), expected)
    assert kernel_calls == {"relu": 1, "relu_grad": 1}


def test_relu_in_place_uses_the_kernel(kernel_calls):
    x = _values((64, 128), np.float32)
    expected = np.maximum(x, 0)
    t = bp.tensor(x.copy())
    t.relu_()
    _same_bits(t.numpy(), expected)
    assert kernel_calls == {"relu": 1}


def test_other_layouts_and_small_arrays_take_numpy(kernel_calls):
    x = _values((64, 130), np.float32)[:, ::2]  # gaps: not one dense block
    _same_bits(act.relu_array(x), np.maximum(x, 0))
    g = _values((64, 65), np.float32)
    with np.errstate(invalid="ignore"):  # inf·0 in NumPy's product
        _same_bits(act.relu_grad_array(g, x), g * (x > 0))
    small = _values((10, 10), np.float32)
    _same_bits(act.relu_array(small), np.maximum(small, 0))
    ints = np.arange(-5000, 5000)
    assert np.array_equal(act.relu_array(ints), np.maximum(ints, 0))
    assert kernel_calls == {}


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_trains_alike_on_both_paths(needs_numba, monkeypatch, inplace):
    """A layer's forward and backward through nn.ReLU: the same bits with and without numba."""
    from backprop.backends import fast

    def run(enabled):
        bp.manual_seed(0)
        model = bp.nn.Sequential(bp.nn.Conv2d(3, 8, 3, padding=1), bp.nn.ReLU(inplace=inplace),
                                 bp.nn.Flatten(), bp.nn.Linear(8 * 16 * 16, 512),
                                 bp.nn.ReLU(inplace=inplace), bp.nn.Linear(512, 2))
        x = bp.tensor(np.random.default_rng(0).standard_normal((8, 3, 16, 16), np.float32))
        with fast.flags(enabled=enabled):
            model(x).square().sum().backward()
        return [p.grad.numpy().tobytes() for p in model.parameters()]

    calls = spy_calls(monkeypatch, _fast.kernels("activation"), ("relu", "relu_grad"))
    assert run(True) == run(False)
    # the conv ReLU's gradient arrives from Flatten in C order while its output is channel-major:
    # memory orders differ, so that one product takes NumPy's path
    assert calls == {"relu": 2, "relu_grad": 1}


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_gradcheck_on_the_kernel_path(needs_numba, monkeypatch, inplace):
    monkeypatch.setattr(act, "_FAST_MIN", 1)  # so a gradcheck-sized input takes the kernels
    calls = spy_calls(monkeypatch, _fast.kernels("activation"), ("relu", "relu_grad"))
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    x[np.abs(x) < 0.05] = 0.5  # away from the kink
    t = bp.tensor(x, requires_grad=True)

    def f(a):
        return a.clone().relu_() if inplace else bp.relu(a)

    assert bp.gradcheck(f, (t,))
    assert calls["relu"] >= 1 and calls["relu_grad"] >= 1
