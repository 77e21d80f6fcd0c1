"""Mixed float dtypes (issue 15's silent upcast): products and layers raise as PyTorch's do,
naming both dtypes; elementwise ops keep promoting, as PyTorch's do."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")


def _models(m):
    return {
        "matmul": lambda a, b: a @ b,
        "mm": lambda a, b: a.mm(b),
        "linear": lambda a, b: m.nn.functional.linear(a, b),
        "Linear": lambda a, b: m.nn.Linear(3, 3).to(b.dtype)(a),
        "conv1d": lambda a, b: m.nn.Conv1d(3, 2, 1).to(b.dtype)(a.reshape(1, 3, 3)),
        "conv2d": lambda a, b: m.nn.Conv2d(1, 2, 2).to(b.dtype)(a.reshape(1, 1, 3, 3)),
        "LSTM": lambda a, b: m.nn.LSTM(3, 2).to(b.dtype)(a.reshape(3, 1, 3)),
        "GRU": lambda a, b: m.nn.GRU(3, 2).to(b.dtype)(a.reshape(3, 1, 3)),
        "RNN": lambda a, b: m.nn.RNN(3, 2).to(b.dtype)(a.reshape(3, 1, 3)),
        "LSTMCell": lambda a, b: m.nn.LSTMCell(3, 2).to(b.dtype)(a),
    }


@pytest.mark.parametrize("name", sorted(_models(bp)))
@pytest.mark.parametrize("first, second", [("float32", "float64"), ("float64", "float32")])
def test_products_and_layers_refuse_mixed_float_dtypes_as_torch(name, first, second, rng):
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    with pytest.raises((RuntimeError, ValueError)):
        _models(torch)[name](torch.tensor(a, dtype=getattr(torch, first)),
                             torch.tensor(b, dtype=getattr(torch, second)))
    with pytest.raises(bp.DtypeError, match=f"{first}.*{second}|{second}.*{first}") as exc:
        _models(bp)[name](bp.tensor(a, dtype=first), bp.tensor(b, dtype=second))
    # catchable the way PyTorch code catches it
    assert isinstance(exc.value, RuntimeError) and isinstance(exc.value, ValueError)
    assert ".to(" in str(exc.value)


@pytest.mark.parametrize("name", sorted(_models(bp)))
def test_the_same_layers_run_when_dtypes_agree(name, rng):
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    for dtype in ("float32", "float64"):
        out = _models(bp)[name](bp.tensor(a, dtype=dtype), bp.tensor(b, dtype=dtype))
        out = out[0] if isinstance(out, tuple) else out
        assert out.dtype == np.dtype(dtype)


def test_elementwise_ops_keep_promoting_as_torch():
    x32, x64 = bp.ones(2, dtype=bp.float32), bp.ones(2, dtype=bp.float64)
    t32, t64 = torch.ones(2, dtype=torch.float32), torch.ones(2, dtype=torch.float64)
    for op in (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: bp.maximum(a, b)
               if isinstance(a, bp.Tensor) else torch.maximum(a, b)):
        assert str(op(x32, x64).dtype) == str(op(t32, t64).dtype).removeprefix("torch.")
    assert (bp.ones(2, 2) @ bp.ones(2, 2, dtype=bp.int64).float()).dtype == np.float32
