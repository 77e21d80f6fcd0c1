"""The CLI's dataset loader (``load_splits``, ``read_inputs``) and model builder
(``build_model``, ``check_input``): shapes, fixed splits, standardisation, initialisers, and the
one-line errors a user's mistake gets."""

import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop.cli.datasets import (
    DATASETS,
    PIXEL_STD_FLOOR,
    Splits,
    load_splits,
    read_inputs,
)
from backprop.cli.errors import RunError, UsageError
from backprop.cli.models import (
    ACTIVATIONS,
    CNN_CHANNELS,
    INITS,
    MODELS,
    RowLSTM,
    build_model,
    check_input,
)
from backprop.data.datasets import load_digits, spirals
from tests.data.test_idx import MNIST_DIR, _small_mnist

HAS_MNIST = (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file() or \
    (MNIST_DIR / "train-images-idx3-ubyte").is_file()


@pytest.fixture(scope="module")
def digits() -> Splits:
    return load_splits("digits")


def _rows(a: np.ndarray) -> set:
    return {row.tobytes() for row in a.reshape(len(a), -1)}


# --- load_splits: the built-in datasets ---


def test_digits_splits_are_loaders_split_standardised_per_pixel(digits):
    assert (digits.input_shape, digits.num_classes, digits.kind) == ((1, 8, 8), 10, "image")
    assert digits.classes == [str(d) for d in range(10)] and digits.feature_names is None
    assert digits.train.data.shape == (1437, 1, 8, 8) and digits.test.data.shape == (360, 1, 8, 8)
    assert digits.train.data.dtype == np.float32 and digits.train.targets.dtype == np.int64
    assert digits.mean.shape == (1, 8, 8) and digits.std.shape == (1, 8, 8)
    assert digits.mean.dtype == np.float32 and digits.std.dtype == np.float32
    raw = load_digits(train=True, seed=0)
    np.testing.assert_allclose(digits.mean, raw.data.mean(axis=0), rtol=1e-5, atol=1e-7)
    sd = raw.data.std(axis=0)
    floored = np.where(sd > 0, np.maximum(sd, PIXEL_STD_FLOOR), 1)  # constant pixels: 1
    np.testing.assert_allclose(digits.std, floored, rtol=1e-5)
    assert (digits.std == np.float32(PIXEL_STD_FLOOR)).any()  # the floor is in use
    np.testing.assert_allclose(digits.train.data.mean(axis=0), 0, atol=1e-5)
    wide = raw.data.std(axis=0) > PIXEL_STD_FLOOR
    np.testing.assert_allclose(digits.train.data.std(axis=0)[wide], 1, rtol=1e-4)
    np.testing.assert_allclose(digits.preprocess(raw.data), digits.train.data, atol=1e-6)
    test_raw = load_digits(train=False, seed=0)
    np.testing.assert_allclose(digits.preprocess(test_raw.data), digits.test.data, atol=1e-6)
    np.testing.assert_array_equal(digits.test.targets, test_raw.targets)
    assert len(digits.train) + len(digits.test) == 1797


def test_spirals_split_is_fixed_stratified_disjoint_and_standardised_per_feature():
    s = load_splits("spirals")
    assert (s.input_shape, s.num_classes, s.kind, s.classes) == ((2,), 3, "table",
                                                                  ["0", "1", "2"])
    assert s.train.data.shape == (240, 2) and s.test.data.shape == (60, 2)
    assert np.bincount(s.train.targets).tolist() == [80, 80, 80]
    assert np.bincount(s.test.targets).tolist() == [20, 20, 20]
    assert s.mean.shape == (2,) and s.std.shape == (2,)
    np.testing.assert_allclose(s.train.data.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(s.train.data.std(axis=0), 1, atol=1e-5)
    assert abs(s.test.data.mean()) > 1e-4  # the test part is standardised with train's stats
    # undo the standardisation: train and test together are spirals(seed 0) as a multiset, so
    # they are disjoint (row-set disjointness would not do: every arm starts at the origin)
    full = spirals(n=100, classes=3, seed=0).data
    train_raw = s.train.data * s.std + s.mean
    test_raw = s.test.data * s.std + s.mean
    both = np.concatenate([train_raw, test_raw])
    order = np.lexsort(both.T[::-1])
    np.testing.assert_allclose(both[order], full[np.lexsort(full.T[::-1])], atol=1e-5)
    again = load_splits("spirals")
    np.testing.assert_array_equal(again.train.data, s.train.data)
    np.testing.assert_array_equal(again.test.targets, s.test.targets)


def test_xor_trains_and_tests_on_the_whole_truth_table_unscaled():
    s = load_splits("xor")
    table = [[0, 0], [0, 1], [1, 0], [1, 1]]
    for part in (s.train, s.test):
        assert part.data.tolist() == table and part.targets.tolist() == [0, 1, 1, 0]
    assert s.mean.tolist() == [0, 0] and s.std.tolist() == [1, 1]
    assert (s.input_shape, s.num_classes, s.kind) == ((2,), 2, "table")
    np.testing.assert_array_equal(s.preprocess(np.array(table)), np.array(table, np.float32))


def test_digits_loads_the_same_arrays_twice(digits):
    again = load_splits("digits")
    np.testing.assert_array_equal(again.train.data, digits.train.data)
    np.testing.assert_array_equal(again.test.targets, digits.test.targets)


def test_unknown_dataset_and_stray_target_are_usage_errors():
    with pytest.raises(UsageError) as exc:
        load_splits("cifar")
    assert "'cifar'" in str(exc.value) and all(n in str(exc.value) for n in DATASETS)
    with pytest.raises(UsageError, match="--target"):
        load_splits("digits", target="label")


# --- MNIST and Fashion-MNIST ---


def test_mnist_without_data_dir_says_which_flag_and_files(tmp_path):
    with pytest.raises(UsageError) as exc:
        load_splits("mnist")
    msg = str(exc.value)
    assert "--data-dir DIR" in msg and "train-images-idx3-ubyte" in msg
    assert "t10k-labels-idx1-ubyte" in msg


def test_mnist_with_an_empty_dir_is_a_run_error_keeping_the_loaders_message(tmp_path):
    with pytest.raises(RunError) as exc:
        load_splits("fashion-mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(exc.value) and "train images" in str(exc.value)


def test_fashion_mnist_from_small_files_standardises_with_train_pixels(tmp_path, rng):
    train_images, _ = _small_mnist(tmp_path, rng, n=6, split="train")
    _small_mnist(tmp_path, rng, n=3, split="t10k")
    s = load_splits("fashion-mnist", data_dir=tmp_path)
    assert s.train.data.shape == (6, 1, 28, 28) and s.test.data.shape == (3, 1, 28, 28)
    assert s.classes[0] == "T-shirt/top" and s.num_classes == 10
    pixels = train_images / 255.0
    assert float(s.mean) == pytest.approx(pixels.mean(), rel=1e-5)
    assert float(s.std) == pytest.approx(pixels.std(), rel=1e-5)
    np.testing.assert_allclose(s.train.data[:, 0], (pixels - s.mean) / s.std, atol=1e-5)


@pytest.mark.skipif(not HAS_MNIST, reason=f"MNIST files not in {MNIST_DIR} "
                    "(set BACKPROP_MNIST_DIR)")
def test_real_mnist_splits_and_statistics():
    s = load_splits("mnist", data_dir=MNIST_DIR)
    assert s.train.data.shape == (60000, 1, 28, 28) and s.test.data.shape == (10000, 1, 28, 28)
    assert (s.input_shape, s.num_classes, s.kind) == ((1, 28, 28), 10, "image")
    assert float(s.mean) == pytest.approx(0.1307, abs=1e-4)  # the well-known MNIST numbers
    assert float(s.std) == pytest.approx(0.3081, abs=1e-4)
    assert abs(s.train.data.mean(dtype=np.float64)) < 1e-5
    assert s.train.data.std(dtype=np.float64) == pytest.approx(1, abs=1e-4)


# --- csv ---


def _table(path, n_per_class=(10, 10, 10), rng=None):
    rng = rng or np.random.default_rng(0)
    lines = ["height,kind,width,const"]
    for k, n in enumerate(n_per_class):
        for _ in range(n):
            lines.append(f"{rng.normal(5 * k, 1):.4f},{'abc'[k]},{rng.normal(100, 20):.4f},7")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_split_standardisation_and_feature_names(tmp_path):
    path = _table(tmp_path / "t.csv")
    s = load_splits("csv", data_dir=path, target="kind")
    assert s.feature_names == ["height", "width", "const"] and s.classes == ["a", "b", "c"]
    assert (s.input_shape, s.num_classes, s.kind) == ((3,), 3, "table")
    assert s.train.data.shape == (24, 3) and s.test.data.shape == (6, 3)
    assert np.bincount(s.test.targets).tolist() == [2, 2, 2]
    np.testing.assert_allclose(s.train.data[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(s.train.data[:, :2].std(axis=0), 1, atol=1e-4)
    assert s.std[2] == 1 and s.mean[2] == 7 and (s.train.data[:, 2] == 0).all()  # std 0 -> 1
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 2, 3), dtype=np.float32)
    got = np.concatenate([s.train.data, s.test.data]) * s.std + s.mean
    assert _rows(np.round(got, 2)) == _rows(np.round(raw, 2))
    again = load_splits("csv", data_dir=path, target="kind")
    np.testing.assert_array_equal(again.train.data, s.train.data)


def test_csv_with_a_one_row_class_falls_back_to_a_seeded_random_split(tmp_path):
    path = _table(tmp_path / "t.csv", n_per_class=(9, 10, 1))
    s = load_splits("csv", data_dir=path, target="kind")
    assert len(s.train) == 16 and len(s.test) == 4 and s.num_classes == 3
    again = load_splits("csv", data_dir=path, target="kind")
    np.testing.assert_array_equal(again.test.targets, s.test.targets)


def test_csv_errors_name_the_flag_file_and_columns(tmp_path):
    path = _table(tmp_path / "t.csv")
    with pytest.raises(UsageError, match="--data-dir FILE.csv"):
        load_splits("csv", target="kind")
    with pytest.raises(RunError) as exc:
        load_splits("csv", data_dir=tmp_path / "nope.csv", target="kind")
    assert "nope.csv" in str(exc.value) and "does not exist" in str(exc.value)
    with pytest.raises(UsageError) as exc:
        load_splits("csv", data_dir=path)
    assert "--target COLUMN" in str(exc.value) and "height, kind, width, const" in str(exc.value)
    with pytest.raises(UsageError) as exc:
        load_splits("csv", data_dir=path, target="label")
    assert "'label'" in str(exc.value) and "height, kind, width, const" in str(exc.value)
    path.write_text("a,b,y\n1,2,x\n3,oops,y\n")
    with pytest.raises(RunError) as exc:
        load_splits("csv", data_dir=path, target="y")
    assert "row 2" in str(exc.value) and "'b'" in str(exc.value) and "oops" in str(exc.value)


# --- read_inputs ---


@pytest.mark.parametrize("shape, n", [((5, 1, 8, 8), 5), ((5, 64), 5), ((1, 8, 8), 1)])
def test_read_inputs_npy_image_shapes(tmp_path, rng, shape, n):
    arr = rng.integers(0, 17, shape)  # ints: read_inputs casts to float32, does not scale
    np.save(tmp_path / "x.npy", arr)
    got = read_inputs(tmp_path / "x.npy", (1, 8, 8), "image")
    assert got.shape == (n, 1, 8, 8) and got.dtype == np.float32
    np.testing.assert_array_equal(got.reshape(-1), arr.reshape(-1))


@pytest.mark.parametrize("shape, n", [((7, 2), 7), ((2,), 1)])
def test_read_inputs_npy_table_shapes(tmp_path, rng, shape, n):
    arr = rng.normal(size=shape)
    np.save(tmp_path / "x.npy", arr)
    got = read_inputs(tmp_path / "x.npy", (2,), "table")
    assert got.shape == (n, 2)
    np.testing.assert_allclose(got.reshape(-1), arr.reshape(-1), rtol=1e-6)


def test_read_inputs_npy_refusals(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((5, 3)))
    with pytest.raises(RunError) as exc:
        read_inputs(tmp_path / "bad.npy", (1, 8, 8), "image")
    msg = str(exc.value)
    assert "bad.npy" in msg and "(5, 3)" in msg and "(N, 1, 8, 8)" in msg and "(N, 64)" in msg
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RunError, match="obj.npy"):
        read_inputs(tmp_path / "obj.npy", (2,), "table")
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(RunError, match="cannot be read"):
        read_inputs(tmp_path / "junk.npy", (2,), "table")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(RunError, match="finite"):
        read_inputs(tmp_path / "nan.npy", (2,), "table")
    np.save(tmp_path / "inf.npy", np.array([[1.0, 2.0], [np.inf, 0]]))
    with pytest.raises(RunError, match="input 2"):
        read_inputs(tmp_path / "inf.npy", (2,), "table")
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    with pytest.raises(RunError, match="no inputs"):
        read_inputs(tmp_path / "empty.npy", (2,), "table")


def test_read_inputs_file_type_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(RunError) as exc:
        read_inputs(tmp_path / "x.txt", (2,), "table")
    assert ".npy" in str(exc.value) and ".csv" in str(exc.value) and "'.txt'" in str(exc.value)
    with pytest.raises(RunError, match="not found"):
        read_inputs(tmp_path / "missing.csv", (2,), "table")


def test_read_inputs_csv_table_picks_feature_columns_by_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("kind,width,height\ncat,2.5,1\ndog,4,3\n")
    got = read_inputs(path, (2,), "table", feature_names=["height", "width"])
    assert got.dtype == np.float32 and got.tolist() == [[1.0, 2.5], [3.0, 4.0]]


def test_read_inputs_csv_table_refusals(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("width,kind\n1,cat\n")
    with pytest.raises(RunError) as exc:
        read_inputs(path, (2,), "table", feature_names=["height", "width"])
    assert "height" in str(exc.value) and "lacks" in str(exc.value)
    path.write_text("1,2\n3,4\n")
    with pytest.raises(RunError, match="header row naming the columns height, width"):
        read_inputs(path, (2,), "table", feature_names=["height", "width"])
    path.write_text("height,width\n1,2\n3,x\n")
    with pytest.raises(RunError) as exc:
        read_inputs(path, (2,), "table", feature_names=["height", "width"])
    assert "row 2" in str(exc.value) and "'width'" in str(exc.value) and "'x'" in str(exc.value)
    path.write_text("height,width\n1,nan\n")
    with pytest.raises(RunError, match="finite"):
        read_inputs(path, (2,), "table", feature_names=["height", "width"])


def test_read_inputs_csv_images_with_and_without_a_header(tmp_path, rng):
    pixels = rng.integers(0, 17, (3, 64))
    path = tmp_path / "x.csv"
    np.savetxt(path, pixels, fmt="%d", delimiter=",")
    got = read_inputs(path, (1, 8, 8), "image")
    assert got.shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(got.reshape(3, 64), pixels)
    header = ",".join(f"p{i}" for i in range(64))
    np.savetxt(path, pixels, fmt="%d", delimiter=",", header=header, comments="")
    np.testing.assert_array_equal(read_inputs(path, (1, 8, 8), "image").reshape(3, 64), pixels)
    # a table without feature names (spirals) reads the same way
    np.savetxt(path, pixels[:, :2], fmt="%d", delimiter=",")
    assert read_inputs(path, (2,), "table").shape == (3, 2)


def test_read_inputs_csv_image_refusals(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(RunError) as exc:
        read_inputs(path, (1, 2, 2), "image")
    assert "row 1" in str(exc.value) and "3 values" in str(exc.value) and "4" in str(exc.value)
    path.write_text("1,2,3,4\n5,6,?,8\n")
    with pytest.raises(RunError) as exc:
        read_inputs(path, (1, 2, 2), "image")
    assert "row 2" in str(exc.value) and "column 3" in str(exc.value)
    path.write_text("\n\n")
    with pytest.raises(RunError, match="empty"):
        read_inputs(path, (1, 2, 2), "image")


# --- build_model ---


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)], ids=["digits", "mnist"])
def test_build_model_outputs_logits_per_sample(name, shape):
    bp.manual_seed(0)
    model = build_model(name, shape, 10, hidden=(24, 12), dropout=0.1)
    out = model(bp.randn(3, *shape))
    assert out.shape == (3, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mlp_layers_and_logistic_regression():
    model = build_model("mlp", (2,), 3, hidden=(), activation="tanh")
    assert [type(m).__name__ for m in model] == ["Flatten", "Linear"]
    model = build_model("mlp", (1, 8, 8), 10, hidden=(32, 16), activation="gelu", dropout=0.5)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "Linear", "GELU", "Dropout", "Linear", "GELU", "Dropout",
                     "Linear"]
    assert [m.out_features for m in model if isinstance(m, bp.nn.Linear)] == [32, 16, 10]
    assert model[1].in_features == 64


def test_cnn_layers_use_cnn_channels_and_the_pooled_size():
    model = build_model("cnn", (1, 28, 28), 10, hidden=(50,), activation="silu")
    convs = [m for m in model if isinstance(m, bp.nn.Conv2d)]
    assert tuple(c.out_channels for c in convs) == CNN_CHANNELS
    fc = [m for m in model if isinstance(m, bp.nn.Linear)]
    assert fc[0].in_features == CNN_CHANNELS[1] * 7 * 7 and fc[0].out_features == 50
    assert sum(isinstance(m, bp.nn.SiLU) for m in model) == 3
    assert not any(isinstance(m, bp.nn.Dropout) for m in model)


def test_row_lstm_stacks_one_lstm_per_hidden_size():
    model = build_model("lstm", (2, 6, 5), 4, hidden=(16, 8))
    assert isinstance(model, RowLSTM)
    assert [(m.input_size, m.hidden_size) for m in model.lstms] == [(10, 16), (16, 8)]
    assert model.fc.in_features == 8 and model(bp.zeros(3, 2, 6, 5)).shape == (3, 4)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds(activation):
    model = build_model("mlp", (4,), 2, hidden=(5,), activation=activation, init="xavier_normal")
    assert isinstance(model[2], ACTIVATIONS[activation])
    assert model(bp.ones(2, 4)).shape == (2, 2)


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_image_models_refuse_tables(name):
    with pytest.raises(UsageError) as exc:
        build_model(name, (2,), 3, dataset="spirals")
    assert str(exc.value) == (f"{name} needs image inputs (C, H, W); dataset 'spirals' has inputs "
                              "of shape (2,); use --model mlp")
    with pytest.raises(UsageError, match="at least one hidden size"):
        build_model(name, (1, 8, 8), 10, hidden=())


def test_bad_choices_are_usage_errors_listing_the_valid_ones():
    with pytest.raises(UsageError) as exc:
        build_model("resnet", (2,), 2)
    assert all(m in str(exc.value) for m in MODELS)
    with pytest.raises(UsageError) as exc:
        build_model("mlp", (2,), 2, activation="swish")
    assert "'swish'" in str(exc.value) and all(a in str(exc.value) for a in ACTIVATIONS)
    with pytest.raises(UsageError) as exc:
        build_model("mlp", (2,), 2, init="he")
    assert all(i in str(exc.value) for i in INITS)
    for dropout in (1.0, -0.1, "0.5"):
        with pytest.raises(UsageError, match=r"\[0, 1\)"):
            build_model("mlp", (2,), 2, dropout=dropout)
    for hidden in ((0,), (8, -3), (True,), ("a",), 2.5):
        with pytest.raises(UsageError, match="--hidden"):
            build_model("mlp", (2,), 2, hidden=hidden)
    with pytest.raises(UsageError, match="at least 4x4"):
        build_model("cnn", (1, 3, 8), 2)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights_other_seed_other_weights(name, init):
    def weights(seed):
        bp.manual_seed(seed)
        model = build_model(name, (1, 8, 8), 10, hidden=(12,), init=init)
        return [p.data.copy() for p in model.parameters()]

    a, b, c = weights(7), weights(7), weights(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))


def test_orthogonal_init_gives_orthogonal_rows_at_the_activation_gain():
    bp.manual_seed(0)
    model = build_model("mlp", (64,), 10, hidden=(64,), activation="tanh", init="orthogonal")
    w = model[1].weight.data.astype(np.float64)
    np.testing.assert_allclose(w @ w.T, (5 / 3) ** 2 * np.eye(64), atol=1e-5)  # tanh's gain
    out = model[3].weight.data.astype(np.float64)  # the logits layer: gain 1
    np.testing.assert_allclose(out @ out.T, np.eye(10), atol=1e-5)
    assert not model[1].bias.data.any() and not model[3].bias.data.any()
    default = build_model("mlp", (64,), 10, hidden=(64,), activation="tanh")
    wd = default[1].weight.data.astype(np.float64)
    assert np.abs(wd @ wd.T - (5 / 3) ** 2 * np.eye(64)).max() > 0.5
    assert default[1].bias.data.any()


def test_orthogonal_init_makes_each_lstm_gate_block_orthogonal():
    bp.manual_seed(0)
    model = build_model("lstm", (1, 8, 8), 10, hidden=(16,), init="orthogonal")
    w_hh = model.lstms[0].weight_hh_l0.data.astype(np.float64)  # (4H, H): gates i, f, g, o
    for k in range(4):
        block = w_hh[16 * k:16 * (k + 1)]
        np.testing.assert_allclose(block @ block.T, np.eye(16), atol=1e-5)
    assert not model.lstms[0].bias_ih_l0.data.any()


@pytest.mark.parametrize("init, std, max_over_std", [
    ("default", 1 / (784 ** 0.5 * 3 ** 0.5), 3 ** 0.5),        # U(±1/√fan_in)
    ("xavier_uniform", 2 ** 0.5 * (2 / (784 + 256)) ** 0.5, 3 ** 0.5),
    ("xavier_normal", 2 ** 0.5 * (2 / (784 + 256)) ** 0.5, None),
    ("kaiming_uniform", 2 ** 0.5 / 784 ** 0.5, 3 ** 0.5),
    ("kaiming_normal", 2 ** 0.5 / 784 ** 0.5, None),
])
def test_each_init_gives_its_weight_statistics(init, std, max_over_std):
    bp.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10, hidden=(256,), activation="relu", init=init)
    w = model[1].weight.data.astype(np.float64)  # (256, 784), followed by relu: gain √2
    assert w.std() == pytest.approx(std, rel=0.01)
    if max_over_std is None:  # normal: tails well past a uniform's edge
        assert np.abs(w).max() > 4 * std
    else:
        assert np.abs(w).max() == pytest.approx(max_over_std * std, rel=0.01)


def test_kaiming_normal_on_the_cnn_uses_the_conv_fan_in():
    bp.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10, hidden=(32,), init="kaiming_normal")
    conv2 = [m for m in model if isinstance(m, bp.nn.Conv2d)][1]
    fan_in = CNN_CHANNELS[0] * 9
    assert conv2.weight.data.std() == pytest.approx(2 ** 0.5 / fan_in ** 0.5, rel=0.05)
    assert not conv2.bias.data.any()


def test_mlp_overfits_32_digits_with_a_few_adam_steps(digits):
    bp.manual_seed(0)
    model = build_model("mlp", digits.input_shape, 10, hidden=(64,))
    x, y = bp.from_numpy(digits.train.data[:32]), bp.from_numpy(digits.train.targets[:32])
    opt = bp.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = bp.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5


# --- check_input ---


def test_check_input_accepts_the_model_shapes_and_names_them_when_refusing():
    check_input("mlp", (1, 8, 8), (5, 1, 8, 8))
    check_input("mlp", (1, 8, 8), (5, 64))
    check_input("cnn", (1, 8, 8), (5, 1, 8, 8))
    check_input("mlp", (2,), (3, 2))
    with pytest.raises(RunError) as exc:
        check_input("mlp", (1, 8, 8), (5, 3))
    assert str(exc.value) == ("mlp model expects inputs of shape (N, 1, 8, 8) (or (N, 64)); "
                              "got (5, 3)")
    with pytest.raises(RunError, match=r"\(N, 1, 8, 8\); got \(5, 64\)"):
        check_input("lstm", (1, 8, 8), (5, 64))


# --- import hygiene ---


def test_backprop_does_not_import_these_and_they_do_not_import_sklearn():
    code = (
        "import sys, backprop; assert 'backprop.cli.datasets' not in sys.modules; "
        "assert 'backprop.cli.models' not in sys.modules; "
        "import backprop.cli.datasets, backprop.cli.models; print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
