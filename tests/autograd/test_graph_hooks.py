"""The hook points of ``backprop.autograd.graph``: node and tensor hooks in PyTorch's order,
post-accumulate hooks, multi-grad hooks, ``queue_callback``, ``saved_tensors_hooks``, node
introspection, ``observe_backward`` and ``record_ops``."""

import numpy as np
import pytest

import backprop as bp
from backprop.autograd import graph

torch = pytest.importorskip("torch")


def leaf(lib, values):
    return lib.tensor(values, dtype=lib.float64, requires_grad=True)


# --- order: every hook kind, on a branching graph, exactly as PyTorch fires them ---


def _hook_order(lib):
    order = []
    a, b = leaf(lib, [1.0, 2.0]), leaf(lib, [3.0, 4.0])
    c = a * b
    d = c.exp()
    e = c.sin()
    f = (d + e * b).sum()
    for name, t in [("a", a), ("b", b), ("c", c), ("d", d), ("e", e)]:
        t.register_hook(lambda g, n=name: order.append(n))
    for name, t in [("a", a), ("b", b)]:
        t.register_post_accumulate_grad_hook(lambda t, n=name: order.append("acc " + n))
    for name, t in [("c", c), ("d", d), ("e", e), ("f", f)]:
        t.grad_fn.register_prehook(lambda go, n=name: order.append("pre " + n))
        t.grad_fn.register_hook(lambda gi, go, n=name: order.append("post " + n))
    f.backward()
    return order


def test_hooks_fire_in_torch_order_and_exactly_once():
    ours, theirs = _hook_order(bp), _hook_order(torch)
    assert ours == theirs
    assert len(ours) == len(set(ours))  # each exactly once


def test_node_hooks_can_replace_gradients_as_in_torch():
    def program(lib):
        x = leaf(lib, [1.0, -2.0, 3.0])
        h = x * 2
        y = h.tanh()
        y.grad_fn.register_prehook(lambda go: (go[0] * 10,))
        h.grad_fn.register_hook(lambda gi, go: (gi[0] + 1, gi[1]))
        y.sum().backward()
        return x.grad

    ours, theirs = program(bp), program(torch)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)


def test_post_accumulate_hook_sees_the_final_grad_while_backward_still_runs():
    seen = {}
    w1, w2 = bp.ones(3, requires_grad=True), bp.ones(3, requires_grad=True)
    x = bp.tensor([1.0, 2.0, 3.0])
    out = ((x * w2).tanh() * w1).sum()  # w1's gradient is final before w2's is computed

    def hook(t):
        seen["w1"] = t.grad.data.copy()
        seen["w2 at that time"] = w2.grad

    w1.register_post_accumulate_grad_hook(hook)
    out.backward()
    np.testing.assert_allclose(seen["w1"], np.tanh([1.0, 2.0, 3.0]), rtol=1e-6)
    assert seen["w2 at that time"] is None  # it fired before the end of the backward
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w1 * 2).register_post_accumulate_grad_hook(hook)


def test_multi_grad_hook_all_fires_once_with_every_gradient():
    calls = []
    a, b = leaf(bp, [1.0]), leaf(bp, [2.0])
    unused = leaf(bp, [3.0])
    handle = graph.register_multi_grad_hook((a, b, unused), lambda grads: calls.append(grads))
    (a * b * 5).sum().backward()
    assert len(calls) == 1
    ga, gb, gu = calls[0]
    assert ga.tolist() == [10.0] and gb.tolist() == [5.0] and gu is None
    handle.remove()
    (a * b).sum().backward()
    assert len(calls) == 1


def test_multi_grad_hook_any_fires_with_the_first_gradient():
    calls = []
    a, b = leaf(bp, [1.0]), leaf(bp, [2.0])
    graph.register_multi_grad_hook((a, b), lambda g: calls.append(g.tolist()), mode="any")
    (a * 3 + b * 4).sum().backward()
    assert len(calls) == 1 and calls[0] in ([3.0], [4.0])


def test_queue_callback_runs_once_after_the_last_node():
    log = []
    w1, w2 = leaf(bp, [1.0, 2.0]), leaf(bp, [3.0, 4.0])
    h = w1 * w2

    def queue(_grad):
        graph.queue_callback(lambda: log.append(("callback", w1.grad is not None,
                                                 w2.grad is not None)))

    h.register_hook(queue)
    with graph.observe_backward(callback=lambda e: log.append(e.name)):
        (h * h).sum().backward()
    assert log[-1] == ("callback", True, True)
    assert sum(1 for entry in log if entry[0] == "callback") == 1
    with pytest.raises(RuntimeError, match="while a backward pass runs"):
        graph.queue_callback(lambda: None)


def test_saved_tensors_hooks_pack_and_unpack_every_saved_value():
    packed = []

    def pack(t):
        packed.append(t.shape)
        return t.data.copy()  # e.g. offload: keep a copy, not the tensor

    def unpack(arr):
        return bp.Tensor(arr)

    x = leaf(bp, [0.5, 1.5])
    with graph.saved_tensors_hooks(pack, unpack):
        y = (x * x).tanh().sum()
    assert len(packed) == 3  # Mul saved x twice, Tanh its output
    y.backward()
    expected = (1 - np.tanh(np.array([0.25, 2.25])) ** 2) * 2 * np.array([0.5, 1.5])
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12)


# --- introspection ---


def test_node_attrs_and_metadata_describe_the_op_without_rerunning_it():
    x = bp.randn(2, 3, 8, 8, requires_grad=True)
    w = bp.randn(4, 3, 3, 3, requires_grad=True)
    y = bp.nn.functional.conv2d(x, w, stride=2, padding=1)
    z = bp.nn.functional.leaky_relu(y, negative_slope=0.2)
    node = y.grad_fn
    assert node.attrs["stride"] == (2, 2) and node.attrs["padding"] == (1, 1, 1, 1)
    assert [m.shape for m in node.input_metadata[:2]] == [(2, 3, 8, 8), (4, 3, 3, 3)]
    assert node.output_metadata[0].shape == (2, 4, 4, 4)
    assert node.output_metadata[0].dtype == np.float32
    assert z.grad_fn.attrs["negative_slope"] == 0.2
    assert [fn.name() for fn, _ in node.next_functions[:2]] == ["AccumulateGrad"] * 2
    assert node.next_functions[0][0].variable is x


# --- the observer ---


def test_observer_sees_every_node_of_a_backward_exactly_once():
    x = leaf(bp, [[1.0, 2.0], [3.0, 4.0]])
    w = leaf(bp, [0.5, -0.5])
    h = (x @ w).tanh()
    loss = (h * h + h).sum()
    nodes, stack = set(), [loss.grad_fn]
    while stack:  # every node of the graph, walked by hand
        n = stack.pop()
        if n is not None and n not in nodes:
            nodes.add(n)
            stack.extend(fn for fn, _ in n.next_functions)
    with graph.observe_backward() as events:
        loss.backward()
    assert len(events) == len(nodes)
    assert {e.node for e in events} == nodes
    tanh_event = next(e for e in events if e.name == "TanhBackward")
    (g_out,) = tanh_event.grad_outputs
    np.testing.assert_allclose(g_out.data, 2 * h.data + 1)  # d(h² + h)/dh flowing in
    (g_in,) = tanh_event.grad_inputs
    np.testing.assert_allclose(g_in.data, (2 * h.data + 1) * (1 - h.data ** 2))


def test_grad_observes_only_the_pruned_part():
    a, b = leaf(bp, [1.0]), leaf(bp, [2.0])
    y = (a.exp() * b.sin()).sum()
    with graph.observe_backward() as events:
        bp.autograd.grad(y, a)
    names = [e.name for e in events]
    assert "SinBackward" not in names and "AccumulateGrad" not in names
    assert names[-1] == "ExpBackward"


# --- the op recorder ---


def _cnn():
    nn = bp.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_record_of_a_cnn_forward_names_every_op_with_its_attributes():
    bp.manual_seed(0)
    model = _cnn()
    x, y = bp.randn(2, 1, 8, 8), bp.tensor([0, 2])
    with graph.record_ops() as ops:
        logits = model(x)
        loss = bp.nn.functional.cross_entropy(logits, y)
        (logits.argmax(1) == y).sum()
    assert [r.op for r in ops] == ["Conv", "ReLU", "MaxPool", "View", "Addmm",
                                   "CrossEntropy", "ArgExtreme", "Eq", "Sum"]
    conv, pool = ops[0], ops[2]
    assert conv.attrs["padding"] == (1, 1, 1, 1) and conv.attrs["stride"] == (1, 1)
    assert pool.attrs["kernel"] == (2, 2)
    assert conv.shapes == (((2, 1, 8, 8), (4, 1, 3, 3), (4,)), ((2, 4, 8, 8),))
    assert conv.dtypes[1] == (np.float32,)
    assert conv.inputs[1] is model[0].weight and conv.outputs[0].shape == (2, 4, 8, 8)
    assert ops[5].outputs[0] is loss and ops[5].attrs["reduction"] == "mean"
    assert all(r.phase == "forward" for r in ops)


def test_record_of_a_training_step_holds_backward_kernels_and_optimizer_updates():
    bp.manual_seed(0)
    model = _cnn()
    opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = bp.randn(2, 1, 8, 8), bp.tensor([0, 2])
    with graph.record_ops() as ops:
        opt.zero_grad()
        loss = bp.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        bp.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    phases = [r.phase for r in ops]
    backward = [r.op for r in ops if r.phase == "backward"]
    assert {"ConvWeightGrad", "PoolScatter", "MM"} <= set(backward)
    # the forward, then the backward kernels, then clipping and the updates
    assert phases.index("backward") > [r.op for r in ops].index("CrossEntropy")
    assert [r.op for r in ops if r.op == "mul_"] == ["mul_"] * 4  # clipping, one per gradient
    (update,) = [r for r in ops if r.op == "ParamUpdate"]  # one op for the param group
    params = list(model.parameters())
    assert [t for t in update.outputs if any(t is p for p in params)] == params
    assert update.inplace and all(h["lr"] == 0.1 for h in update.attrs["hypers"])
    assert ops[-1] is update


def test_nothing_is_recorded_outside_the_context():
    with graph.record_ops() as ops:
        pass
    bp.ones(2) + 1
    assert ops == []
