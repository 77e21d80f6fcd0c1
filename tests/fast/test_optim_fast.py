"""The optimizers' numba update kernels (``_fast/optim.py``) against their NumPy rules: bit for
bit (the same operations in the same order and dtype), over several steps, shapes and both
float dtypes, and proof that the kernels ran."""

import numpy as np
import pytest

import backprop as bp
from backprop import _fast
from backprop.backends import fast
from tests.fast.conftest import spy_calls


@pytest.fixture
def kernel_calls(needs_numba, monkeypatch):
    return spy_calls(monkeypatch, _fast.kernels("optim"), ("sgd_momentum", "adam"))


SHAPES = {
    # a parameter large enough for the per-parameter loop (the small ones take NumPy's rule)
    "loop": [(300, 200), (200,), (7, 3), (3,)],
    # small parameters updated over one flat buffer, 4,240 elements in all
    "flat": [(64, 40), (40,), (40, 40), (40,)],
}


def _train(make_opt, dtype, enabled: bool, steps: int = 6, shapes=SHAPES["loop"]):
    """A few steps on fixed gradients; the parameters' and state's bytes after each step."""
    rng = np.random.default_rng(0)
    params = [bp.nn.Parameter(bp.tensor(rng.standard_normal(s).astype(dtype))) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    opt = make_opt(params)
    out = []
    with fast.flags(enabled=enabled):
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = bp.tensor(g)
            opt.step()
            snap = [p.data.tobytes() for p in params]
            for p in params:
                snap += [v.data.tobytes() for v in opt.state[p].values()
                         if isinstance(v, bp.Tensor)]
            out.append(snap)
    return out


OPTIMIZERS = {
    "sgd-momentum": lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd-momentum-wd": lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "sgd-momentum-maximize": lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9, maximize=True),
    "adam": lambda ps: bp.optim.Adam(ps, lr=1e-2),
    "adam-wd": lambda ps: bp.optim.Adam(ps, lr=1e-2, weight_decay=1e-2),
    "adamw": lambda ps: bp.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
}


@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_kernel_equals_numpy_rule_bit_for_bit(kernel_calls, name, dtype, layout):
    shapes = SHAPES[layout]
    numpy_path = _train(OPTIMIZERS[name], dtype, enabled=False, shapes=shapes)
    assert sum(kernel_calls.values()) == 0
    kernel_path = _train(OPTIMIZERS[name], dtype, enabled=True, shapes=shapes)
    kind = "adam" if "adam" in name else "sgd_momentum"
    # every step after the first (SGD's first step starts the buffer: NumPy's rule)
    assert kernel_calls[kind] == (6 if kind == "adam" else 5)
    for step, (a, b) in enumerate(zip(numpy_path, kernel_path)):
        for k, (u, v) in enumerate(zip(a, b)):
            assert u == v, f"{name} {np.dtype(dtype).name}: step {step}, array {k} differs"


@pytest.mark.parametrize("make_opt", [
    lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1),
    lambda ps: bp.optim.Adam(ps, lr=1e-2, amsgrad=True),
], ids=["nesterov", "dampening", "amsgrad"])
def test_other_cases_keep_the_numpy_rule(kernel_calls, make_opt):
    _train(make_opt, np.float32, enabled=True, steps=3)
    assert sum(kernel_calls.values()) == 0
