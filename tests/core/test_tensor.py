"""Tensor: dtype rules, attributes, conversion, operators, constructors, seeding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import backprop as bp

# --- dtypes, as PyTorch ---


def test_python_floats_become_float32_and_ints_int64():
    assert bp.tensor(1.5).dtype == np.float32
    assert bp.tensor([1.0, 2]).dtype == np.float32
    assert bp.tensor([[1, 2], [3, 4]]).dtype == np.int64
    assert bp.tensor(True).dtype == np.bool_


def test_ndarray_keeps_its_dtype():
    assert bp.tensor(np.zeros(3)).dtype == np.float64
    assert bp.tensor(np.zeros(3, np.float32)).dtype == np.float32
    assert bp.tensor(np.zeros(3, np.int32)).dtype == np.int32


@pytest.mark.parametrize("spec", [bp.float64, np.float64, "float64", np.dtype("float64")])
def test_dtype_argument_accepts_backprop_numpy_and_names(spec):
    assert bp.tensor([1, 2], dtype=spec).dtype == np.float64
    assert bp.zeros(2, dtype=spec).dtype == np.float64


def test_unknown_dtype_lists_the_valid_names():
    with pytest.raises(TypeError, match="unknown dtype 'flaot32'.*float32"):
        bp.tensor([1.0], dtype="flaot32")


def test_non_numeric_data_is_refused_clearly():
    with pytest.raises(TypeError, match="numeric tensor"):
        bp.tensor(["a", "b"])


@pytest.mark.parametrize("array", [np.array([1.0, "a"], dtype=object),
                                   np.array([1.0, 2.0], dtype=object),
                                   np.array(["a", "b"]), np.array([b"a"])],
                         ids=["object-mixed", "object-floats", "str", "bytes"])
def test_object_and_string_arrays_are_refused_like_strings(array):
    # an object array would otherwise become an object "tensor" whose ops fail far away
    with pytest.raises(TypeError, match=f"numeric tensor.*{array.dtype}"):
        bp.tensor(array)


def test_data_is_the_ndarray_and_tensor_copies():
    arr = np.arange(3.0)
    t = bp.tensor(arr)
    assert isinstance(t.data, np.ndarray) and not np.shares_memory(t.data, arr)
    wrapped = bp.Tensor(arr)
    assert wrapped.data is arr
    assert bp.from_numpy(arr).data is arr


def test_float32_times_python_float_stays_float32():
    x = bp.ones(3, requires_grad=True)
    y = (x * 2.5 + 1.0) / 3.0 - 0.5
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_mixing_float32_and_float64_promotes_and_gradients_keep_input_dtype():
    a = bp.ones(2, requires_grad=True)
    b = bp.ones(2, dtype=bp.float64, requires_grad=True)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


# --- attributes and conversion ---


def test_shape_ndim_size_and_transpose():
    t = bp.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.dim() == 3 and t.numel() == 24
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and len(t) == 2
    assert t.T.shape == (4, 3, 2) and t.mT.shape == (2, 4, 3)


def test_item_numpy_and_detach():
    x = bp.tensor([2.0], requires_grad=True)
    assert x.item() == 2.0
    with pytest.raises(RuntimeError, match=r"detach\(\).numpy\(\)"):
        x.numpy()
    d = x.detach()
    assert not d.requires_grad and d.data is x.data and d.numpy() is x.data
    with pytest.raises(ValueError, match="one-element"):
        bp.ones(2).item()


def test_clone_is_differentiable_copy():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert not np.shares_memory(c.data, x.data)
    (c * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])


def test_to_float_double_long_and_gradient_through_casts():
    x = bp.tensor([1.5, -2.5], requires_grad=True)
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    assert x.long().dtype == np.int64 and not x.long().requires_grad
    assert x.to("float64").dtype == np.float64
    (x.double() * 2).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0])


def test_argmax_method():
    x = bp.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
    np.testing.assert_array_equal(x.argmax(dim=1).data, [1, 0])
    assert x.argmax().item() == 3 and x.argmax().dtype == np.int64


def test_repr_shows_dtype_only_when_not_default_and_grad_fn():
    assert repr(bp.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=float64" in repr(bp.tensor(np.ones(1)))
    x = bp.ones(1, requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward>" in repr(x * 2)


def test_is_leaf_and_requires_grad_setter():
    x = bp.ones(2)
    x.requires_grad = True
    assert x.is_leaf and x.requires_grad
    y = x * 2
    assert not y.is_leaf
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.requires_grad_(False)


# --- operators ---


def test_python_operators_and_reflected_forms():
    a = bp.tensor([1.0, 2.0])
    np.testing.assert_allclose((a + 1).data, [2, 3])
    np.testing.assert_allclose((1 - a).data, [0, -1])
    np.testing.assert_allclose((2 / a).data, [2, 1])
    np.testing.assert_allclose((2**a).data, [2, 4])
    np.testing.assert_allclose((-a).data, [-1, -2])
    np.testing.assert_allclose(abs(-a).data, [1, 2])
    np.testing.assert_allclose((a @ a).data, 5.0)


def test_ndarray_on_the_left_defers_to_tensor():
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * a
    assert isinstance(y, bp.Tensor) and y.requires_grad
    assert isinstance(np.ones((2, 2), np.float32) @ a, bp.Tensor)


def test_comparisons_return_bool_tensors_without_grad():
    a = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for r in (a > 1.5, a >= 2, a < 2, a <= 2, a == 2, a != 2):
        assert r.dtype == np.bool_ and not r.requires_grad
    np.testing.assert_array_equal((a > 1.5).data, [False, True, True])
    assert {a: 1}[a] == 1  # tensors hash by identity, as in PyTorch


def test_getitem_advanced_repeated_indices_accumulate():
    x = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[bp.tensor([0, 0, 2, 0])].sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 0.0, 1.0])


def test_getitem_boolean_mask_and_basic_slices():
    x = bp.arange(12.0).reshape(3, 4).requires_grad_()
    x[x > 5.0].sum().backward()
    np.testing.assert_allclose(x.grad.data.reshape(-1), (np.arange(12) > 5).astype(float))
    x.grad = None
    x[1:, ::-2].sum().backward()
    expected = np.zeros((3, 4))
    expected[1:, ::-2] = 1
    np.testing.assert_allclose(x.grad.data, expected)


def test_iteration_yields_rows():
    rows = list(bp.arange(6).reshape(3, 2))
    assert len(rows) == 3 and rows[1].tolist() == [2, 3]


# --- constructors and seeding ---


def test_constructors_shapes_and_dtypes():
    assert bp.zeros(2, 3).shape == (2, 3) and bp.zeros((2, 3)).dtype == np.float32
    assert bp.ones(4).data.sum() == 4
    assert bp.full((2, 2), 7.0).dtype == np.float32 and bp.full((2,), 7).dtype == np.int64
    assert bp.arange(5).dtype == np.int64 and bp.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_array_equal(bp.arange(1, 7, 2).data, [1, 3, 5])
    np.testing.assert_array_equal(bp.eye(3).data, np.eye(3))
    like = bp.zeros(2, dtype=bp.float64)
    for t in (bp.zeros_like(like), bp.ones_like(like), bp.randn_like(like)):
        assert t.dtype == np.float64 and t.shape == (2,)
    assert bp.rand(3).dtype == np.float32 and bp.randn(3, requires_grad=True).requires_grad


def test_manual_seed_makes_random_functions_reproducible():
    bp.manual_seed(123)
    a = (bp.rand(4).data, bp.randn(2, 2).data, bp.randn_like(bp.zeros(3)).data)
    bp.manual_seed(123)
    b = (bp.rand(4).data, bp.randn(2, 2).data, bp.randn_like(bp.zeros(3)).data)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    bp.manual_seed(124)
    assert not np.array_equal(bp.rand(4).data, a[0])


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        bp.zeros(-1)


# --- broadcasting, as a property ---


@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
def test_binary_op_gradients_have_each_input_shape(shapes, op):
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(0)
    a = bp.tensor(rng.uniform(1, 2, sa), requires_grad=True)
    b = bp.tensor(rng.uniform(3, 4, sb), requires_grad=True)
    y = getattr(bp, op)(a, b)
    assert y.shape == out_shape
    y.sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb
    if op == "add":  # each element of a was used prod(out)/prod(a) times
        np.testing.assert_allclose(a.grad.data, np.full(sa, np.prod(out_shape) / np.prod(sa)))


@given(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4),
       hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_incompatible_shapes_raise_shape_error_naming_both(sa, sb):
    try:
        np.broadcast_shapes(sa, sb)
    except ValueError:
        with pytest.raises(bp.ShapeError, match=rf"add: shapes {re_shape(sa)} and {re_shape(sb)}"):
            bp.ones(sa) + bp.ones(sb)
    else:
        assert (bp.ones(sa) + bp.ones(sb)).shape == np.broadcast_shapes(sa, sb)


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_shape_error_is_a_value_error():
    assert issubclass(bp.ShapeError, ValueError)


def test_numpy_float64_scalars_act_as_python_numbers():
    x = bp.ones(3, requires_grad=True)
    y = x * np.sqrt(2.0) + np.float64(1.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_inputs_give_float32_results_as_pytorch():
    assert (bp.arange(4) / 2).dtype == np.float32
    assert bp.exp(bp.arange(3)).dtype == np.float32
    assert (bp.arange(4) * 2).dtype == np.int64
    assert (bp.arange(4) / bp.ones(4, dtype=bp.float64)).dtype == np.float64


def test_method_forms_match_functions():
    a = bp.tensor([1.0, -2.0])
    np.testing.assert_allclose(a.add(1, alpha=2).data, [3.0, 0.0])
    np.testing.assert_allclose(a.sub(a).data, [0.0, 0.0])
    np.testing.assert_allclose(a.mul(a).data, a.square().data)
    np.testing.assert_allclose(a.div(2).data, [0.5, -1.0])
    np.testing.assert_allclose(a.neg().data, [-1.0, 2.0])
    np.testing.assert_allclose(a.erf().data, bp.erf(a).data)
