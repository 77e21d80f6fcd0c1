"""copy.deepcopy of Tensors and modules: a fresh leaf whose gradients are its own (a deep copy
kept the original's gradient accumulator, so the copy's backward filled the original's .grad)."""

import copy

import numpy as np
import pytest

import backprop as bp


def test_a_copied_module_gets_its_own_gradients():
    model = bp.nn.Linear(3, 2)
    model(bp.ones(4, 3)).sum().backward()  # the leaves now have accumulators
    before = [p.grad.data.copy() for p in model.parameters()]
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.grad = None
    (twin(bp.ones(4, 3)) * 3).sum().backward()
    for p, q, g in zip(model.parameters(), twin.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.grad.data, g)  # the original's are untouched
        np.testing.assert_allclose(q.grad.data, 3 * g)
        assert type(q) is type(p) and q.requires_grad and q.is_leaf
        assert not np.shares_memory(p.data, q.data)


def test_values_and_grad_are_copied():
    t = bp.tensor([1.0, 2.0], requires_grad=True)
    (t * t).sum().backward()
    c = copy.deepcopy(t)
    np.testing.assert_array_equal(c.data, t.data)
    np.testing.assert_array_equal(c.grad.data, t.grad.data)
    c.data[0] = 9.0
    c.grad.data[0] = 9.0
    assert t.data[0] == 1.0 and t.grad.data[0] == 2.0


def test_only_leaves_can_be_deep_copied():
    x = bp.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="graph leaves.*MulBackward"):
        copy.deepcopy(x)
    copy.deepcopy(x.detach())  # the way out the message gives


def test_a_parameter_keeps_its_name_in_the_copy():
    model = bp.nn.Sequential(bp.nn.Linear(2, 2))
    twin = copy.deepcopy(model)
    assert twin[0].weight.qualified_name == model[0].weight.qualified_name


def test_a_leaf_pickles_after_backward_and_keeps_its_values_flags_and_grad():
    import pickle

    model = bp.nn.Linear(2, 1)
    model(bp.ones(1, 2)).sum().backward()
    w = pickle.loads(pickle.dumps(model.weight))
    assert type(w) is type(model.weight) and w.requires_grad and w.is_leaf
    np.testing.assert_array_equal(w.data, model.weight.data)
    np.testing.assert_array_equal(w.grad.data, model.weight.grad.data)
    w.grad = None
    (w * 2).sum().backward()  # its own accumulator
    np.testing.assert_array_equal(w.grad.data, [[2.0, 2.0]])
    np.testing.assert_array_equal(model.weight.grad.data, [[1.0, 1.0]])


def test_pickling_a_non_leaf_is_refused_as_in_pytorch():
    import pickle

    with pytest.raises(RuntimeError, match="Cowardly refusing.*MulBackward"):
        pickle.dumps(bp.ones(2, requires_grad=True) * 2)


def test_a_shallow_copy_shares_the_values_but_not_the_gradients():
    p = bp.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    c = copy.copy(p)
    assert np.shares_memory(c.data, p.data)
    c.grad = None
    (c * 3).sum().backward()
    np.testing.assert_array_equal(c.grad.data, [3.0, 3.0])
    np.testing.assert_array_equal(p.grad.data, [2.0, 4.0])
