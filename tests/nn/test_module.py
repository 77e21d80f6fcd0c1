"""Module, Parameter, containers, Linear, activation layers."""

import numpy as np
import pytest

import backprop as bp
from backprop import nn


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 5)
        self.act = nn.Tanh()
        self.out = nn.Linear(5, 2)
        self.register_buffer("steps", bp.zeros(1))
        self.register_buffer("scratch", bp.zeros(2), persistent=False)
        self.note = "not registered"

    def forward(self, x):
        return self.out(self.act(self.hidden(x)))


# --- registration and traversal ---


def test_named_parameters_follow_registration_order_with_dotted_names():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == [
        "hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert [n for n, _ in m.named_children()] == ["hidden", "act", "out"]
    assert [type(x).__name__ for x in m.modules()] == ["TwoLayer", "Linear", "Tanh", "Linear"]
    assert [n for n, _ in m.named_buffers()] == ["steps", "scratch"]


def test_shared_parameter_is_listed_once():
    m = nn.Module()
    lin = nn.Linear(2, 2)
    m.a, m.b = lin, lin
    assert len(list(m.parameters())) == 2


def test_assigning_before_init_explains_the_fix():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(bp.zeros(1))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_plain_tensor_into_parameter_slot_is_refused():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter"):
        lin.weight = bp.zeros(2, 2)
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]


def test_parameter_shares_memory_and_repr():
    arr = np.ones(3, dtype=np.float32)
    p = nn.Parameter(arr)
    assert p.data is arr and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor(")


# --- modes, gradients, apply, dtype ---


def test_train_eval_propagate():
    m = TwoLayer()
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_zero_grad_to_none_and_to_zero():
    m = TwoLayer()
    m(bp.ones(4, 3)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.data == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_apply_visits_children_then_self():
    seen = []
    TwoLayer().apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "TwoLayer" and sorted(seen[:-1]) == ["Linear", "Linear", "Tanh"]


def test_to_double_and_float():
    m = TwoLayer().double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m(bp.ones(1, 3, dtype=bp.float64)).dtype == np.float64
    m.float()
    assert all(t.dtype == np.float32 for t in m.state_dict().values())


def test_requires_grad_false_freezes():
    m = TwoLayer().requires_grad_(False)
    assert not m(bp.ones(1, 3)).requires_grad


# --- state_dict ---


def test_state_dict_keys_and_round_trip_continue_identically():
    bp.manual_seed(0)
    a = TwoLayer()
    bp.manual_seed(1)
    b = TwoLayer()
    x = bp.randn(4, 3)
    assert not np.allclose(a(x).data, b(x).data)
    state = a.state_dict()
    # PyTorch's order: a module's own parameters and buffers, then its children's
    assert list(state) == ["steps", "hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    result = b.load_state_dict({k: v.numpy() for k, v in state.items()})  # ndarrays accepted
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(x).data, b(x).data)
    assert not np.shares_memory(a.hidden.weight.data, b.hidden.weight.data)


def test_load_state_dict_lists_every_problem():
    m = TwoLayer()
    state = dict(m.state_dict())
    del state["out.bias"]
    state["extra.weight"] = np.zeros(1)
    state["hidden.weight"] = np.zeros((2, 2))
    with pytest.raises(RuntimeError) as exc:
        m.load_state_dict(state)
    msg = str(exc.value)
    assert "missing keys: out.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "hidden.weight: checkpoint (2, 2), model (5, 3)" in msg


def test_load_state_dict_non_strict_reports_and_loads_the_rest():
    m = TwoLayer()
    state = {"hidden.bias": np.arange(5.0), "junk": np.zeros(1)}
    result = m.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["junk"] and "out.weight" in result.missing_keys
    np.testing.assert_array_equal(m.hidden.bias.data, np.arange(5.0, dtype=np.float32))


def test_linear_loads_a_pytorch_state_dict_and_matches_it():
    torch = pytest.importorskip("torch")
    tlin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    ours = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    ours.load_state_dict({k: v.detach().numpy() for k, v in tlin.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    tx = torch.tensor(x)
    tout = tlin(tx)
    tout.pow(2).sum().backward()
    out = ours(bp.tensor(x))
    (out**2).sum().backward()
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    for (name, p), tp in zip(ours.named_parameters(), tlin.parameters()):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


# --- hooks, repr, summary ---


def test_forward_hooks_can_read_and_replace_and_be_removed():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, inputs: calls.append("pre"))
    h2 = m.register_forward_hook(lambda mod, inputs, out: out * 0)
    assert np.all(m(bp.ones(1, 2)).data == 0) and calls == ["pre"]
    h1.remove()
    h2.remove()
    assert not np.all(m(bp.ones(1, 2)).data == 0) and calls == ["pre"]


def test_repr_is_nested_and_readable():
    text = repr(TwoLayer())
    assert text.splitlines()[0] == "TwoLayer("
    assert "(hidden): Linear(in_features=3, out_features=5, bias=True)" in text
    assert "(act): Tanh()" in text


def test_summary_lists_output_shapes_and_parameter_counts():
    text = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).summary((3, 4))
    assert "0 (Linear)" in text and "(3, 8)" in text and "(3, 2)" in text
    assert "Total params: 58" in text and "Trainable params: 58" in text


# --- containers ---


def test_sequential_indexing_slicing_append():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert isinstance(seq[0], nn.Linear) and len(seq) == 2
    seq.append(nn.Linear(3, 1))
    assert seq(bp.ones(4, 2)).shape == (4, 1)
    assert len(seq[1:]) == 2


def test_module_list_and_dict_register_parameters():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(layers.parameters())) == 6 and len(layers) == 3
    heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 3)})
    assert "a" in heads and list(heads.keys()) == ["a", "b"]
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]


# --- Linear and activations ---


def test_linear_shapes_dtype_and_errors():
    lin = nn.Linear(3, 4)
    assert lin.weight.shape == (4, 3) and lin.bias.shape == (4,)
    assert lin(bp.ones(2, 5, 3)).shape == (2, 5, 4) and lin(bp.ones(3)).shape == (4,)
    assert lin(bp.ones(2, 3)).dtype == np.float32
    with pytest.raises(bp.ShapeError, match=r"linear: input of shape \(2, 4\).*in_features=3"):
        lin(bp.ones(2, 4))
    with pytest.raises(ValueError, match="positive"):
        nn.Linear(0, 3)
    assert nn.Linear(3, 4, bias=False).bias is None


def test_linear_gradcheck_float64():
    lin = nn.Linear(3, 2).double()
    x = bp.randn(4, 3, dtype=bp.float64, requires_grad=True)
    assert bp.gradcheck(lambda x, w, b: bp.nn.functional.linear(x, w, b),
                        (x, lin.weight, lin.bias))
    assert bp.gradgradcheck(lambda x, w, b: bp.nn.functional.linear(x, w, b),
                            (x, lin.weight, lin.bias))


def test_default_init_is_reproducible_under_manual_seed():
    bp.manual_seed(3)
    a = nn.Linear(5, 5).weight.data.copy()
    bp.manual_seed(3)
    np.testing.assert_array_equal(a, nn.Linear(5, 5).weight.data)


@pytest.mark.parametrize("layer, fn", [
    (nn.ReLU(), bp.relu), (nn.Sigmoid(), bp.sigmoid), (nn.Tanh(), bp.tanh),
    (nn.LeakyReLU(0.2), lambda x: bp.leaky_relu(x, 0.2)), (nn.ELU(0.5), lambda x: bp.elu(x, 0.5)),
    (nn.GELU(), bp.gelu), (nn.GELU("tanh"), lambda x: bp.gelu(x, "tanh")),
    (nn.SiLU(), lambda x: x * bp.sigmoid(x)), (nn.Softplus(2.0), lambda x: bp.softplus(x, 2.0)),
    (nn.Softmax(dim=1), lambda x: bp.softmax(x, 1)),
    (nn.LogSoftmax(dim=1), lambda x: bp.log_softmax(x, 1)),
    (nn.Identity(), lambda x: x), (nn.Flatten(), lambda x: x.reshape(2, -1)),
])
def test_activation_and_shape_layers_match_functional(layer, fn):
    x = bp.tensor(np.random.default_rng(1).standard_normal((2, 3, 2)).astype(np.float32))
    np.testing.assert_allclose(layer(x).data, fn(x).data, rtol=1e-6)


@pytest.mark.parametrize("name", ["ReLU", "Sigmoid", "Tanh", "SiLU", "GELU", "ELU", "LeakyReLU",
                                  "Softplus"])
def test_activation_layers_match_torch(name):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((3, 4))
    ours = getattr(nn, name)()(bp.tensor(x)).data
    theirs = getattr(torch.nn, name)()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_unflatten_splits_a_dimension():
    assert nn.Unflatten(1, (3, 4))(bp.ones(2, 12)).shape == (2, 3, 4)


def test_state_dict_key_order_matches_pytorch():
    torch = pytest.importorskip("torch")

    class TorchTwoLayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(3, 5)
            self.act = torch.nn.Tanh()
            self.out = torch.nn.Linear(5, 2)
            self.register_buffer("steps", torch.zeros(1))
            self.register_buffer("scratch", torch.zeros(2), persistent=False)

    assert list(TwoLayer().state_dict()) == list(TorchTwoLayer().state_dict())


# --- a shape error names the module it happened in ---


def test_shape_error_names_the_layer_by_index_and_type():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(bp.ShapeError,
                       match=r"^in 2 \(Linear\): linear: input of shape \(2, 3\)"):
        model(bp.zeros(2, 4))


def test_shape_error_names_a_nested_layer_by_its_qualified_name():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc1(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()
            self.head = nn.Linear(3, 1)

        def forward(self, x):
            return self.head(self.encoder(x))

    with pytest.raises(bp.ShapeError) as info:
        Net()(bp.zeros(2, 6))
    message = str(info.value)
    assert message.startswith("in encoder.fc1 (Linear): linear: input of shape (2, 6)"), message
    assert message.count("(Linear)") == 1  # named once, by the outermost module
    with pytest.raises(bp.ShapeError, match=r"^in Linear: linear: input of shape \(2, 6\)"):
        nn.Linear(4, 3)(bp.zeros(2, 6))  # called on its own it has no name, only its type
