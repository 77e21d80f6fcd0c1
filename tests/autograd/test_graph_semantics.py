"""The graph records what was computed, as PyTorch's does: edges instead of tensor objects,
views and ``detach()`` sharing their base's version counter, in-place ops through views, pruned
backward passes, the gradient contract, memory. Each program runs twice, once with
``import torch`` and once with ``import backprop as torch``, and the results must agree."""

import gc
import tracemalloc

import numpy as np
import pytest

import backprop as bp
from backprop.autograd import Function

torch = pytest.importorskip("torch")


def both(program):
    """Run ``program(lib)`` with backprop and with torch; return both results as lists."""
    def plain(v):
        if v is None or isinstance(v, (str, bool, int, float)):
            return v
        if isinstance(v, (tuple, list)):
            return [plain(e) for e in v]
        return np.asarray(v.detach() if hasattr(v, "detach") else v, dtype=np.float64).tolist()

    return plain(program(bp)), plain(program(torch))


def assert_same(program):
    ours, theirs = both(program)
    _assert_nested_close(ours, theirs)


def _assert_nested_close(a, b):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            _assert_nested_close(x, y)
    elif a is None or isinstance(a, (str, bool)):
        assert a == b
    else:
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


def outcome(fn, lib):
    """'raises' if fn(lib) raises a RuntimeError, else its result."""
    try:
        return fn(lib)
    except RuntimeError:
        return "raises"


def leaf(lib, values):
    return lib.tensor(values, dtype=lib.float64, requires_grad=True)


# --- 1. edges, not objects: rebinding a tensor later changes no earlier edge ---


def test_an_in_place_op_after_use_leaves_earlier_consumers_on_the_old_history():
    def program(lib):
        x = leaf(lib, [1.0])
        h = x * 2
        y = h + 1
        h.mul_(5)
        y.sum().backward()
        return x.grad, h

    ours, theirs = both(program)
    assert ours == theirs == [[2.0], [10.0]]


def test_detach_in_place_after_use_leaves_earlier_consumers_on_the_old_history():
    def program(lib):
        x = leaf(lib, [1.0])
        h = x * 2
        y = h + 1
        h.detach_()
        y.sum().backward()
        return x.grad, h.requires_grad

    ours, theirs = both(program)
    assert ours == theirs == [[2.0], False]


# --- 2. views and detach() share their base's version counter ---

VIEWS = {
    "view": lambda h: h.view(2, 3),
    "reshape": lambda h: h.reshape(3, 2),
    "view_as": lambda h: h.view_as(h.T),
    "T": lambda h: h.T,
    "transpose": lambda h: h.transpose(0, 1),
    "permute": lambda h: h.permute(1, 0),
    "squeeze": lambda h: h.unsqueeze(0).squeeze(0),
    "unsqueeze": lambda h: h.unsqueeze(1),
    "expand": lambda h: h.unsqueeze(0).expand(2, 2, 3),
    "flatten": lambda h: h.flatten(),
    "unflatten": lambda h: h.flatten().unflatten(0, (3, 2)),
    "narrow": lambda h: h.narrow(1, 1, 2),
    "select": lambda h: h.select(0, 1),
    "slice": lambda h: h[:, 1:],
    "int_index": lambda h: h[1],
    "split": lambda h: h.split(1, dim=0)[1],
    "chunk": lambda h: h.chunk(3, dim=1)[2],
    "unbind": lambda h: h.unbind(1)[0],
    "diagonal": lambda h: h.diagonal(),
    "detach": lambda h: h.detach(),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_a_change_through_a_view_is_seen_by_a_node_that_saved_the_base(name):
    make = VIEWS[name]

    def program(lib):
        x = leaf(lib, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        h = x * 1
        y = (h * h).sum()  # Mul saved h
        v = make(h)
        with lib.no_grad():  # changes memory, not history: only the version can tell
            if name == "expand":
                h.add_(1)  # an expanded view is read-only; change the base it shares
            else:
                v.add_(1)
        y.backward()
        return x.grad

    ours, theirs = outcome(program, bp), outcome(program, torch)
    assert ours == theirs == "raises"


def test_version_counter_message_names_the_saving_op_and_the_changing_op():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = h.exp()  # Exp saves its output
    y.reshape(2, 1).mul_(2.0)
    with pytest.raises(RuntimeError, match=r"ExpBackward.*mul_"):
        y.sum().backward()


def test_views_and_detach_share_the_version_counter():
    h = bp.zeros(2, 3)
    views = [make(h) for make in VIEWS.values()]
    h.add_(1)
    assert all(v._version == h._version == 1 for v in views)
    views[0].mul_(2)
    assert h._version == 2 and all(v._version == 2 for v in views)


# --- 3. an in-place op on a view reaches the base, with grad recorded or not ---


@pytest.mark.parametrize("requires_grad", [False, True])
def test_in_place_op_on_a_view_writes_through_whatever_the_grad_mode(requires_grad):
    def program(lib):
        x = lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64, requires_grad=requires_grad)
        h = x * 1
        h.reshape(3, 1).mul_(2)
        h[1:].add_(10)
        h.reshape(1, 3).T.unsqueeze(0)[0, :1].div_(4)
        return h

    ours, theirs = both(program)
    assert ours == theirs == [0.5, 14.0, 16.0]


IN_PLACE_ON_VIEWS = {
    "reshape_mul": lambda h, w: h.reshape(3, 2).mul_(2),
    "slice_mul_tensor": lambda h, w: h[1:, :].mul_(w[0]),
    "transpose_add": lambda h, w: h.T.add_(w.reshape(3, 1)),
    "select_div": lambda h, w: h.select(1, 0).div_(w[2]),
    "diagonal_div": lambda h, w: h[:, :2].diagonal().div_(w[1:]),
    "nested_slice_clamp": lambda h, w: h[:, 1:][1:].clamp_(min=4.5),
    "setitem": lambda h, w: h.__setitem__((0, slice(None)), w),
    "copy_from_tensor": lambda h, w: h[1].copy_(w * 3),
    "fill": lambda h, w: h[:, 2].fill_(0.5),
    "two_views": lambda h, w: (h[0].mul_(w), h.T[2].sub_(w[:2] * 2)),
}


@pytest.mark.parametrize("name", sorted(IN_PLACE_ON_VIEWS))
def test_gradients_through_in_place_ops_on_views_match_torch(name):
    change = IN_PLACE_ON_VIEWS[name]

    def program(lib):
        x = leaf(lib, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        w = leaf(lib, [0.5, -1.5, 2.0])
        h = x * 1.5  # a descendant of the leaves: views of it may change in place
        v = h[0]  # an earlier view, stale after the change: regenerated from h's new history
        change(h, w)
        loss = (h * h).sum() + (v * w).sum()
        loss.backward()
        return h, x.grad, w.grad

    assert_same(program)


def test_higher_order_gradients_through_views_and_in_place_ops():
    def program(lib):
        x = leaf(lib, [[0.5, -1.0], [2.0, 0.3]])
        h = x.tanh() + 0.0  # Tanh saved its output: change a copy
        h.T[0].mul_(x[1])
        g = (h.reshape(4) ** 3).sum()
        (dx,) = lib.autograd.grad(g, x, create_graph=True)
        (ddx,) = lib.autograd.grad(dx.sum(), x)
        return dx, ddx

    assert_same(program)


def test_in_place_on_a_leaf_or_a_view_of_a_leaf_is_refused_while_recording():
    for change in (lambda x: x.mul_(2), lambda x: x[0].mul_(2), lambda x: x.T.add_(1)):
        def program(lib, change=change):
            x = leaf(lib, [[1.0, 2.0], [3.0, 4.0]])
            change(x)
            return x

        assert outcome(program, bp) == outcome(program, torch) == "raises"


def test_in_place_on_an_expanded_view_is_refused():
    def program(lib):
        h = lib.zeros(3, dtype=lib.float64).expand(2, 3)
        h.add_(1)
        return h

    assert outcome(program, bp) == outcome(program, torch) == "raises"


def test_a_recorded_in_place_op_gets_a_gradient_for_its_other_operand():
    def program(lib):
        x = leaf(lib, [1.0, 2.0])
        w = leaf(lib, [3.0, 4.0])
        h = x * 1
        h.mul_(w)  # w's gradient needs the old h: kept as a copy before the write
        h.add_(w, alpha=2).div_(w)
        (h * w).sum().backward()
        return h, x.grad, w.grad

    assert_same(program)


# --- 4. a pruned backward ---


def test_grad_runs_only_the_nodes_on_a_path_to_its_inputs():
    fired = {"bp": [], "torch": []}

    def program(lib):
        key = "bp" if lib is bp else "torch"
        a = leaf(lib, [1.0, 2.0])
        b = leaf(lib, [3.0, 4.0])
        h = a * 2  # below the input h
        u = b.exp()  # unrelated to the input
        b.register_hook(lambda g: fired[key].append("b"))
        a.register_hook(lambda g: fired[key].append("a"))
        u.register_hook(lambda g: fired[key].append("u"))
        y = (h * h + u).sum()
        (gh,) = lib.autograd.grad(y, h)
        y2 = (h * 3).sum()  # the part below h was not run or freed: it still works
        y2.backward()
        return gh, a.grad, b.grad

    ours, theirs = both(program)
    assert ours == theirs
    assert fired["bp"] == fired["torch"] == ["a"]


def test_backward_with_inputs_runs_only_their_part_of_the_graph():
    def program(lib):
        calls = []
        a = leaf(lib, [1.0])
        b = leaf(lib, [2.0])
        c = (a * 3).exp() * (b * 5)
        b.register_hook(lambda g: calls.append("b"))
        c.backward(inputs=[a], retain_graph=True)
        first = (a.grad, b.grad, list(calls))
        c.backward(inputs=[b])
        return first, a.grad, b.grad, calls

    ours, theirs = both(program)
    assert ours == theirs


# --- 5. the gradient contract ---


class WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad_out):
        return bp.ones(3, 4) * grad_out.sum()


class Expanded(Function):
    @staticmethod
    def forward(ctx, x):
        return np.broadcast_to(x, (3, 2)) * 2

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out * 2  # shape (3, 2) for an input of shape (2,): summed down


def test_a_wrongly_shaped_gradient_is_refused_naming_the_op_and_both_shapes():
    x = bp.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"WrongShape.*\(3, 4\).*input 0.*\(2, 3\)"):
        WrongShape.apply(x).sum().backward()


class BroadcastingWrongShape(Function):
    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.reshape(2, 2), grad_out  # (2, 2) for an input of shape (4,): a bug


def test_a_broadcasting_op_gets_no_silent_reduction_of_a_wrong_shape():
    x = bp.ones(4, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BroadcastingWrongShape.*\(2, 2\).*input 0"):
        BroadcastingWrongShape.apply(x, bp.ones(4)).sum().backward()


def test_a_gradient_for_an_expanded_input_is_summed_down():
    x = bp.ones(2, requires_grad=True)
    Expanded.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [6.0, 6.0])


def test_a_gradient_of_another_float_dtype_is_cast_to_the_input_dtype():
    class Float64Grad(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad_out):
            return grad_out.double()

    x = bp.ones(2, requires_grad=True)
    Float64Grad.apply(x).sum().backward()
    assert x.grad.dtype == np.float32


# --- 6. memory: a chain of ops that save nothing keeps nothing alive ---


def test_a_chain_of_adds_holds_no_intermediate_alive():
    x = bp.zeros(1024, 1024, requires_grad=True)  # 4 MiB
    size = x.data.nbytes
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        h = x
        for _ in range(20):
            h = h + 1.0
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert peak <= 3 * size, f"peak {peak / 2**20:.1f} MiB for 4 MiB tensors"
    h.sum().backward()
    np.testing.assert_array_equal(x.grad.data[:2, :2], 1.0)


# --- 7. the Function contract ---


class Twice(Function):
    @staticmethod
    def forward(ctx, x, y=None):
        ctx.seen = ctx.needs_input_grad
        return x * 2

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out * 2


def test_a_tensor_passed_as_a_keyword_is_refused():
    x = bp.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"keyword argument 'y'"):
        Twice.apply(x, y=bp.ones(2, requires_grad=True))


def test_needs_input_grad_has_one_entry_per_input_under_no_grad():
    class Record(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            Record.seen = ctx.needs_input_grad
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2, None

    x_t = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        Record.apply(x_t, torch.ones(2))
    x = bp.ones(2, requires_grad=True)
    captured = []

    class Ours(Function):
        @staticmethod
        def forward(ctx, x, y):
            captured.append(ctx.needs_input_grad)
            return x * 2

    with bp.no_grad():
        Ours.apply(x, bp.ones(2))
    Ours.apply(bp.ones(2), 3.0)
    assert captured[0] == tuple(Record.seen) == (True, False)
    assert captured[1] == (False, False)


@pytest.mark.parametrize("scalar", [np.array(2.0), np.float64(2.0), np.array(3, dtype=np.int64)])
def test_zero_d_arrays_and_numpy_scalars_promote_as_weak_scalars(scalar):
    x = bp.ones(3)
    assert (torch.ones(3) * torch.as_tensor(scalar)).dtype == torch.float32
    assert (x * scalar).dtype == np.float32
    assert (scalar * x).dtype == np.float32
