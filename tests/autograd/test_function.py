"""User-defined Functions: the same mechanism as the built-in ops."""

import numpy as np
import pytest

import backprop as bp
from backprop.autograd import Function, once_differentiable


class Cube(Function):
    """y = x³;  dy/dx = 3x²."""

    @staticmethod
    def forward(ctx, x):
        assert isinstance(x, np.ndarray)
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        assert isinstance(x, bp.Tensor)
        return grad_out * 3 * x * x


def test_custom_function_first_and_second_order(rng):
    x = bp.tensor(rng.standard_normal(5), requires_grad=True)
    assert bp.gradcheck(Cube.apply, (x,))
    assert bp.gradgradcheck(Cube.apply, (x,))
    assert Cube.apply(x).grad_fn.name() == "CubeBackward"


def test_user_functions_are_not_in_the_builtin_registry():
    assert "Cube" not in bp.autograd.function._registry
    assert "Mul" in bp.autograd.function._registry


class ScaleBy(Function):
    """y = a · k for a plain number k;  ∂y/∂a = k."""

    @staticmethod
    def forward(ctx, a, k):
        ctx.k = k
        ctx.seen_needs = ctx.needs_input_grad
        return a * k

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out * ctx.k, None


def test_needs_input_grad_and_non_tensor_arguments():
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    y = ScaleBy.apply(a, 3.0)
    assert y.grad_fn.seen_needs == (True, False)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.data, [3.0, 3.0])


class WrongCount(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out


class WrongShape(Function):
    @staticmethod
    def forward(ctx, a):
        return a.sum()

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out  # should be broadcast to a's shape


class ReturnsTensor(Function):
    @staticmethod
    def forward(ctx, a):
        return bp.tensor(a)


def test_backward_returning_wrong_number_of_gradients_is_named():
    a = bp.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"WrongCount.backward returned 1 gradients.*2"):
        WrongCount.apply(a, a).sum().backward()


def test_backward_returning_wrong_shape_is_an_error_not_summed():
    a = bp.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"WrongShape.backward.*shape \(\).*\(2, 3\)"):
        WrongShape.apply(a).backward()


def test_forward_returning_tensor_is_refused():
    with pytest.raises(TypeError, match="NumPy arrays"):
        ReturnsTensor.apply(bp.ones(2))


class SplitHalves(Function):
    """(y₁, y₂) = the two halves of x;  ∂L/∂x = [g₁, g₂]."""

    @staticmethod
    def forward(ctx, x):
        n = x.shape[0] // 2
        return x[:n].copy(), x[n:].copy()

    @staticmethod
    def backward(ctx, g1, g2):
        return bp.cat([g1, g2])


def test_multi_output_function_with_an_unused_output_gets_zeros():
    x = bp.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    first, _ = SplitHalves.apply(x)
    (first * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0, 0.0, 0.0])


class NumpyCube(Function):
    """y = x³ with a NumPy backward: once differentiable."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return bp.tensor(grad_out.data * 3 * x.data**2)


def test_once_differentiable_first_order_works_second_raises():
    x = bp.tensor([1.0, 2.0], dtype=bp.float64, requires_grad=True)
    assert bp.gradcheck(NumpyCube.apply, (x,))
    (g,) = bp.autograd.grad(NumpyCube.apply(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_gradcheck_fails_on_a_deliberately_wrong_backward():
    class WrongCube(Cube):
        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            return grad_out * 3 * x  # missing a factor x

    x = bp.tensor([0.5, 1.5], dtype=bp.float64, requires_grad=True)
    expected = r"WrongCube.apply.*input 0\[1\].*analytic 4.5, numeric 6.7499"
    with pytest.raises(bp.autograd.GradcheckError, match=expected):
        bp.gradcheck(WrongCube.apply, (x,))
    assert bp.gradcheck(WrongCube.apply, (x,), raise_exception=False) is False


def test_gradcheck_random_projection_mode_also_catches_wrong_backward(rng):
    class WrongTanh(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return np.tanh(x)

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            return grad_out * (1 - x * x)  # uses x instead of tanh(x)

    x = bp.tensor(rng.standard_normal(2000), requires_grad=True)
    assert bp.gradcheck(bp.tanh, (x,))  # fast mode is chosen for 2,000 elements
    with pytest.raises(bp.autograd.GradcheckError, match="random projection"):
        bp.gradcheck(WrongTanh.apply, (x,))


def test_gradgradcheck_fails_on_wrong_second_derivative():
    class WrongSecond(Function):
        """y = x³ whose backward is right to first order but wrong to second."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            return grad_out * bp.tensor(3 * x.data**2)  # a constant: d/dx lost

    x = bp.tensor([0.5, 1.5], dtype=bp.float64, requires_grad=True)
    assert bp.gradcheck(WrongSecond.apply, (x,))
    with pytest.raises(bp.autograd.GradcheckError):
        bp.gradgradcheck(WrongSecond.apply, (x,))


def test_saved_output_that_is_the_input_sees_in_place_changes_of_the_input():
    # the output shares the input's memory and version counter; what the node saved must be
    # checked against that shared counter, not a counter of its own made before the sharing
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            return grad_out * 1

    h = bp.ones(3, requires_grad=True) * 1
    y = Identity.apply(h)
    h.add_(1)
    with pytest.raises(RuntimeError, match="IdentityBackward.*output 0.*modified by an in-place"):
        y.sum().backward()
