"""Cross-entropy's numba kernels (``_fast/loss.py``) against the NumPy path: the same bits for
the loss and the gradient (NumPy's pairwise sums repeated in its order, NumPy's exp and log),
every reduction, both dtypes, rows and batches longer than NumPy's 128-element summation
block, non-finite logits; the NumPy path for what the kernels do not take (ignored targets,
weights, smoothing); a compiled step through the replay kernel; gradgradcheck."""

import numpy as np
import pytest

import backprop as bp
from backprop import _fast
from backprop.backends import fast
from backprop.nn import functional as F
from backprop.ops import nn_ops
from tests.fast.conftest import spy_calls

ENTRY = ("shift_by_row_max", "row_sums", "finish_log_softmax", "grad_from_probs")


@pytest.fixture
def kernel_calls(needs_numba, monkeypatch):
    return spy_calls(monkeypatch, _fast.kernels("loss"), ENTRY)


def _loss_and_grad(x, t, **kw):
    xt = bp.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, bp.tensor(t), **kw)
    (loss.sum() if loss.ndim else loss * 1.5).backward()  # a gradient other than 1
    return loss.detach().numpy(), xt.grad.numpy()


def _numpy_path(x, t, **kw):
    with fast.flags(enabled=False):
        return _loss_and_grad(x, t, **kw)


def _same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(128, 10), (7, 3), (300, 1000), (1, 1), (129, 129), (200, 7)])
def test_same_bits_as_numpy(kernel_calls, n, c, dtype, reduction):
    rng = np.random.default_rng(n * 1000 + c)
    x = (rng.standard_normal((n, c)) * 6).astype(dtype)
    t = rng.integers(0, c, n)
    ours = _loss_and_grad(x, t, reduction=reduction)
    assert kernel_calls == dict.fromkeys(ENTRY, 1)
    for a, b in zip(ours, _numpy_path(x, t, reduction=reduction)):
        _same_bits(a, b)


def test_pairwise_sums_match_numpy_beyond_one_block(needs_numba):
    # the kernels' sums on their own, at lengths around NumPy's split points
    fk = _fast.kernels("loss")
    rng = np.random.default_rng(1)
    for c in (1, 7, 8, 9, 127, 128, 129, 136, 255, 256, 257, 1000, 4099):
        e = rng.random((3, c)).astype(np.float32) * 100
        out = np.empty(3, np.float32)
        fk.row_sums(e, out)
        _same_bits(out, np.sum(e, axis=1))


def test_non_finite_logits_as_numpy(kernel_calls):
    x = np.random.default_rng(2).standard_normal((6, 5)).astype(np.float32)
    x[0, 1] = np.nan
    x[1, 2] = np.inf
    x[2, :] = -np.inf
    x[3, 4] = -np.inf
    x[4, 0] = 1e30
    t = np.array([1, 2, 0, 4, 0, 3])
    with np.errstate(invalid="ignore"):
        ours = _loss_and_grad(x, t, reduction="none")
        ref = _numpy_path(x, t, reduction="none")
    assert kernel_calls["shift_by_row_max"] == 1
    for a, b in zip(ours, ref):
        _same_bits(a, b)


@pytest.mark.parametrize("kw", [dict(ignore_index=0), dict(ignore_index=2),
                                dict(label_smoothing=0.1)])
def test_numpy_path_for_what_the_kernels_do_not_take(kernel_calls, kw):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    t = rng.integers(0, 4, 16)
    t[:3] = [0, 2, 1]
    ours = _loss_and_grad(x, t, **kw)
    assert "grad_from_probs" not in kernel_calls  # the NumPy rule ran
    for a, b in zip(ours, _numpy_path(x, t, **kw)):
        _same_bits(a, b)


def test_weighted_loss_takes_the_numpy_path(kernel_calls):
    x = np.random.default_rng(4).standard_normal((8, 3))
    t = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    w = bp.tensor([1.0, 2.0, 0.5], dtype=bp.float64)
    ours = _loss_and_grad(x, t, weight=w)
    assert kernel_calls == {}
    for a, b in zip(ours, _numpy_path(x, t, weight=w)):
        _same_bits(a, b)


def test_bad_target_raises_as_on_the_numpy_path(needs_numba):
    x = bp.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    with pytest.raises(IndexError):
        nn_ops.CrossEntropy.apply(x, target=np.array([0, 3]))
    with fast.flags(enabled=False), pytest.raises(IndexError):
        nn_ops.CrossEntropy.apply(x, target=np.array([0, 3]))


def test_second_derivatives_through_the_fast_forward(kernel_calls):
    rng = np.random.default_rng(5)
    x = bp.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    t = bp.tensor(rng.integers(0, 4, 5))
    assert bp.gradcheck(lambda a: F.cross_entropy(a, t), (x,))
    assert bp.gradgradcheck(lambda a: F.cross_entropy(a, t, reduction="sum"), (x,))
    assert kernel_calls["shift_by_row_max"] >= 1


def test_compiled_step_uses_the_kernels_and_matches_eager(kernel_calls):
    def make():
        bp.manual_seed(0)
        model = bp.nn.Sequential(bp.nn.Linear(6, 8), bp.nn.ReLU(), bp.nn.Linear(8, 5))
        return model, bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step_of(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step

    rng = np.random.default_rng(6)
    data = [(bp.tensor(rng.standard_normal((4, 6)).astype(np.float32)),
             bp.tensor(rng.integers(0, 5, 4))) for _ in range(5)]
    eager_model, eager_opt = make()
    comp_model, comp_opt = make()
    eager, compiled = step_of(eager_model, eager_opt), bp.compile(step_of(comp_model, comp_opt))
    for x, y in data:
        _same_bits(eager(x, y).detach().numpy(), compiled(x, y).detach().numpy())
    for a, b in zip(eager_model.parameters(), comp_model.parameters()):
        _same_bits(a.detach().numpy(), b.detach().numpy())
    assert kernel_calls["grad_from_probs"] == 10  # every step's backward, replayed ones too
