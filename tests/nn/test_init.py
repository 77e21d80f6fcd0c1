"""``backprop.nn.init``: formulas, statistics, reproducibility, in-place contract and errors.

Statistical tolerances are derived from the distributions: the sample mean of n draws has
standard error std/√n, the sample std has standard error ≈ std·√((κ - 1)/(4n)) (κ the kurtosis:
1.8 uniform, 3 normal), and we allow 6 of them. A wrong formula (√(6/fan) for √(3/fan), a
missing gain) moves the moments by far more.
"""

import math

import numpy as np
import pytest

import backprop as bp
from backprop.nn import init

SHAPE = (400, 500)  # fan_in 500, fan_out 400, 200,000 draws
UNIFORM_KURTOSIS = 1.8
NORMAL_KURTOSIS = 3.0

# Every random initialiser, called with non-default arguments where they matter.
RANDOM_INITS = {
    "uniform_": lambda t, g=None: init.uniform_(t, -0.3, 0.7, generator=g),
    "normal_": lambda t, g=None: init.normal_(t, 0.5, 2.0, generator=g),
    "trunc_normal_": lambda t, g=None: init.trunc_normal_(t, 0.0, 1.0, -1.0, 2.0, generator=g),
    "xavier_uniform_": lambda t, g=None: init.xavier_uniform_(t, 1.5, generator=g),
    "xavier_normal_": lambda t, g=None: init.xavier_normal_(t, 1.5, generator=g),
    "kaiming_uniform_": lambda t, g=None: init.kaiming_uniform_(t, math.sqrt(5), generator=g),
    "kaiming_normal_": lambda t, g=None: init.kaiming_normal_(t, nonlinearity="relu",
                                                              generator=g),
    "orthogonal_": lambda t, g=None: init.orthogonal_(t, 2.0, generator=g),
    "sparse_": lambda t, g=None: init.sparse_(t, 0.25, generator=g),
}
DETERMINISTIC_INITS = {
    "constant_": lambda t: init.constant_(t, 0.25),
    "zeros_": init.zeros_,
    "ones_": init.ones_,
    "eye_": init.eye_,
}
ALL_INITS = {**RANDOM_INITS, **DETERMINISTIC_INITS}


def _assert_moments(x: np.ndarray, mean: float, std: float, kurtosis: float,
                    n_sigma: float = 6.0) -> None:
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    mean_tol = n_sigma * std / math.sqrt(n)
    std_tol = n_sigma * std * math.sqrt((kurtosis - 1) / (4 * n))
    assert abs(x.mean() - mean) <= mean_tol, (x.mean(), mean, mean_tol)
    assert abs(x.std() - std) <= std_tol, (x.std(), std, std_tol)


def _assert_uniform(x: np.ndarray, low: float, high: float) -> None:
    assert x.min() >= low and x.max() <= high
    # 200,000 draws come within 0.1% of the range of both ends (miss probability ~e^-200).
    assert x.min() - low < 1e-3 * (high - low) and high - x.max() < 1e-3 * (high - low)
    _assert_moments(x, (low + high) / 2, (high - low) / math.sqrt(12), UNIFORM_KURTOSIS)


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _big(dtype=bp.float64) -> bp.Tensor:
    return bp.empty(*SHAPE, dtype=dtype)


# --- reproducibility ---
@pytest.mark.parametrize("name", sorted(RANDOM_INITS))
def test_manual_seed_reproduces_random_init(name):
    fill = RANDOM_INITS[name]
    bp.manual_seed(1234)
    first = fill(bp.empty(30, 40)).data.copy()
    bp.manual_seed(1234)
    again = fill(bp.empty(30, 40)).data.copy()
    bp.manual_seed(4321)
    other = fill(bp.empty(30, 40)).data.copy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", sorted(RANDOM_INITS))
def test_explicit_generator_is_used_and_global_one_untouched(name):
    fill = RANDOM_INITS[name]
    a = fill(bp.empty(30, 40), np.random.default_rng(5)).data.copy()
    bp.manual_seed(99)
    b = fill(bp.empty(30, 40), np.random.default_rng(5)).data.copy()
    after = bp.rand(3).data  # the global stream must not have advanced
    bp.manual_seed(99)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(after, bp.rand(3).data)


def test_successive_inits_draw_fresh_values():
    bp.manual_seed(3)
    w1 = init.normal_(bp.empty(10, 10)).data.copy()
    w2 = init.normal_(bp.empty(10, 10)).data.copy()
    assert not np.array_equal(w1, w2)


# --- distribution statistics ---
def test_uniform_statistics(rng):
    w = init.uniform_(_big(), -0.3, 0.7, generator=rng)
    _assert_uniform(w.data, -0.3, 0.7)


def test_uniform_default_is_unit_interval(rng):
    w = init.uniform_(_big(), generator=rng)
    _assert_uniform(w.data, 0.0, 1.0)


def test_normal_statistics(rng):
    w = init.normal_(_big(), mean=2.0, std=3.0, generator=rng).data
    _assert_moments(w, 2.0, 3.0, NORMAL_KURTOSIS)
    # P(|z| < 1) = erf(1/√2) ≈ 0.6827; binomial standard error √(p(1-p)/n) ≈ 0.001.
    inside = np.mean(np.abs(w - 2.0) < 3.0)
    assert abs(inside - math.erf(1 / math.sqrt(2))) < 0.006


def test_normal_defaults_are_standard(rng):
    _assert_moments(init.normal_(_big(), generator=rng).data, 0.0, 1.0, NORMAL_KURTOSIS)


@pytest.mark.parametrize(
    "mean,std,a,b",
    [(0.0, 1.0, -2.0, 2.0),     # the default: most mass inside, redraw the rejects
     (0.5, 2.0, -1.0, 3.0),     # shifted and scaled
     (0.0, 1.0, 1.5, 2.5)],     # p ≈ 0.06: the uniform-proposal branch
)
def test_trunc_normal_matches_closed_form_moments(rng, mean, std, a, b):
    w = init.trunc_normal_(_big(), mean, std, a, b, generator=rng).data
    alpha, beta = (a - mean) / std, (b - mean) / std
    z = 0.5 * (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2)))
    t_mean = mean + std * (_phi(alpha) - _phi(beta)) / z
    t_var = std**2 * (1 + (alpha * _phi(alpha) - beta * _phi(beta)) / z
                      - ((_phi(alpha) - _phi(beta)) / z) ** 2)
    assert w.min() >= a and w.max() <= b
    # a truncated normal's kurtosis is below the normal's 3, so 3 is a safe bound here
    _assert_moments(w, t_mean, math.sqrt(t_var), NORMAL_KURTOSIS)


def test_trunc_normal_defaults_bounds_are_absolute(rng):
    w = init.trunc_normal_(_big(), std=0.02, generator=rng).data  # bounds ±2, not ±2·std
    _assert_moments(w, 0.0, 0.02, NORMAL_KURTOSIS)


def test_trunc_normal_far_mean_warns_and_stays_in_bounds(rng):
    with pytest.warns(UserWarning, match="more than 2 std"):
        w = init.trunc_normal_(bp.empty(50, 50), 0.0, 1.0, 3.0, 4.0, generator=rng).data
    assert w.min() >= 3.0 and w.max() <= 4.0


def test_trunc_normal_float32_bounds_hold(rng):
    w = init.trunc_normal_(_big(bp.float32), 0.0, 0.1, -0.1, 0.1, generator=rng).data
    assert w.dtype == np.float32
    assert w.min() >= np.float32(-0.1) and w.max() <= np.float32(0.1)


@pytest.mark.parametrize("gain", [1.0, 5.0 / 3])
def test_xavier_uniform_bound_and_std(rng, gain):
    w = init.xavier_uniform_(_big(), gain=gain, generator=rng).data
    bound = gain * math.sqrt(6.0 / (SHAPE[0] + SHAPE[1]))
    _assert_uniform(w, -bound, bound)
    assert abs(w.std() - gain * math.sqrt(2.0 / sum(SHAPE))) < 0.01 * bound


@pytest.mark.parametrize("gain", [1.0, 5.0 / 3])
def test_xavier_normal_std(rng, gain):
    w = init.xavier_normal_(_big(), gain=gain, generator=rng).data
    _assert_moments(w, 0.0, gain * math.sqrt(2.0 / sum(SHAPE)), NORMAL_KURTOSIS)


def test_xavier_uses_receptive_field_for_conv_weights(rng):
    w = init.xavier_uniform_(bp.empty(64, 32, 3, 3, dtype=bp.float64), generator=rng).data
    bound = math.sqrt(6.0 / (32 * 9 + 64 * 9))
    _assert_uniform(w, -bound, bound)


KAIMING_CASES = [
    # (shape, a, mode, nonlinearity, gain, fan)
    (SHAPE, 0.0, "fan_in", "relu", math.sqrt(2), 500),
    (SHAPE, 0.0, "fan_out", "relu", math.sqrt(2), 400),
    (SHAPE, 0.0, "fan_in", "leaky_relu", math.sqrt(2 / (1 + 0.0)), 500),  # a=0 is a slope of 0
    (SHAPE, math.sqrt(5), "fan_in", "leaky_relu", math.sqrt(1 / 3), 500),  # Linear's choice
    (SHAPE, 0.2, "fan_out", "leaky_relu", math.sqrt(2 / 1.04), 400),
    (SHAPE, 0.0, "fan_in", "tanh", 5 / 3, 500),
    ((64, 32, 3, 3), 0.0, "fan_in", "relu", math.sqrt(2), 32 * 9),
    ((64, 32, 3, 3), 0.0, "fan_out", "relu", math.sqrt(2), 64 * 9),
]


@pytest.mark.parametrize("shape,a,mode,nonlinearity,gain,fan", KAIMING_CASES)
def test_kaiming_uniform_bound_is_gain_sqrt_3_over_fan(rng, shape, a, mode, nonlinearity, gain,
                                                      fan):
    w = init.kaiming_uniform_(bp.empty(*shape, dtype=bp.float64), a=a, mode=mode,
                              nonlinearity=nonlinearity, generator=rng).data
    _assert_uniform(w, -gain * math.sqrt(3 / fan), gain * math.sqrt(3 / fan))


@pytest.mark.parametrize("shape,a,mode,nonlinearity,gain,fan", KAIMING_CASES)
def test_kaiming_normal_std_is_gain_over_sqrt_fan(rng, shape, a, mode, nonlinearity, gain, fan):
    w = init.kaiming_normal_(bp.empty(*shape, dtype=bp.float64), a=a, mode=mode,
                             nonlinearity=nonlinearity, generator=rng).data
    _assert_moments(w, 0.0, gain / math.sqrt(fan), NORMAL_KURTOSIS)


def test_kaiming_defaults_are_leaky_relu_fan_in(rng):
    w = init.kaiming_normal_(_big(), generator=rng).data
    _assert_moments(w, 0.0, math.sqrt(2 / (1 + 0.01**2)) / math.sqrt(500), NORMAL_KURTOSIS)


def test_kaiming_mode_is_case_insensitive_like_torch(rng):
    w = init.kaiming_normal_(_big(), mode="FAN_OUT", nonlinearity="relu", generator=rng).data
    _assert_moments(w, 0.0, math.sqrt(2 / 400), NORMAL_KURTOSIS)


def test_sparse_zeroes_exact_count_per_column(rng):
    w = init.sparse_(_big(), sparsity=0.3, std=0.05, generator=rng).data
    zeros_per_column = (w == 0).sum(axis=0)
    assert (zeros_per_column == math.ceil(0.3 * SHAPE[0])).all()
    _assert_moments(w[w != 0], 0.0, 0.05, NORMAL_KURTOSIS)
    # the zeroed rows differ between columns (independent permutations, not one shared mask)
    assert len({tuple(np.flatnonzero(w[:, j] == 0)) for j in range(10)}) == 10


# --- orthogonal_ ---
@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (30, 30), (8, 3, 3, 3), (40, 2, 5)],
                         ids=["tall", "wide", "square", "4d-wide", "3d-tall"])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_is_semi_orthogonal_times_gain(rng, shape, gain):
    w = init.orthogonal_(bp.empty(*shape, dtype=bp.float64), gain=gain, generator=rng).data
    assert w.shape == shape
    flat = w.reshape(shape[0], -1)
    rows, cols = flat.shape
    gram = flat.T @ flat if rows >= cols else flat @ flat.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_float32_is_orthogonal_to_float32_precision(rng):
    w = init.orthogonal_(bp.empty(64, 48), generator=rng).data
    assert w.dtype == np.float32
    np.testing.assert_allclose(w.T.astype(np.float64) @ w, np.eye(48), atol=1e-5)


def test_orthogonal_sign_correction_makes_q_unbiased():
    # Without the sign fix, LAPACK's Householder QR fixes the sign of diag(R), which biases Q
    # (e.g. Q[0, 0] always of one sign). For a Haar-distributed Q, E[Q] = 0 and Var Q_ij = 1/n.
    gen = np.random.default_rng(11)
    draws = np.stack([init.orthogonal_(bp.empty(3, 3, dtype=bp.float64), generator=gen).data
                      for _ in range(400)])
    se = math.sqrt(1 / 3 / 400)
    assert np.abs(draws.mean(axis=0)).max() < 5 * se


@pytest.mark.parametrize("shape", [(12, 5), (5, 12), (6, 2, 3, 2)])
def test_orthogonal_matches_torch_on_the_same_gaussian(shape):
    torch = pytest.importorskip("torch")
    # QR with diag(R) > 0 is unique, so from the same Gaussian matrix torch's recipe must give
    # our matrix up to rounding, whatever LAPACK each library calls.
    rows = shape[0]
    cols = math.prod(shape) // rows
    flat = np.random.default_rng(21).standard_normal((rows, cols))
    t = torch.from_numpy(flat.T.copy() if rows < cols else flat)
    q, r = torch.linalg.qr(t)
    q = q * torch.diag(r).sign()
    expected = (q.T if rows < cols else q).numpy().reshape(shape) * 1.5
    w = init.orthogonal_(bp.empty(*shape, dtype=bp.float64), gain=1.5,
                         generator=np.random.default_rng(21)).data
    np.testing.assert_allclose(w, expected, atol=1e-12)


# --- deterministic fills ---
def test_constant_zeros_ones_fill_values():
    w = bp.empty(3, 4)
    np.testing.assert_array_equal(init.constant_(w, -1.5).data, np.full((3, 4), -1.5))
    np.testing.assert_array_equal(init.zeros_(w).data, np.zeros((3, 4)))
    np.testing.assert_array_equal(init.ones_(w).data, np.ones((3, 4)))


def test_constant_keeps_integer_dtype():
    w = bp.zeros(2, 2, dtype=bp.int64)
    assert init.constant_(w, 7).data.dtype == np.int64
    np.testing.assert_array_equal(w.data, [[7, 7], [7, 7]])


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2)])
def test_eye_matches_torch(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.eye_(torch.empty(*shape)).numpy()
    np.testing.assert_array_equal(init.eye_(bp.empty(*shape)).data, expected)


@pytest.mark.parametrize("shape,groups", [((4, 4, 3), 1), ((6, 4, 3, 3), 2), ((4, 6, 3, 4), 1),
                                          ((6, 2, 3, 3, 3), 3), ((2, 5, 2, 2), 1)])
def test_dirac_matches_torch(shape, groups):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.dirac_(torch.empty(*shape), groups).numpy()
    np.testing.assert_array_equal(init.dirac_(bp.empty(*shape), groups).data, expected)


def test_dirac_conv_weight_is_identity_map():
    w = init.dirac_(bp.empty(3, 3, 3, 3, dtype=bp.float64)).data
    x = np.random.default_rng(0).standard_normal((3, 5, 5))
    # the centre tap of an odd kernel: y[o] = Σ_i W[o, i, 1, 1] x[i] must be x itself
    np.testing.assert_array_equal(np.einsum("oi,ihw->ohw", w[:, :, 1, 1], x), x)


# --- gain and fans against torch ---
GAIN_CASES = [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
    ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", 1),
    ("leaky_relu", math.sqrt(5)), ("relu", 0.5),  # param is ignored by the others
]


@pytest.mark.parametrize("nonlinearity,param", GAIN_CASES)
def test_calculate_gain_equals_torch(nonlinearity, param):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)


def test_calculate_gain_known_values_without_torch():
    assert init.calculate_gain("selu") == 0.75
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert isinstance(init.calculate_gain("linear"), float)


def test_calculate_gain_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'.*leaky_relu.*selu"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("param", ["0.2", True, [0.1]])
def test_calculate_gain_rejects_invalid_slope_like_torch(param):
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", param)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain("leaky_relu", param)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (1, 1), (16, 3, 5, 5), (8, 4, 7),
                                   (2, 3, 4, 5, 6)])
def test_fans_equal_torch(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    assert init.calculate_fan_in_and_fan_out(bp.empty(*shape)) == expected
    assert init._calculate_fan_in_and_fan_out(bp.empty(*shape)) == expected


def test_fans_of_conv_weight_without_torch():
    assert init.calculate_fan_in_and_fan_out(bp.empty(16, 3, 5, 5)) == (75, 400)
    assert init.calculate_fan_in_and_fan_out(bp.empty(10, 20)) == (20, 10)


# --- Linear's default initialisation, as PyTorch's ---
def test_linear_default_init_statistics():
    bp.manual_seed(0)
    layer = bp.nn.Linear(500, 400)
    bound = 1 / math.sqrt(500)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    _assert_uniform(layer.weight.data, -bound, bound)
    b = layer.bias.data
    assert np.abs(b).max() <= bound
    # 400 draws: std's standard error ≈ 2.2%; allow 6 of them
    assert abs(b.std() - bound / math.sqrt(3)) < 0.14 * bound / math.sqrt(3)


def test_linear_default_init_matches_torch_linear():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Linear(500, 400)
    bp.manual_seed(0)
    ours = bp.nn.Linear(500, 400)
    ref_w, ref_b = ref.weight.detach().numpy(), ref.bias.detach().numpy()
    w, b = ours.weight.data, ours.bias.data
    assert w.shape == ref_w.shape and b.shape == ref_b.shape and w.dtype == ref_w.dtype
    bound = 1 / math.sqrt(500)
    assert np.abs(ref_w).max() <= bound and np.abs(w).max() <= bound
    assert abs(w.std() / ref_w.std() - 1) < 0.01
    assert abs(b.std() / ref_b.std() - 1) < 0.25
    assert abs(np.abs(w).max() / np.abs(ref_w).max() - 1) < 1e-3


def test_linear_reset_parameters_is_seed_reproducible():
    bp.manual_seed(8)
    first = bp.nn.Linear(6, 4)
    bp.manual_seed(8)
    second = bp.nn.Linear(6, 4)
    np.testing.assert_array_equal(first.weight.data, second.weight.data)
    np.testing.assert_array_equal(first.bias.data, second.bias.data)


# --- the in-place contract ---
@pytest.mark.parametrize("name", sorted(ALL_INITS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_init_keeps_dtype_array_and_returns_tensor(name, dtype):
    t = bp.empty(20, 20, dtype=dtype)
    array = t.data
    out = ALL_INITS[name](t)
    assert out is t and t.data is array and t.data.dtype == dtype


@pytest.mark.parametrize("name", sorted(RANDOM_INITS))
def test_float32_values_are_float64_samples_cast(name):
    fill = RANDOM_INITS[name]
    w64 = fill(bp.empty(30, 40, dtype=bp.float64), np.random.default_rng(2)).data
    w32 = fill(bp.empty(30, 40, dtype=bp.float32), np.random.default_rng(2)).data
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


@pytest.mark.parametrize("name", sorted(ALL_INITS))
def test_init_bumps_version_once(name):
    t = bp.empty(20, 20)
    before = t._version
    ALL_INITS[name](t)
    assert t._version == before + 1


@pytest.mark.parametrize("name", sorted(ALL_INITS))
def test_init_records_no_graph_on_a_parameter(name):
    p = bp.nn.Parameter(bp.empty(20, 20))
    ALL_INITS[name](p)
    assert p.is_leaf and p.grad_fn is None and p.requires_grad and p.grad is None


def test_init_after_use_in_graph_is_caught_at_backward():
    p = bp.nn.Parameter(bp.ones(3, 3))
    loss = (p * p).sum()  # saves p for the gradient
    init.normal_(p, generator=np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_init_writes_through_to_shared_memory():
    array = np.zeros((4, 4), dtype=np.float32)
    p = bp.nn.Parameter(array)  # shares the array's memory
    init.ones_(p)
    assert (array == 1).all()


def test_kaiming_on_zero_element_tensor_warns_and_is_a_no_op():
    t = bp.empty(0, 5)
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(t) is t
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_normal_(t) is t


@pytest.mark.parametrize("fill", [init.xavier_uniform_, init.xavier_normal_, init.orthogonal_],
                         ids=["xavier_uniform_", "xavier_normal_", "orthogonal_"])
def test_zero_element_tensor_is_left_alone(fill):
    t = bp.empty(0, 0)
    assert fill(t) is t and t.shape == (0, 0)


# --- errors ---
@pytest.mark.parametrize("shape", [(5,), ()])
def test_fan_of_tensor_below_2d_raises(shape):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.calculate_fan_in_and_fan_out(bp.empty(*shape))


@pytest.mark.parametrize("fill", [init.xavier_uniform_, init.xavier_normal_,
                                  init.kaiming_uniform_, init.kaiming_normal_],
                         ids=["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                              "kaiming_normal_"])
def test_fan_based_init_of_1d_tensor_raises(fill):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fill(bp.empty(5))


@pytest.mark.parametrize("fill", [init.kaiming_uniform_, init.kaiming_normal_],
                         ids=["kaiming_uniform_", "kaiming_normal_"])
def test_kaiming_unknown_mode_lists_valid_modes(fill):
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported.*fan_in, fan_out"):
        fill(bp.empty(3, 4), mode="fan_avg")


@pytest.mark.parametrize("fill", [init.kaiming_uniform_, init.kaiming_normal_],
                         ids=["kaiming_uniform_", "kaiming_normal_"])
def test_kaiming_unknown_nonlinearity_lists_choices(fill):
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'.*relu"):
        fill(bp.empty(3, 4), nonlinearity="gelu")


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4)])
def test_eye_requires_2d(shape):
    with pytest.raises(ValueError, match="only 2-D"):
        init.eye_(bp.empty(*shape))


def test_orthogonal_requires_2d():
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(bp.empty(6))


def test_dirac_rejects_bad_rank_and_groups():
    with pytest.raises(ValueError, match="3-, 4- or 5-D"):
        init.dirac_(bp.empty(3, 3))
    with pytest.raises(ValueError, match="divisor"):
        init.dirac_(bp.empty(5, 2, 3, 3), groups=2)


def test_sparse_rejects_bad_rank_and_sparsity():
    with pytest.raises(ValueError, match="only 2-D"):
        init.sparse_(bp.empty(2, 3, 4), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        init.sparse_(bp.empty(3, 4), 1.5)


def test_invalid_distribution_parameters_raise():
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(bp.empty(3), 1.0, 0.0)
    with pytest.raises(ValueError, match="std >= 0"):
        init.normal_(bp.empty(3), 0.0, -1.0)
    with pytest.raises(ValueError, match="std > 0"):
        init.trunc_normal_(bp.empty(3), 0.0, 0.0)
    with pytest.raises(ValueError, match="a <= b"):
        init.trunc_normal_(bp.empty(3), a=2.0, b=-2.0)


@pytest.mark.parametrize("name", sorted(RANDOM_INITS))
def test_random_init_of_integer_tensor_raises(name):
    with pytest.raises(TypeError, match="floating-point"):
        RANDOM_INITS[name](bp.zeros(4, 4, dtype=bp.int64))


def test_generator_must_be_numpy_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        init.uniform_(bp.empty(3), generator=0)


def test_non_tensor_argument_raises():
    with pytest.raises(TypeError, match="expected a backprop Tensor, got ndarray"):
        init.zeros_(np.zeros(3))
