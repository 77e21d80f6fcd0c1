"""Op tests driven by the table in ``cases.py``, plus the checks a table cannot express:
registry coverage, numerical stability, tie-breaking rules and shape errors.

For every case: forward against NumPy, gradcheck, gradgradcheck (where it applies), float32
preservation through forward and backward, and agreement with torch (skipped without torch).
"""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pytest

import backprop as bp
from backprop.autograd.function import _registry
from backprop.autograd.graph import record_ops
from backprop.ops.elementwise import _erf

from .cases import CASES, OpCase

GRAD_CASES = [c for c in CASES if c.differentiable]
DOUBLE_CASES = [c for c in GRAD_CASES if c.double_backward]
TORCH_CASES = [c for c in CASES if c.torch_callable() is not None]


def _ids(cases: list[OpCase]) -> list[str]:
    return [c.name for c in cases]


def _rng(case: OpCase) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case.name.encode()))


def _as_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, tuple) else (result,)


def _is_float(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def _bp_inputs(arrays: list[np.ndarray], dtype=np.float64) -> list[bp.Tensor]:
    """Float arrays become leaves that require grad (in ``dtype``); others pass through."""
    return [
        bp.tensor(a.astype(dtype), requires_grad=True) if _is_float(a) else bp.tensor(a)
        for a in arrays
    ]


def test_case_names_are_unique():
    names = _ids(CASES)
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# --- the table ---


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_forward_matches_numpy(case: OpCase):
    arrays = case.make_inputs(_rng(case))
    outs = _as_tuple(case.fn(*_bp_inputs(arrays)))
    refs = _as_tuple(case.ref(*[a.copy() for a in arrays]))
    assert len(outs) == len(refs)
    for k, (out, ref) in enumerate(zip(outs, refs)):
        ref = np.asarray(ref)
        assert isinstance(out, bp.Tensor), f"output {k} is a {type(out).__name__}"
        assert out.shape == ref.shape, f"output {k}: shape {out.shape}, expected {ref.shape}"
        assert out.dtype == ref.dtype, f"output {k}: dtype {out.dtype}, expected {ref.dtype}"
        np.testing.assert_allclose(out.data, ref, rtol=case.fwd_rtol, atol=case.fwd_atol,
                                   err_msg=f"{case.name}: output {k}")


@pytest.mark.parametrize("case", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_gradcheck(case: OpCase):
    inputs = _bp_inputs(case.make_inputs(_rng(case)))
    assert bp.gradcheck(case.fn, tuple(inputs), eps=case.eps, atol=case.atol, rtol=case.rtol)


@pytest.mark.parametrize("case", DOUBLE_CASES, ids=_ids(DOUBLE_CASES))
def test_gradgradcheck(case: OpCase):
    inputs = _bp_inputs(case.make_inputs(_rng(case)))
    assert bp.gradgradcheck(case.fn, tuple(inputs), eps=case.eps, atol=case.atol,
                            rtol=case.rtol)


@pytest.mark.parametrize("case", DOUBLE_CASES, ids=_ids(DOUBLE_CASES))
def test_recorded_first_derivative_equals_the_plain_one(case: OpCase):
    # fused ops compute their gradient on arrays, and again from tensor ops under
    # create_graph; gradgradcheck differentiates the second, so it must equal the first
    arrays = case.make_inputs(_rng(case))
    results = []
    for create_graph in (False, True):
        xs = _bp_inputs(arrays)
        outs = [o for o in _as_tuple(case.fn(*xs)) if o.requires_grad]
        leaves = [x for x in xs if x.requires_grad]
        rng = np.random.default_rng(7)
        gos = [bp.tensor(rng.standard_normal(o.shape)) for o in outs]
        grads = bp.autograd.grad(outs, leaves, gos, create_graph=create_graph,
                                 allow_unused=True)
        results.append([None if g is None else g.data for g in grads])
    for i, (plain, recorded) in enumerate(zip(*results)):
        if plain is None or recorded is None:
            assert plain is None and recorded is None, f"{case.name}: input {i}"
            continue
        np.testing.assert_allclose(recorded, plain, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{case.name}: input {i}")


def _strict_backward(cls: type) -> staticmethod:
    """``cls.backward``, failing if it returns a gradient of another dtype than its input's.

    The engine casts such a gradient back to the input's dtype, so without this check a rule
    that silently computes in float64 would pass unseen (at twice the cost)."""
    rule = cls.backward

    def backward(ctx, *grad_outputs):
        result = rule(ctx, *grad_outputs)
        grads = result if isinstance(result, tuple) else (result,)
        for i, (meta, g) in enumerate(zip(ctx.input_metadata, grads)):
            if g is not None and meta is not None and meta.dtype.kind == "f":
                assert g.dtype == meta.dtype, (
                    f"{cls.__name__}.backward returned a {g.dtype} gradient for its "
                    f"{meta.dtype} input {i}"
                )
        return result

    return staticmethod(backward)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_float32_in_float32_out(case: OpCase, monkeypatch: pytest.MonkeyPatch):
    """NEP 50: Python scalars and constants inside an op never promote float32 to float64,
    neither in forward nor in any backward rule on the way to the inputs."""
    for cls in _registry.values():
        monkeypatch.setattr(cls, "backward", _strict_backward(cls))
    rng = _rng(case)
    arrays = case.make_inputs(rng)
    inputs = _bp_inputs(arrays, np.float32)
    outs = _as_tuple(case.fn(*inputs))
    refs = _as_tuple(case.fn(*_bp_inputs(arrays)))  # the float64 run: which outputs are floats
    expected = np.dtype(case.out_dtype or np.float32)
    for k, (out, ref) in enumerate(zip(outs, refs)):
        want = expected if _is_float(ref.data) else ref.dtype
        assert out.dtype == want, f"output {k}: dtype {out.dtype}, expected {want}"
    if not case.differentiable:
        return
    leaves = [x for x in inputs if _is_float(x.data)]
    diff_outs = [o for o in outs if o.requires_grad]
    grad_outputs = [bp.tensor(rng.standard_normal(o.shape).astype(o.dtype)) for o in diff_outs]
    grads = bp.autograd.grad(diff_outs, leaves, grad_outputs, allow_unused=True)
    for i, (x, g) in enumerate(zip(leaves, grads)):
        assert g is not None, f"no gradient for float input {i}"
        assert g.shape == x.shape, f"gradient {i}: shape {g.shape}, input shape {x.shape}"
        assert g.dtype == np.float32, f"gradient {i}: dtype {g.dtype}, expected float32"


@pytest.mark.parametrize("case", TORCH_CASES, ids=_ids(TORCH_CASES))
def test_matches_torch(case: OpCase):
    torch = pytest.importorskip("torch")
    rng = _rng(case)
    arrays = case.make_inputs(rng)
    xs = _bp_inputs(arrays)
    ts = [torch.from_numpy(a.copy()).requires_grad_(_is_float(a)) for a in arrays]
    outs = _as_tuple(case.fn(*xs))
    touts = _as_tuple(case.torch_callable()(*ts))
    assert len(outs) == len(touts)
    for k, (out, tout) in enumerate(zip(outs, touts)):
        expected = tout.detach().numpy()
        assert out.shape == expected.shape, f"output {k}: shape {out.shape} vs {expected.shape}"
        assert out.dtype == expected.dtype, f"output {k}: dtype {out.dtype} vs {expected.dtype}"
        np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{case.name}: output {k}")
    if not case.differentiable:
        return
    pairs = [(o, t) for o, t in zip(outs, touts) if t.requires_grad]
    assert [o.requires_grad for o in outs] == [t.requires_grad for t in touts]
    gos = [rng.standard_normal(o.shape).astype(o.dtype) for o, _ in pairs]
    leaves = [x for x in xs if _is_float(x.data)]
    tleaves = [t for t in ts if t.requires_grad]
    grads = bp.autograd.grad([o for o, _ in pairs], leaves, [bp.tensor(g) for g in gos],
                             allow_unused=True)
    tgrads = torch.autograd.grad([t for _, t in pairs], tleaves,
                                 [torch.from_numpy(g) for g in gos], allow_unused=True)
    for i, (g, tg, x) in enumerate(zip(grads, tgrads, leaves)):
        got = np.zeros(x.shape) if g is None else g.data
        want = np.zeros(x.shape) if tg is None else tg.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{case.name}: gradient of input {i}")


# --- registry coverage: every built-in Function is applied by some case ---


def test_every_registered_op_has_a_case():
    covered = set()
    for case in CASES:
        rng = _rng(case)
        xs = _bp_inputs(case.make_inputs(rng))
        with record_ops() as ops:  # every op applied, differentiable or not
            outs = [o for o in _as_tuple(case.fn(*xs)) if o.requires_grad]
            if outs:
                # the gradients' graph holds the ops only backward rules use (ScatterItem, SumTo)
                leaves = [x for x in xs if x.requires_grad]
                gos = [bp.tensor(rng.standard_normal(o.shape), requires_grad=True) for o in outs]
                grads = bp.autograd.grad(outs, leaves, gos, create_graph=True, allow_unused=True)
                grads = [g for g in grads if g is not None and g.requires_grad]
                if grads:  # and the second backward runs the rules of those ops
                    bp.autograd.grad(grads, leaves, [bp.ones_like(g) for g in grads],
                                     allow_unused=True)
        covered |= {r.function.__name__ for r in ops}
    missing = sorted(set(_registry) - covered)
    assert not missing, f"registered ops with no OpCase reaching them: {missing}"


# --- numerical stability ---


def test_softmax_family_is_finite_at_large_inputs():
    x = bp.tensor(np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]]), requires_grad=True)
    ln2 = math.log(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sm, lsm, lse = x.softmax(1), x.log_softmax(1), x.logsumexp(1)
        (sm.sum() + lsm.sum() + lse.sum()).backward()
    np.testing.assert_allclose(sm.data, [[1, 0, 0], [0.5, 0.5, 0]], rtol=1e-14, atol=0)
    np.testing.assert_allclose(lsm.data, [[0, -2e4, -1e4], [-ln2, -ln2, -2e4 - ln2]], rtol=1e-14)
    np.testing.assert_allclose(lse.data, [1e4, 1e4 + ln2], rtol=1e-14)
    assert np.isfinite(x.grad.data).all()


def test_softmax_family_is_finite_at_large_inputs_float32():
    x = bp.tensor(np.array([1e4, -1e4, 0.0], dtype=np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = [x.softmax(0), x.log_softmax(0), x.logsumexp(0)]
        sum(o.sum() for o in outs).backward()
    for o in outs:
        assert o.dtype == np.float32 and np.isfinite(o.data).all()
    np.testing.assert_allclose(outs[1].data, [0, -2e4, -1e4])
    assert np.isfinite(x.grad.data).all()


def test_sigmoid_has_no_overflow_at_extremes():
    x = bp.tensor(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0]), requires_grad=True)
    # e^-1000 underflows to 0 by design (harmless); overflow, 0/0 and inf/inf must not happen
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        y = x.sigmoid()
        y.sum().backward()
    expected = [0.0, 1 / (1 + math.exp(30)), 0.5, 1 / (1 + math.exp(-30)), 1.0]
    np.testing.assert_allclose(y.data, expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(x.grad.data, [e * (1 - e) for e in expected], rtol=1e-12, atol=0)


def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-10, 10, 20001), [0.0, 1e-300, -1e-8, 2.5, -2.5]])
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(_erf(x), expected, rtol=1e-14, atol=0)


# --- tie-breaking rules ---


def test_amax_amin_split_ties_evenly():
    data = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, 2.0, 0.0, 1.0]])
    x = bp.tensor(data, requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0, 0]])
    y = bp.tensor(-data, requires_grad=True)
    y.amin(1).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [[0, 1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0, 0]])
    z = bp.tensor(data, requires_grad=True)
    z.max().backward()  # without dim: max() is amax over everything
    np.testing.assert_array_equal(z.grad.data, [[0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 0, 0]])


def test_max_min_with_dim_send_gradient_to_the_returned_index():
    """With ties, max(dim)/min(dim) return the first extreme and route the gradient there only
    (PyTorch's max(dim) semantics; amax splits instead)."""
    tied = {"max": [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], "min": [[3.0, 1.0, 1.0], [0.0, 2.0, 0.0]]}
    for op, data in tied.items():
        x = bp.tensor(np.array(data), requires_grad=True)
        values, indices = getattr(x, op)(1)
        assert indices.dtype == np.int64 and not indices.requires_grad
        np.testing.assert_array_equal(indices.data, [1, 0])
        values.sum().backward()
        np.testing.assert_array_equal(x.grad.data, [[0, 1, 0], [1, 0, 0]])


def test_maximum_minimum_split_ties_evenly():
    a = bp.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = bp.tensor(np.array([1.0, 0.0, 4.0]), requires_grad=True)
    (a.maximum(b) + 2 * a.minimum(b)).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [1.5, 1.0, 2.0])
    np.testing.assert_array_equal(b.grad.data, [1.5, 2.0, 1.0])


def test_clamp_passes_the_gradient_at_the_bounds():
    x = bp.tensor(np.array([-1.0, -0.5, 0.0, 0.5, 1.0]), requires_grad=True)
    x.clamp(-0.5, 0.5).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 1, 1, 1, 0])  # PyTorch's convention


def test_getitem_repeated_indices_accumulate():
    x = bp.tensor(np.arange(4.0), requires_grad=True)
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3, 0, 1, 0])


def test_prod_gradient_with_zeros():
    x = bp.tensor(np.array([2.0, 0.0, 3.0]), requires_grad=True)
    x.prod().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 6, 0])
    y = bp.tensor(np.array([0.0, 5.0, 0.0]), requires_grad=True)
    y.prod().backward()
    np.testing.assert_array_equal(y.grad.data, [0, 0, 0])


def test_argmax_is_int64_without_grad():
    x = bp.tensor(np.array([[0.0, 2.0, 1.0], [5.0, 4.0, 3.0]]), requires_grad=True)
    for idx, expected in ((x.argmax(1), [1, 0]), (x.argmax(), 3), (x.argmin(0), [0, 0, 0])):
        assert idx.dtype == np.int64 and not idx.requires_grad and idx.grad_fn is None
        np.testing.assert_array_equal(idx.data, expected)


# --- shape errors name the op and both shapes ---


def _shape_error(fn, *words):
    with pytest.raises(bp.ShapeError) as info:
        fn()
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"
    return message


def test_shape_error_is_a_value_error():
    assert issubclass(bp.ShapeError, ValueError)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "pow"])
def test_broadcast_mismatch_names_op_and_shapes(op):
    a, b = bp.ones(2, 3), bp.ones(4)
    _shape_error(lambda: getattr(bp, op)(a, b), op, "(2, 3)", "(4,)")


def test_broadcast_mismatch_through_operators():
    a, b = bp.ones(2, 3, requires_grad=True), bp.ones(2, 4)
    _shape_error(lambda: a + b, "add", "(2, 3)", "(2, 4)")
    _shape_error(lambda: a * b, "mul", "(2, 3)", "(2, 4)")


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (4,)), ((3,), (4, 2)), ((2, 2, 3), (3, 3, 4))],
    ids=["2d", "1d_1d", "2d_1d", "1d_2d", "batch"],
)
def test_matmul_mismatch_names_op_and_shapes(shape_a, shape_b):
    a, b = bp.ones(*shape_a), bp.ones(*shape_b)
    _shape_error(lambda: a @ b, "matmul", str(shape_a), str(shape_b))


def test_matmul_rejects_0d_operands():
    _shape_error(lambda: bp.matmul(bp.ones(()), bp.ones(3)), "matmul", "()", "(3,)")


def test_cat_mismatch_names_op_and_shapes():
    _shape_error(lambda: bp.cat([bp.ones(2, 3), bp.ones(3, 2)], 0), "cat", "(2, 3)", "(3, 2)")
    _shape_error(lambda: bp.cat([bp.ones(2, 3), bp.ones(2, 3, 1)], 1), "cat", "(2, 3, 1)")


def test_stack_mismatch_names_op_and_shapes():
    _shape_error(lambda: bp.stack([bp.ones(2, 3), bp.ones(3, 2)]), "stack", "(2, 3)", "(3, 2)")


def test_reshape_to_wrong_size():
    x = bp.ones(2, 3)
    _shape_error(lambda: x.reshape(4, 2), "reshape", "(2, 3)", "(4, 2)")
    _shape_error(lambda: x.view(-1, 4), "reshape", "(2, 3)")
