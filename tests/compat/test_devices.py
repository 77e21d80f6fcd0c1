"""Devices, dtype aliases, generators and the small top-level names PyTorch programs use
(issue 15), each checked against PyTorch itself: same answers, and an error wherever PyTorch
(built without CUDA) raises one."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")

# what a CPU-only PyTorch build raises for each device request
UNAVAILABLE = ["cuda", "cuda:0", "cuda:1"]


def _error(fn, *args):
    """The exception ``fn(*args)`` raises, or None."""
    try:
        fn(*args)
    except Exception as exc:
        return exc
    return None


def test_device_objects_parse_print_and_compare_as_torch():
    for args in [("cpu",), ("cuda",), ("cuda:1",), ("cuda", 2), ("cpu:0",), ("mps",)]:
        ours, theirs = bp.device(*args), torch.device(*args)
        assert (ours.type, ours.index) == (theirs.type, theirs.index)
        assert str(ours) == str(theirs) and repr(ours) == repr(theirs)
    assert bp.device("cpu") == bp.device("cpu") and bp.device("cpu") != bp.device("cpu:0")
    assert (bp.device("cpu") == "cpu") is (torch.device("cpu") == "cpu") is False
    assert bp.device(torch.device("cuda", 3)) == bp.device("cuda:3")  # torch's object read too


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CPU"])
def test_an_unknown_device_name_raises_runtime_error_as_torch(name):
    assert isinstance(_error(lambda: torch.device(name)), RuntimeError)
    with pytest.raises(RuntimeError):
        bp.device(name)


def test_queries_answer_as_torch_without_an_accelerator():
    assert bp.cuda.is_available() is torch.cuda.is_available() is False
    assert bp.cuda.device_count() == torch.cuda.device_count() == 0
    assert bp.backends.mps.is_available() is torch.backends.mps.is_available() is False
    assert bp.accelerator.is_available() is torch.accelerator.is_available() is False
    assert bp.accelerator.current_accelerator() is torch.accelerator.current_accelerator()
    bp.cuda.manual_seed(0), bp.cuda.manual_seed_all(0), torch.cuda.manual_seed_all(0)
    bp.backends.cudnn.deterministic = True
    bp.backends.cudnn.benchmark = False
    import backprop.backends.cudnn as cudnn  # the `import torch.backends.cudnn as cudnn` idiom

    assert cudnn.deterministic is True


@pytest.mark.parametrize("name", UNAVAILABLE)
def test_cuda_requests_raise_the_assertion_error_torch_raises(name):
    requests = {
        "tensor.to": (lambda m: m.zeros(2).to(name)),
        "tensor.cuda": (lambda m: m.zeros(2).cuda()),
        "factory": (lambda m: m.zeros(2, device=name)),
        "tensor()": (lambda m: m.tensor([1.0], device=name)),
        "module.to": (lambda m: m.nn.Linear(2, 2).to(name)),
        "module.cuda": (lambda m: m.nn.Linear(2, 2).cuda()),
        "current_device": (lambda m: m.cuda.current_device()),
    }
    for what, request in requests.items():
        theirs, ours = _error(request, torch), _error(request, bp)
        assert isinstance(theirs, AssertionError), what
        assert isinstance(ours, AssertionError), what
        assert "CPU only" in str(ours) or "no CUDA device" in str(ours), what


def test_mps_request_raises_not_implemented_error_as_torch():
    assert isinstance(_error(lambda: torch.zeros(1, device="mps")), NotImplementedError)
    with pytest.raises(NotImplementedError, match="MPS"):
        bp.zeros(1, device="mps")


def test_cpu_in_every_spelling_is_accepted_and_changes_nothing():
    x = bp.arange(6.0).reshape(2, 3)
    for dev in ("cpu", "cpu:0", bp.device("cpu"), torch.device("cpu"), None):
        assert x.to(dev) is x and x.cpu() is x
        assert bp.zeros(2, device=dev).device == bp.device("cpu")
    model = bp.nn.Linear(3, 1)
    assert model.to("cpu") is model and model.cpu() is model
    assert next(model.parameters()).device == bp.device("cpu") and not x.is_cuda
    t = torch.zeros(1)
    assert str(x.device) == str(t.device) and repr(x.device) == repr(t.device)


def test_to_reads_every_pytorch_argument_form():
    x = bp.arange(3.0)
    assert x.to(bp.float64).dtype == np.float64
    assert x.to("cpu", bp.float64).dtype == np.float64
    assert x.to(device="cpu", dtype=bp.float16).dtype == np.float16
    assert x.to(bp.zeros(1, dtype=bp.float64)).dtype == np.float64
    assert x.to(bp.float32, non_blocking=True) is x
    copy = x.to("cpu", copy=True)
    assert copy is not x and np.array_equal(copy.data, x.data)
    model = bp.nn.Linear(2, 2).to("cpu", bp.float64)
    assert model.weight.dtype == np.float64
    assert model.to(bp.zeros(1)).weight.dtype == np.float32
    with pytest.raises(TypeError, match="only floating"):
        model.to(bp.int64)


def test_to_none_keeps_the_dtype_as_torch():
    # a silent difference the issue names: int_tensor.to(None) used to give float64
    assert torch.tensor([1, 2]).to(None).dtype == torch.int64
    assert bp.tensor([1, 2]).to(None).dtype == np.int64
    x = bp.ones(2)
    assert x.to(None) is x


def test_dtype_aliases_are_torch_s():
    pairs = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
             "int": "int32", "short": "int16", "bool": "bool", "uint8": "uint8", "int8": "int8"}
    for alias, name in pairs.items():
        assert str(getattr(torch, alias)) == f"torch.{name}"
        assert np.dtype(getattr(bp, alias)) == np.dtype(name), alias
    assert bp.zeros(2, dtype=bp.long).dtype == np.int64
    assert bp.ones(2).dtype == bp.float  # comparisons with the dtype work as in torch
    assert "float" not in bp.__all__ and "int" not in bp.__all__  # star imports keep builtins


def test_randint_takes_pytorch_argument_order():
    for m in (torch, bp):
        x = m.randint(10, (3, 4))
        assert tuple(x.shape) == (3, 4) and int(x.min()) >= 0 and int(x.max()) < 10
        y = m.randint(5, 8, (50,))
        assert int(y.min()) >= 5 and int(y.max()) <= 7
        assert str(x.dtype).endswith("int64")
        assert tuple(m.randint(0, 3, size=(2,)).shape) == (2,)
    # torch refuses a bare int size and an empty range; so do we
    for bad in (lambda m: m.randint(10, 3), lambda m: m.randint(5, 5, (2,))):
        assert _error(bad, torch) is not None
        assert isinstance(_error(bad, bp), (TypeError, RuntimeError))


def test_generator_seeds_streams_and_is_accepted_where_torch_takes_one():
    g = bp.Generator().manual_seed(7)
    assert isinstance(torch.Generator().manual_seed(7), torch.Generator)
    a = (bp.rand(3, generator=g), bp.randn(2, generator=g), bp.randint(9, (4,), generator=g),
         bp.randperm(5, generator=g), bp.multinomial(bp.ones(4), 2, generator=g))
    g.manual_seed(7)
    b = (bp.rand(3, generator=g), bp.randn(2, generator=g), bp.randint(9, (4,), generator=g),
         bp.randperm(5, generator=g), bp.multinomial(bp.ones(4), 2, generator=g))
    for u, v in zip(a, b):
        assert np.array_equal(u.data, v.data)
    assert g.initial_seed() == 7
    state = g.get_state()
    first = bp.rand(2, generator=g)
    g.set_state(state)
    assert np.array_equal(bp.rand(2, generator=g).data, first.data)
    w = bp.empty(3, 3)
    bp.nn.init.normal_(w, generator=bp.Generator().manual_seed(1))
    w2 = bp.nn.init.normal_(bp.empty(3, 3), generator=bp.Generator().manual_seed(1))
    assert np.array_equal(w.data, w2.data)
    assert sorted(bp.randperm(6).tolist()) == list(range(6))
    with pytest.raises(AssertionError):
        bp.Generator(device="cuda")


def test_multinomial_draws_in_proportion_and_raises_where_torch_does():
    probs = np.array([[0.1, 0.0, 0.6, 0.3], [0.0, 1.0, 0.0, 0.0]])
    g = bp.Generator().manual_seed(0)
    draws = bp.multinomial(bp.tensor(probs), 20000, replacement=True, generator=g)
    assert draws.shape == (2, 20000) and draws.dtype == np.int64
    freq = np.stack([np.bincount(r, minlength=4) for r in draws.data]) / 20000
    np.testing.assert_allclose(freq, probs, atol=0.015)
    no_rep = bp.multinomial(bp.tensor([1.0, 2.0, 0.0, 4.0]), 3, generator=g)
    assert sorted(no_rep.tolist()) == [0, 1, 3]  # each non-zero category exactly once
    # without replacement the first draw follows the weights
    firsts = np.array([bp.multinomial(bp.tensor([1.0, 3.0]), 1, generator=g).item()
                       for _ in range(4000)])
    assert abs(firsts.mean() - 0.75) < 0.03
    # once the non-zero categories are used up, zero-weight ones follow, as torch returns
    assert torch.multinomial(torch.tensor([1.0, 0.0, 0.0]), 2).tolist() == [0, 1]
    assert bp.multinomial(bp.tensor([1.0, 0.0, 0.0]), 2).tolist() == [0, 1]
    bad_cases = [
        (lambda m: m.multinomial(m.tensor([1.0, -1.0]), 1)),
        (lambda m: m.multinomial(m.tensor([0.0, 0.0]), 1)),
        (lambda m: m.multinomial(m.tensor([1.0, 1.0]), 3)),
    ]
    for bad in bad_cases:
        assert isinstance(_error(bad, torch), RuntimeError)
        assert isinstance(_error(bad, bp), RuntimeError)


def test_inference_mode_records_nothing_as_context_and_decorator():
    w = bp.ones(2, requires_grad=True)
    with bp.inference_mode():
        assert not (w * 2).requires_grad
    with bp.inference_mode(False):
        assert (w * 2).requires_grad

    @bp.inference_mode()
    def f(x):
        return x * 3

    assert not f(w).requires_grad and (w * 3).requires_grad
    tw = torch.ones(2, requires_grad=True)
    with torch.inference_mode():
        assert not (tw * 2).requires_grad


@pytest.mark.parametrize("make", [
    lambda m, d: m.nn.Linear(2, 3, device=d),
    lambda m, d: m.nn.Bilinear(2, 2, 3, device=d),
    lambda m, d: m.nn.Conv1d(2, 3, 1, device=d),
    lambda m, d: m.nn.Conv2d(2, 3, 1, device=d),
    lambda m, d: m.nn.ConvTranspose2d(2, 3, 1, device=d),
    lambda m, d: m.nn.BatchNorm1d(3, device=d),
    lambda m, d: m.nn.LayerNorm(3, device=d),
    lambda m, d: m.nn.Embedding(4, 3, device=d),
    lambda m, d: m.nn.LSTM(2, 3, device=d),
    lambda m, d: m.nn.GRU(2, 3, device=d),
    lambda m, d: m.nn.RNN(2, 3, device=d),
    lambda m, d: m.nn.LSTMCell(2, 3, device=d),
    lambda m, d: m.nn.RNNCell(2, 3, device=d),
    lambda m, d: m.nn.MultiheadAttention(4, 2, device=d),
    lambda m, d: m.nn.TransformerEncoderLayer(4, 2, 8, device=d),
])
def test_layers_take_device_as_torch_s_do(make):
    assert make(bp, "cpu") is not None and make(bp, torch.device("cpu")) is not None
    assert make(torch, "cpu") is not None
    for m in (torch, bp):
        with pytest.raises(AssertionError):
            make(m, "cuda")
