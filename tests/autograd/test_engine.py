"""The backward engine: graph shapes, accumulation, freeing, grad mode, higher order, hooks."""

import gc
import weakref

import numpy as np
import pytest

import backprop as bp
from backprop.autograd import grad


def t64(rng, *shape, requires_grad=True):
    return bp.tensor(rng.standard_normal(shape), requires_grad=requires_grad)


# --- graph shapes ---


def test_fan_out_x_times_x_sums_both_paths():
    x = bp.tensor([3.0, -2.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [6.0, -4.0])


def test_diamond_graph_gradient_sums_over_both_branches():
    a = bp.tensor(0.7, dtype=bp.float64, requires_grad=True)
    b = bp.exp(a)
    c = bp.sin(a)
    d = b * c  # d = e^a sin a, dd/da = e^a (sin a + cos a)
    d.backward()
    expected = np.exp(0.7) * (np.sin(0.7) + np.cos(0.7))
    np.testing.assert_allclose(a.grad.item(), expected, rtol=1e-12)


def test_node_used_three_times_through_different_ops():
    x = bp.tensor(1.5, dtype=bp.float64, requires_grad=True)
    h = x * 2
    y = h * h + bp.tanh(h) + h  # y(h), h = 2x
    y.backward()
    hv = 3.0
    expected = 2 * (2 * hv + (1 - np.tanh(hv) ** 2) + 1)
    np.testing.assert_allclose(x.grad.item(), expected, rtol=1e-12)


def test_deep_chain_of_100000_ops_does_not_recurse():
    x = bp.tensor(1.0, dtype=bp.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.backward()
    assert y.item() == 100_001.0
    assert x.grad.item() == 1.0


def test_gradient_accumulates_across_backward_calls():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 4])


def test_leaf_grad_arrays_are_not_shared_between_leaves():
    # add passes grad_out unchanged to both inputs; each .grad must still own its memory
    a = bp.zeros(3, requires_grad=True)
    b = bp.zeros(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.mul_(10)
    np.testing.assert_array_equal(b.grad.data, np.ones(3))
    assert not np.shares_memory(a.grad.data, b.grad.data)


def test_leaves_of_one_node_accumulate_in_edge_order_whether_hooked_or_not():
    # a leaf without hooks accumulates inline, the moment its gradient is ready; behind a
    # queued (hooked) leaf it must wait its turn, so a hook sees what it saw before
    seen = []
    a, b = bp.ones(2, requires_grad=True), bp.ones(2, requires_grad=True)
    a.register_post_accumulate_grad_hook(lambda t: seen.append(b.grad))
    (a * b).sum().backward()
    assert seen == [None]
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])


def test_fan_in_to_a_leaf_without_hooks_sums_every_edge():
    # the inline accumulation of a hook-free leaf must still wait for its last edge
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    ((x * 3).sum() + (x * x).sum() + x.sum()).backward()
    np.testing.assert_allclose(x.grad.data, 3 + 2 * np.array([1.0, 2.0]) + 1)


def test_user_gradient_array_is_not_aliased_into_grad():
    x = bp.zeros(3, requires_grad=True)
    seed = bp.ones(3)
    (x + 0).backward(seed)
    x.grad.mul_(5)
    np.testing.assert_array_equal(seed.data, np.ones(3))


def test_broadcast_gradients_reduce_to_each_input_shape():
    a = bp.ones(3, 1, requires_grad=True)
    b = bp.ones(4, requires_grad=True)
    (a * b * 2).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad.data, np.full((3, 1), 8.0))
    np.testing.assert_allclose(b.grad.data, np.full(4, 6.0))


# --- seeding backward and its errors ---


def test_backward_on_non_scalar_without_gradient_names_shape_and_fix():
    y = bp.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*gradient="):
        y.backward()


def test_backward_with_gradient_of_wrong_shape_raises():
    y = bp.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\).*\(2, 3\)"):
        y.backward(bp.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (bp.ones(2) * 2).sum().backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        bp.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        bp.arange(3).requires_grad_()


def test_non_scalar_backward_with_gradient():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    (x * x).backward(bp.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.data, [2.0, 40.0])


# --- freeing and retain_graph ---


def test_second_backward_through_freed_graph_says_retain_graph():
    x = bp.tensor(2.0, requires_grad=True)
    y = x * x
    y.backward()
    with pytest.raises(RuntimeError, match=r"MulBackward.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = bp.tensor(2.0, requires_grad=True)
    y = bp.exp(x) * x
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 2 * (np.exp(2.0) * 3.0), rtol=1e-6)


def test_graph_that_saved_nothing_can_be_run_twice_like_pytorch():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0])


def _mlp_loss(rng):
    """A small graph; returns the loss and weak references to two intermediate arrays."""
    x = bp.tensor(rng.standard_normal((8, 5)).astype(np.float32))
    w1 = bp.tensor(rng.standard_normal((5, 16)).astype(np.float32), requires_grad=True)
    w2 = bp.tensor(rng.standard_normal((16, 1)).astype(np.float32), requires_grad=True)
    h = bp.tanh(x @ w1)
    out = bp.sigmoid(h @ w2)
    refs = [weakref.ref(h.data), weakref.ref(out.data)]
    return (out * out).mean(), refs, (w1, w2)


def test_saved_buffers_are_released_after_backward_with_gc_off(rng):
    gc.disable()
    try:
        loss, refs, params = _mlp_loss(rng)
        assert all(r() is not None for r in refs), "the graph must hold its activations"
        loss.backward()
        assert all(r() is None for r in refs), "activations outlived backward"
        assert loss.grad_fn is not None  # the root itself is still alive and usable
        assert all(p.grad is not None for p in params)
    finally:
        gc.enable()


def test_retain_graph_keeps_saved_buffers(rng):
    gc.disable()
    try:
        loss, refs, _ = _mlp_loss(rng)
        loss.backward(retain_graph=True)
        assert all(r() is not None for r in refs)
    finally:
        gc.enable()


def test_graph_has_no_reference_cycles_with_gc_off(rng):
    gc.disable()
    try:
        loss, refs, _ = _mlp_loss(rng)
        node_ref = weakref.ref(loss.grad_fn)
        loss_ref = weakref.ref(loss)
        del loss
        assert loss_ref() is None and node_ref() is None
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


# --- grad mode ---


def test_no_grad_creates_no_nodes():
    x = bp.ones(3, requires_grad=True)
    with bp.no_grad():
        y = bp.tanh(x * 2).sum()
    assert y.grad_fn is None and not y.requires_grad


def test_no_grad_as_decorator_and_enable_grad_inside():
    x = bp.ones(3, requires_grad=True)

    @bp.no_grad()
    def f():
        inner = x * 2
        with bp.enable_grad():
            recorded = x * 2
        return inner, recorded

    inner, recorded = f()
    assert inner.grad_fn is None and recorded.grad_fn is not None
    assert bp.is_grad_enabled()


def test_set_grad_enabled_function_and_context():
    x = bp.ones(2, requires_grad=True)
    with bp.set_grad_enabled(False):
        assert (x * 2).grad_fn is None
    assert bp.is_grad_enabled()
    bp.set_grad_enabled(False)
    try:
        assert not bp.is_grad_enabled()
    finally:
        bp.set_grad_enabled(True)


def test_no_grad_restores_mode_after_exception():
    with pytest.raises(ValueError):
        with bp.no_grad():
            raise ValueError("boom")
    assert bp.is_grad_enabled()


# --- hand-computed network ---


def test_two_layer_network_matches_chain_rule_by_hand():
    x = np.array([[0.5, -1.0]])
    W1 = np.array([[0.1, -0.2], [0.3, 0.4]])
    b1 = np.array([0.05, -0.05])
    W2 = np.array([[0.7], [-0.6]])
    b2 = np.array([0.1])
    target = np.array([[1.0]])
    # forward by hand
    z1 = x @ W1 + b1
    h = np.tanh(z1)
    z2 = h @ W2 + b2
    p = 1 / (1 + np.exp(-z2))
    # backward by the chain rule, written out: L = (p - t)²
    dL_dp = 2 * (p - target)
    dL_dz2 = dL_dp * p * (1 - p)
    dL_dW2 = h.T @ dL_dz2
    dL_db2 = dL_dz2.sum(0)
    dL_dh = dL_dz2 @ W2.T
    dL_dz1 = dL_dh * (1 - h**2)
    dL_dW1 = x.T @ dL_dz1
    dL_db1 = dL_dz1.sum(0)

    params = [bp.tensor(a, requires_grad=True) for a in (W1, b1, W2, b2)]
    w1, c1, w2, c2 = params
    out = bp.sigmoid(bp.tanh(bp.tensor(x) @ w1 + c1) @ w2 + c2)
    loss = ((out - bp.tensor(target)) ** 2).sum()
    loss.backward()
    np.testing.assert_allclose(loss.item(), ((p - target) ** 2).sum(), rtol=1e-12)
    for t, expected in zip(params, (dL_dW1, dL_db1, dL_dW2, dL_db2)):
        np.testing.assert_allclose(t.grad.data, expected, rtol=1e-12)


# --- higher order ---


def test_second_derivative_of_cube():
    x = bp.tensor(1.7, dtype=bp.float64, requires_grad=True)
    (dy,) = grad(x**3, x, create_graph=True)
    (d2y,) = grad(dy, x)
    np.testing.assert_allclose(dy.item(), 3 * 1.7**2, rtol=1e-12)
    np.testing.assert_allclose(d2y.item(), 6 * 1.7, rtol=1e-12)


def test_second_and_third_derivative_of_tanh():
    x = bp.tensor(0.3, dtype=bp.float64, requires_grad=True)
    (d1,) = grad(bp.tanh(x), x, create_graph=True)
    (d2,) = grad(d1, x, create_graph=True)
    (d3,) = grad(d2, x)
    t = np.tanh(0.3)
    np.testing.assert_allclose(d1.item(), 1 - t**2, rtol=1e-12)
    np.testing.assert_allclose(d2.item(), -2 * t * (1 - t**2), rtol=1e-12)
    np.testing.assert_allclose(d3.item(), -2 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-12)


def test_hessian_vector_product_of_quadratic_form(rng):
    A = rng.standard_normal((4, 4))
    v = rng.standard_normal(4)
    x = bp.tensor(rng.standard_normal(4), requires_grad=True)
    f = 0.5 * (x @ (bp.tensor(A) @ x))
    (g,) = grad(f, x, create_graph=True)
    (hv,) = grad(g @ bp.tensor(v), x)
    np.testing.assert_allclose(hv.data, 0.5 * (A + A.T) @ v, rtol=1e-12)


def test_create_graph_backward_makes_grad_differentiable():
    x = bp.tensor([1.0, 2.0], dtype=bp.float64, requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    assert x.grad.grad_fn is not None
    g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 12.0])


def test_grad_leaves_dot_grad_untouched_and_handles_non_leaf_inputs():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    gh, gx = grad(y, (h, x))
    np.testing.assert_allclose(gh.data, [6.0, 12.0])
    np.testing.assert_allclose(gx.data, [18.0, 36.0])
    assert x.grad is None


def test_grad_unused_input_needs_allow_unused():
    x = bp.tensor(1.0, requires_grad=True)
    z = bp.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        grad(x * 2, (x, z), retain_graph=True)
    gx, gz = grad(x * 2, (x, z), allow_unused=True)
    assert gx.item() == 2.0 and gz is None


def test_grad_with_grad_outputs():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    (g,) = grad(x * x, x, grad_outputs=bp.tensor([3.0, 5.0]))
    np.testing.assert_allclose(g.data, [6.0, 20.0])


def test_backward_inputs_restricts_accumulation():
    a = bp.tensor(1.0, requires_grad=True)
    b = bp.tensor(2.0, requires_grad=True)
    (a * b).backward(inputs=[a])
    assert a.grad.item() == 2.0 and b.grad is None


# --- hooks and retain_grad ---


def test_leaf_hook_can_replace_gradient_and_be_removed():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.data.copy()) or g * 10)
    (x * 2).sum().backward()
    np.testing.assert_allclose(seen[0], [2.0, 2.0])
    np.testing.assert_allclose(x.grad.data, [20.0, 20.0])
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0])


def test_non_leaf_hook_fires_even_after_the_tensor_is_gone():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x * 3
    h.register_hook(lambda g: seen.append(g.data.copy()))
    y = (h * h).sum()
    del h
    y.backward()
    np.testing.assert_allclose(seen[0], [6.0, 12.0])


def test_retain_grad_keeps_intermediate_gradient():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    assert h.retains_grad
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.data, [6.0, 12.0])
    k = x * 2
    (k * k).sum().backward()
    assert k.grad is None  # not retained: intermediate gradients are freed


# --- version counter and in-place ops ---


def test_in_place_change_of_saved_input_is_detected_naming_the_op():
    w = bp.tensor([1.0, 2.0], requires_grad=True)
    x = bp.tensor([3.0, 4.0])
    y = (w * x).sum()
    with bp.no_grad():
        x.mul_(2)  # Mul saved x for w's gradient
    with pytest.raises(RuntimeError, match=r"MulBackward.*in-place.*version 1.*version 0"):
        y.backward()


def test_in_place_change_of_saved_output_is_detected():
    x = bp.tensor([0.5, 1.0], requires_grad=True)
    y = bp.exp(x)  # Exp saves its output
    y.add_(1)  # recorded in-place op on a non-leaf
    with pytest.raises(RuntimeError, match=r"ExpBackward.*in-place"):
        y.sum().backward()


def test_recorded_in_place_op_on_non_leaf_has_correct_gradient():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.add_(1)
    y.mul_(x)  # y = (2x + 1) x
    assert y._version == 2
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.array([1.0, 2.0]) + 1)


def test_in_place_on_leaf_requiring_grad_is_refused_under_grad_mode():
    w = bp.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.add_(1)
    with bp.no_grad():
        w.add_(1)  # optimizer-style update
    np.testing.assert_allclose(w.data, [2.0, 2.0])
    assert w._version == 1


def test_recorded_setitem_routes_gradients():
    x = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = bp.tensor(5.0, requires_grad=True)
    y = x * 1
    y[1] = v * 2
    (y * bp.tensor([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, 0.0, 100.0])
    np.testing.assert_allclose(v.grad.item(), 20.0)


def test_every_in_place_op_bumps_the_version():
    t = bp.zeros(3)
    ops = [
        lambda: t.add_(1), lambda: t.sub_(1, alpha=2), lambda: t.mul_(2), lambda: t.div_(2),
        lambda: t.zero_(), lambda: t.fill_(3.0), lambda: t.copy_(bp.ones(3)),
        lambda: t.clamp_(0, 0.5), lambda: t.__setitem__(0, 9.0),
    ]
    for k, op in enumerate(ops, start=1):
        op()
        assert t._version == k
    np.testing.assert_allclose(t.data, [9.0, 0.5, 0.5])


# --- anomaly mode ---


def test_detect_anomaly_names_op_whose_forward_makes_nan():
    x = bp.tensor([-1.0], requires_grad=True)
    with bp.detect_anomaly():
        with pytest.raises(FloatingPointError, match="Sqrt forward produced NaN"):
            with np.errstate(invalid="ignore"):
                bp.sqrt(x)


def test_detect_anomaly_names_op_and_creation_site_of_bad_backward():
    x = bp.tensor([0.0], requires_grad=True)
    with bp.detect_anomaly():
        y = bp.sqrt(x)  # forward fine; backward divides by 2·√0
        expected = r"(?s)Sqrt backward produced Inf.*test_engine"
        with pytest.raises(FloatingPointError, match=expected):
            with np.errstate(divide="ignore"):
                y.sum().backward()


def test_without_anomaly_mode_nan_passes_silently_like_pytorch():
    x = bp.tensor([0.0], requires_grad=True)
    with np.errstate(divide="ignore"):
        bp.sqrt(x).sum().backward()
    assert np.isinf(x.grad.data).all()


def test_recorded_setitem_with_wrong_value_shape_names_region_shape():
    y = bp.ones(4, 3, requires_grad=True) * 1
    expected = r"setitem: cannot assign a value of shape \(2,\).*\(1, 3\)"
    with pytest.raises(bp.ShapeError, match=expected):
        y[1:2] = bp.ones(2, requires_grad=True)


class _TupleArg(bp.autograd.Function):
    """y = x·k[0] with a tuple passed as a positional (non-tensor) argument."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k[0]

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out * ctx.k[0], None


def test_released_graph_keeps_users_tuple_arguments_intact():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = (_TupleArg.apply(x + 0, (3.0, 4.0, 5.0, 6.0)) + 1).sum()
    y.backward()
    y.backward()  # nothing was saved: a second pass through the released graph is allowed
    np.testing.assert_allclose(x.grad.data, [6.0, 6.0])
    assert y.grad_fn.next_functions[0][0] is not None
