"""backprop.compile: a captured, replayed step equals the eager step bit for bit.

Each test runs the same seeded step sequence twice from the same seed, once eagerly and once
compiled, and compares, after every step, the loss, every parameter, every gradient, the
buffers and the optimizer state byte for byte (not allclose: the tape replays the very kernels
eager runs, in the same order, so anything but equality is a bug).
"""

import warnings

import numpy as np
import pytest

import backprop as bp
from backprop import nn, optim
from backprop.nn import functional as F

STEPS = 20


def _bytes(t):
    return None if t is None else (t.data.dtype.str, t.data.shape, t.data.tobytes())


def _snapshot(model, opt, loss):
    state = []
    for p in model.parameters():
        state.append(_bytes(p))
        state.append(_bytes(p.grad))
        for k, v in sorted(opt.state[p].items()):
            state.append((k, _bytes(v) if isinstance(v, bp.Tensor) else v))
    for b in model.buffers():
        state.append(_bytes(b))
    return _bytes(loss), state


def _run(build, batches, compiled: bool, seed: int = 0):
    """``build()`` -> (model, opt, step, scheduler or None); returns one snapshot per step."""
    bp.manual_seed(seed)
    model, opt, step, sched = build()
    fn = bp.compile(step) if compiled else step
    snaps = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to eager would hide the tape from the test
        for x, y in batches:
            loss = fn(x, y)
            if sched is not None:
                sched.step()
            snaps.append(_snapshot(model, opt, loss))
    return snaps, fn


def _assert_identical(build, batches, seed: int = 0):
    eager, _ = _run(build, batches, compiled=False, seed=seed)
    comp, fn = _run(build, batches, compiled=True, seed=seed)
    assert any(e.tape is not None for e in fn._entries.values()), "nothing was replayed"
    for i, (a, b) in enumerate(zip(eager, comp)):
        assert a[0] == b[0], f"step {i}: loss differs"
        for k, (u, v) in enumerate(zip(a[1], b[1])):
            assert u == v, f"step {i}: state entry {k} differs"
    return fn


def _step_fn(model, opt, loss_fn):
    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _batches(rng, x_shape, n_classes=None, y_shape=None, dtype=np.float32, n=STEPS):
    out = []
    for _ in range(n):
        x = bp.tensor(rng.standard_normal(x_shape).astype(dtype))
        if n_classes is not None:
            y = bp.tensor(rng.integers(0, n_classes, x_shape[0]))
        else:
            y = bp.tensor(rng.standard_normal(y_shape).astype(dtype))
        out.append((x, y))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_mlp_sgd_momentum_identical(rng, dtype):
    def build():
        model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                              nn.Linear(16, 1))
        if dtype == np.float64:
            model.to(bp.float64)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, _step_fn(model, opt, F.mse_loss), None

    _assert_identical(build, _batches(rng, (1, 2), y_shape=(1, 1), dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mnist_mlp_adam_with_schedule_identical(rng, dtype):
    def build():
        model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                              nn.Linear(32, 10))
        if dtype == np.float64:
            model.to(bp.float64)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        return model, opt, _step_fn(model, opt, F.cross_entropy), sched

    _assert_identical(build, _batches(rng, (32, 784), n_classes=10, dtype=dtype))


def test_lenet_batchnorm_dropout_identical(rng):
    def build():
        model = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Dropout(0.3), nn.Linear(120, 84),
            nn.ReLU(), nn.Linear(84, 10))
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, _step_fn(model, opt, F.cross_entropy), None

    _assert_identical(build, _batches(rng, (8, 1, 28, 28), n_classes=10, n=8))


class _LastStep(nn.Module):
    """A recurrent layer, then a linear head on its last time step."""

    def __init__(self, cell: str, n_in: int, hidden: int):
        super().__init__()
        self.rnn = getattr(nn, cell)(n_in, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1])


def test_lstm_identical(rng):
    def build():
        model = _LastStep("LSTM", 8, 16)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        return model, opt, _step_fn(model, opt, F.mse_loss), None

    _assert_identical(build, _batches(rng, (12, 4, 8), y_shape=(4, 1), n=10))


def test_recaptures_on_a_shape_change(rng):
    """The last partial batch has another shape: a tape of its own, results still equal."""
    batches = _batches(rng, (16, 10), y_shape=(16, 1), n=6)
    batches = [b for pair in zip(batches, _batches(rng, (5, 10), y_shape=(5, 1), n=6))
               for b in pair]

    def build():
        model = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 1))
        opt = optim.SGD(model.parameters(), lr=0.1)
        return model, opt, _step_fn(model, opt, F.mse_loss), None

    fn = _assert_identical(build, batches)
    shapes = [k[2][0] for k, e in fn._entries.items() if e.tape is not None]
    assert sorted(shapes) == [(5, 10), (16, 10)]


def test_recaptures_on_train_eval_switch(rng):
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = bp.compile(_step_fn(model, opt, F.mse_loss))
    x, y = bp.randn(3, 4), bp.randn(3, 1)
    for _ in range(3):
        step(x, y)
    model.eval()
    for _ in range(3):
        step(x, y)
    modes = {k[1] for k, e in step._entries.items() if e.tape is not None}
    assert len(modes) == 2


def test_item_inside_the_step_falls_back_with_a_warning(rng):
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        seen.append(loss.item())  # read back into Python: the tape cannot do this
        loss.backward()
        opt.step()
        return loss

    compiled = bp.compile(step)
    x, y = bp.randn(4, 3), bp.randn(4, 1)
    compiled(x, y)
    with pytest.warns(bp.CompileWarning, match=r"item\(\)"):
        compiled(x, y)
    for _ in range(3):
        compiled(x, y)
    assert len(seen) == 5  # every call ran the Python code: eager


def test_fullgraph_raises_instead_of_falling_back():
    model = nn.Linear(3, 1)

    def step(x):
        y = model(x).sum()
        if y > 0:  # bool(): a data-dependent branch
            return y
        return -y

    compiled = bp.compile(step, fullgraph=True)
    x = bp.randn(2, 3)
    compiled(x)
    with pytest.raises(RuntimeError, match="bool"):
        compiled(x)


def test_a_hook_forces_eager_with_a_warning():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    calls = []
    model.weight.register_hook(lambda g: calls.append(1))
    step = bp.compile(_step_fn(model, opt, F.mse_loss))
    x, y = bp.randn(4, 3), bp.randn(4, 1)
    step(x, y)
    with pytest.warns(bp.CompileWarning, match="hook"):
        step(x, y)
    step(x, y)
    assert len(calls) == 3  # never silently skipped


def test_learning_rate_is_read_on_every_replay():
    w = bp.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)

    @bp.compile
    def step():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    before = w.data.copy()
    opt.param_groups[0]["lr"] = 0.0
    step()
    np.testing.assert_array_equal(w.data, before)


def test_compile_accepts_torch_arguments_and_modules():
    model = nn.Linear(2, 2)
    assert bp.compile(model, mode="reduce-overhead", fullgraph=False, dynamic=False,
                      backend="inductor") is model
    f = lambda x: x * 2  # noqa: E731
    assert bp.compile(f, disable=True) is f
    deco = bp.compile(mode="max-autotune")
    assert callable(deco(f))
    with pytest.raises(TypeError, match="compile"):
        bp.compile(3)


def test_returned_loss_is_a_new_tensor_each_call():
    w = bp.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    step = bp.compile(_step_fn(nn.Identity(), opt, lambda out, y: (w * y).sum()))
    y = bp.tensor([1.0, 1.0])
    losses = [step(y, y) for _ in range(4)]
    assert losses[2] is not losses[3] and losses[2].data is not losses[3].data
    assert losses[3].shape == ()


@pytest.mark.parametrize("cell", ["GRU", "RNN"])
def test_gru_and_rnn_identical(rng, cell):
    def build():
        model = _LastStep(cell, 6, 8)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, _step_fn(model, opt, F.mse_loss), None

    _assert_identical(build, _batches(rng, (7, 3, 6), y_shape=(3, 1), n=8))


def test_targets_from_a_closure_fall_back_instead_of_going_stale():
    """An index array that is not an argument (here the targets, taken from a closure) would
    be a stale constant of the tape: the step runs eagerly, with the warning."""
    model = nn.Linear(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.1)
    y = bp.tensor(np.array([0, 2]))

    def step(x):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled = bp.compile(step)
    x = bp.randn(2, 4)
    compiled(x)
    with pytest.warns(bp.CompileWarning, match="computed outside the ops"):
        compiled(x)
    y.data[:] = [1, 1]  # eager: the new targets are used
    expected = F.cross_entropy(model(x), y).data
    np.testing.assert_array_equal(compiled(x).data, expected)


def test_numpy_arguments_fall_back_instead_of_going_stale(rng):
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.0)

    def step(x):
        opt.zero_grad()
        loss = model(bp.tensor(x)).sum()  # a copy made inside the step
        loss.backward()
        opt.step()
        return loss

    compiled = bp.compile(step)
    xs = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(4)]
    compiled(xs[0])
    with pytest.warns(bp.CompileWarning, match="NumPy array"):
        compiled(xs[1])
    for x in xs[2:]:
        np.testing.assert_array_equal(compiled(x).data, model(bp.tensor(x)).sum().data)


@pytest.mark.parametrize("compiled", [False, True])
def test_gradients_accumulate_across_calls_without_zero_grad(compiled):
    """No zero_grad in the step: .grad sums over calls, as in eager (PyTorch semantics)."""
    bp.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = bp.randn(5, 3)

    def step(x):
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    fn = bp.compile(step) if compiled else step
    grads = []
    for _ in range(5):
        fn(x)
        grads.append([p.grad.data.copy() for p in model.parameters()])
    for k in range(5):  # the same batch each call: the k-th .grad is (k + 1) times the first
        for g, g0 in zip(grads[k], grads[0]):
            np.testing.assert_allclose(g, (k + 1) * g0, rtol=1e-5)
    if compiled:
        assert any(e.tape is not None for e in fn._entries.values())


def test_a_new_param_group_recaptures():
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    b = bp.tensor([3.0], requires_grad=True)
    opt = optim.SGD([a], lr=0.1)

    @bp.compile
    def step():
        opt.zero_grad()
        loss = (a * a).sum() + (b * b).sum()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    np.testing.assert_array_equal(b.data, [3.0])  # not optimized yet
    opt.add_param_group({"params": [b], "lr": 0.5})
    for _ in range(3):  # recaptured: eager, captured, replayed
        step()
    # b ← b - 0.5·2b = 0 at its first update, and stays 0
    np.testing.assert_array_equal(b.data, [0.0])


class _ScaleFirst(bp.autograd.Function):
    """A custom op with keyword attributes named like the replay's generated locals, whose
    backward gives its second input no gradient (its ``.grad`` stays None)."""

    @staticmethod
    def forward(ctx, x, w, label=2.0, needs=3.0, attrs=0.5):
        ctx.save_for_backward(w)
        ctx.k = label * needs * attrs
        return x * w * ctx.k

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * w * ctx.k, None


def test_custom_function_with_a_none_gradient_and_clashing_keywords():
    def build():
        model = nn.Linear(4, 3)
        scale = nn.Parameter(bp.randn(3))
        opt = optim.SGD([*model.parameters(), scale], lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            out = _ScaleFirst.apply(model(x), scale, label=1.5, needs=2.0, attrs=0.25)
            loss = F.mse_loss(out, y)
            loss.backward()
            opt.step()
            return loss

        return model, opt, step, None

    batches = _batches(np.random.default_rng(3), (8, 4), y_shape=(8, 3))
    fn = _assert_identical(build, batches)
    assert fn._entries, "the step was not compiled"


def _fused_linear_relu_steps(fn) -> int:
    from backprop._compile_steps import _addmm_relu

    return sum(1 for e in fn._entries.values() if e.tape is not None for step in e.tape.steps
               for _, env in getattr(step, "_parts", ()) if env.get("fwd") is _addmm_relu)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_then_relu_fused_identical(rng, dtype):
    # sizes the products are cut at, so the bias and ReLU run in the blocks' epilogues
    def build():
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                              nn.Linear(128, 10))
        if dtype == np.float64:
            model.to(bp.float64)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, _step_fn(model, opt, F.cross_entropy), None

    fn = _assert_identical(build, _batches(rng, (64, 784), n_classes=10, dtype=dtype, n=6))
    assert _fused_linear_relu_steps(fn) == 2


def test_a_linear_output_read_twice_is_not_fused(rng):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(784, 256), nn.Linear(256, 10)

        def forward(self, x):
            h = self.a(x)
            return self.b(F.relu(h) + h)  # h is read by ReLU and by the sum

    def build():
        model = Net()
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, _step_fn(model, opt, F.cross_entropy), None

    fn = _assert_identical(build, _batches(rng, (64, 784), n_classes=10, n=4))
    assert _fused_linear_relu_steps(fn) == 0
