"""``inplace=True`` activations (``nn.ReLU(inplace=True)``, ``F.relu(x, inplace=True)``,
``Tensor.relu_``, LeakyReLU, ELU, SiLU): PyTorch's values, gradients and refusals, the input's
own memory overwritten, and bit-identical results to the out-of-place forms."""

import numpy as np
import pytest

import backprop as bp
from backprop.nn import functional as F

try:
    import torch
except ImportError:  # the tests that compare with PyTorch skip; the rest run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

CASES = {
    "relu": (lambda x, ip: F.relu(x, inplace=ip),
             lambda x, ip: torch.nn.functional.relu(x, inplace=ip)),
    "leaky_relu": (lambda x, ip: F.leaky_relu(x, 0.2, inplace=ip),
                   lambda x, ip: torch.nn.functional.leaky_relu(x, 0.2, inplace=ip)),
    "elu": (lambda x, ip: F.elu(x, 0.7, inplace=ip),
            lambda x, ip: torch.nn.functional.elu(x, 0.7, inplace=ip)),
    "silu": (lambda x, ip: F.silu(x, inplace=ip),
             lambda x, ip: torch.nn.functional.silu(x, inplace=ip)),
}


def _grads(fn, w_np, inplace, lib):
    w = (bp.tensor(w_np, requires_grad=True) if lib is bp
         else torch.tensor(w_np, requires_grad=True))
    h = w * 1.5  # a tensor made by an op: in-place is allowed on it
    y = fn(h, inplace)
    assert (y is h) == inplace
    (y * y).sum().backward()
    return y.detach().numpy() if lib is torch else y.data.copy(), w.grad.numpy() if lib is torch \
        else w.grad.data


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_match_torch_and_the_out_of_place_form(rng, name, dtype):
    ours, theirs = CASES[name]
    w_np = rng.standard_normal((4, 5)).astype(dtype)
    y_in, g_in = _grads(ours, w_np, True, bp)
    y_out, g_out = _grads(ours, w_np, False, bp)
    assert y_in.tobytes() == y_out.tobytes() and g_in.tobytes() == g_out.tobytes()
    y_t, g_t = _grads(theirs, w_np, True, torch)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y_in, y_t, rtol=tol, atol=tol)
    np.testing.assert_allclose(g_in, g_t, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", list(CASES))
def test_a_leaf_that_requires_grad_is_refused(name):
    x = bp.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        CASES[name][0](x, True)
    with bp.no_grad():  # as PyTorch: allowed when nothing is recorded
        y = CASES[name][0](x, True)
    assert y is x


def test_relu_inplace_overwrites_memory_and_bumps_the_version():
    w = bp.randn(6, requires_grad=True)
    h = w - 0.1
    other = h * h  # saved h's old values
    view = h.detach()
    F.relu(h, inplace=True)
    assert (view.data >= 0).all()  # the same memory
    with pytest.raises(RuntimeError, match="modified by an in"):
        other.sum().backward()


def test_inplace_on_a_view_writes_into_its_base():
    w = bp.randn(2, 3, requires_grad=True)
    h = w * 1.0
    F.relu(h[0], inplace=True)
    h.sum().backward()
    expected = np.ones((2, 3), np.float32)
    expected[0] = w.data[0] > 0
    np.testing.assert_array_equal(w.grad.data, expected)


def test_modules_take_inplace_and_show_it():
    # PyTorch's reprs
    assert repr(bp.nn.ReLU(inplace=True)) == "ReLU(inplace=True)"
    assert repr(bp.nn.ReLU()) == "ReLU()"
    assert repr(bp.nn.LeakyReLU(0.1, inplace=True)) == "LeakyReLU(negative_slope=0.1, inplace=True)"
    assert repr(bp.nn.ELU(inplace=True)) == "ELU(alpha=1.0, inplace=True)"
    assert repr(bp.nn.SiLU(inplace=True)) == "SiLU(inplace=True)"
    if torch is not None:
        for ours, theirs in ((bp.nn.ReLU(inplace=True), torch.nn.ReLU(inplace=True)),
                             (bp.nn.LeakyReLU(0.1, True), torch.nn.LeakyReLU(0.1, True)),
                             (bp.nn.ELU(inplace=True), torch.nn.ELU(inplace=True)),
                             (bp.nn.SiLU(inplace=True), torch.nn.SiLU(inplace=True))):
            assert repr(ours) == repr(theirs)
    x = bp.randn(3, 4)
    y = bp.nn.ReLU(inplace=True)(x)
    assert y is x and (x.data >= 0).all()
    assert bp.randn(3).relu_().data.min() >= 0


def test_inplace_relu_model_trains_as_the_out_of_place_one_compiled_too():
    def run(inplace, compiled):
        bp.manual_seed(0)
        model = bp.nn.Sequential(bp.nn.Linear(5, 8), bp.nn.ReLU(inplace=inplace),
                                 bp.nn.Linear(8, 3))
        opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = bp.compile(step) if compiled else step
        rng = np.random.default_rng(1)
        for _ in range(6):
            fn(bp.tensor(rng.standard_normal((4, 5)).astype(np.float32)),
               bp.tensor(rng.integers(0, 3, 4)))
        if compiled:
            assert any(e.tape is not None for e in fn._entries.values())
        return b"".join(p.data.tobytes() for p in model.parameters())

    plain = run(False, False)
    assert run(True, False) == plain
    assert run(True, True) == plain

