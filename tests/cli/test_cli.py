"""``backprop train / evaluate / predict`` end to end: the run directory, determinism, resume,
and one readable error line (with the right exit status) for every user mistake."""

import json
import os

import numpy as np
import pytest

from backprop.cli import main
from backprop.cli.main import CHECKPOINT, FILES
from backprop.cli.rundir import LOCK
from backprop.data.datasets import load_digits
from backprop.train import load_checkpoint
from tests.cli.helpers import cli, history_rows, kill_when_paused, one_error, run, weights
from tests.data.test_idx import MNIST_DIR

HAS_MNIST = (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file() or \
    (MNIST_DIR / "train-images-idx3-ubyte").is_file()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A short digits MLP run shared by the evaluate/predict tests."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    status = main(["train", "--epochs", "4", "--hidden", "64", "--out", str(out)])
    assert status == 0
    return out


# --- train ---
def test_train_xor_writes_a_complete_run_directory(tmp_path, capsys):
    out = tmp_path / "xor"
    status, stdout, err = run(capsys, "train", "--dataset", "xor", "--out", out)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, LOCK])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == 1.0 and metrics["test_samples"] == 4
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy 100.00% (4/4)"), last
    rows = history_rows(out / "history.csv")
    assert len(rows) == metrics["epochs"] == 100  # the xor recipe
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) / 10
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = (out / "config.toml").read_text()
    assert 'dataset = "xor"' in config and "epochs = 100" in config


def test_train_digits_reaches_accuracy_and_evaluate_agrees(digits_run, capsys):
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9
    status, stdout, _ = run(capsys, "evaluate", digits_run)
    assert status == 0
    assert f"accuracy {100 * metrics['test_accuracy']:.2f}%" in stdout
    assert f"loss {metrics['test_loss']:.4f}" in stdout


def test_predict_npy_and_csv_classify_raw_test_images(digits_run, tmp_path, capsys):
    test = load_digits(train=False)
    x, y = test.data[:20], test.targets[:20]
    np.save(tmp_path / "x.npy", x)
    status, stdout, err = run(capsys, "predict", digits_run, tmp_path / "x.npy")
    assert status == 0, err
    lines = stdout.strip().splitlines()
    assert lines[0] == "row,class,probability" and len(lines) == 21
    predicted = np.array([int(line.split(",")[1]) for line in lines[1:]])
    probs = np.array([float(line.split(",")[2]) for line in lines[1:]])
    assert (predicted == y).mean() >= 0.8
    assert ((probs > 0.1) & (probs <= 1.0)).all()
    np.savetxt(tmp_path / "x.csv", x.reshape(20, -1), delimiter=",")
    status, stdout_csv, _ = run(capsys, "predict", digits_run, tmp_path / "x.csv")
    assert status == 0 and stdout_csv == stdout


def test_same_seed_same_weights_bit_for_bit(tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        status, _, err = run(capsys, "train", "--epochs", "2", "--hidden", "32", "--dropout",
                             "0.2", "--seed", "7", "--out", tmp_path / name)
        assert status == 0, err
        runs.append(weights(tmp_path / name))
    assert runs[0].keys() == runs[1].keys()
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    status, _, _ = run(capsys, "train", "--epochs", "2", "--hidden", "32", "--dropout", "0.2",
                       "--seed", "8", "--out", tmp_path / "c")
    other = weights(tmp_path / "c")
    assert not all(np.array_equal(runs[0][k], other[k]) for k in other)


def test_config_file_sets_values_and_flags_override_it(tmp_path, capsys):
    conf = tmp_path / "run.toml"
    conf.write_text('dataset = "spirals"\nepochs = 3\nhidden = [16, 8]\nlr = 0.02\n')
    status, stdout, err = run(capsys, "train", "--config", conf, "--epochs", "2",
                              "--out", tmp_path / "r")
    assert status == 0, err
    saved = (tmp_path / "r" / "config.toml").read_text()
    assert "epochs = 2" in saved and "hidden = [\n    16,\n    8,\n]" in saved.replace(
        "[16, 8]", "[\n    16,\n    8,\n]") and "lr = 0.02" in saved
    assert len(history_rows(tmp_path / "r" / "history.csv")) == 2


def test_patience_stops_early_and_says_which_epoch_was_kept(tmp_path, capsys):
    status, stdout, err = run(capsys, "train", "--val-split", "0.1", "--patience", "2",
                              "--epochs", "60", "--out", tmp_path / "r")
    assert status == 0, err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["epochs"] < 60
    line = next(x for x in stdout.splitlines() if x.startswith("stopped early"))
    best = int(line.split("after epoch ")[1].split()[0])
    rows = history_rows(tmp_path / "r" / "history.csv")
    val = [float(r["val_loss"]) for r in rows]
    assert best == 1 + val.index(min(val)) and best <= metrics["epochs"] - 2


def test_batch_size_full_is_one_step_per_epoch(tmp_path, capsys):
    status, _, err = run(capsys, "train", "--dataset", "spirals", "--batch-size", "full",
                         "--epochs", "3", "--out", tmp_path / "r")
    assert status == 0, err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["steps"] == 3


@pytest.mark.parametrize("model", ["cnn", "lstm"])
def test_cnn_and_lstm_train_on_digits(model, tmp_path, capsys):
    status, _, err = run(capsys, "train", "--model", model, "--epochs", "2", "--hidden", "32",
                         "--out", tmp_path / model)
    assert status == 0, err
    assert json.loads((tmp_path / model / "metrics.json").read_text())["test_accuracy"] > 0.5


def test_csv_dataset_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    label = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    path = tmp_path / "t.csv"
    with open(path, "w") as f:
        f.write("a,b,c,answer\n")
        for row, lab in zip(x, label):
            f.write(f"{row[0]},{row[1]},{row[2]},{lab}\n")
    out = tmp_path / "r"
    status, stdout, err = run(capsys, "train", "--dataset", "csv", "--data-dir", path,
                              "--target", "answer", "--epochs", "40", "--lr", "0.01",
                              "--hidden", "16", "--out", out)
    assert status == 0, err
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] >= 0.9
    status, stdout, err = run(capsys, "predict", out, path)  # the target column is ignored
    assert status == 0, err
    got = [line.split(",")[1] for line in stdout.strip().splitlines()[1:]]
    assert len(got) == 200 and np.mean(np.array(got) == label) >= 0.9


@pytest.mark.skipif(not HAS_MNIST, reason=f"MNIST files not found in {MNIST_DIR} (set "
                                          "BACKPROP_MNIST_DIR)")
@pytest.mark.slow
def test_mnist_mlp_one_epoch(tmp_path, capsys):
    status, stdout, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", MNIST_DIR,
                              "--epochs", "1", "--hidden", "128", "--out", tmp_path / "m")
    assert status == 0, err
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["test_accuracy"] >= 0.92


# --- resume ---
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    """A real process killed with SIGKILL mid-run, resumed from its last checkpoint, ends with
    exactly the weights and history of a run that was never interrupted."""
    args = ["--epochs", "3", "--hidden", "32", "--dropout", "0.2", "--batch-size", "4",
            "--checkpoint-every", "37", "--seed", "3"]
    ref = tmp_path / "ref"
    done = cli("train", *args, "--out", ref)
    assert done.returncode == 0, done.stderr
    killed = tmp_path / "killed"
    # first right after the checkpoint of step 37; then, resumed from it, at step 100: 26
    # steps after the checkpoint of step 74, which the next resume must redo
    kill_when_paused([*args, "--out", killed], 37)
    assert load_checkpoint(killed / CHECKPOINT)["trainer"]["step"] == 37
    kill_when_paused([*args, "--resume", "--out", killed], 100)
    assert load_checkpoint(killed / CHECKPOINT)["trainer"]["step"] == 74
    assert not (killed / "metrics.json").exists()
    done = cli("train", "--resume", "--out", killed)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    a, b = weights(ref), weights(killed)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert history_rows(ref / "history.csv") == history_rows(killed / "history.csv")
    ref_metrics = json.loads((ref / "metrics.json").read_text())
    got_metrics = json.loads((killed / "metrics.json").read_text())
    assert got_metrics["test_accuracy"] == ref_metrics["test_accuracy"]
    assert got_metrics["steps"] == ref_metrics["steps"]


def test_resume_drops_history_rows_written_after_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "r"
    common = ["--dataset", "spirals", "--hidden", "16", "--out", out]
    assert run(capsys, "train", "--epochs", "2", *common)[0] == 0
    with open(out / "history.csv", "a") as f:
        f.write("3,9.9,0.1,0.001,0.5\n")  # a row the checkpoint never saw
    status, _, err = run(capsys, "train", "--resume", "--epochs", "4", "--out", out)
    assert status == 0, err
    rows = history_rows(out / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[2]["loss"] != "9.9"


def test_resume_with_extended_epochs_equals_a_longer_run(tmp_path, capsys):
    common = ["--dataset", "spirals", "--hidden", "16", "--dropout", "0.1"]
    assert run(capsys, "train", "--epochs", "5", *common, "--out", tmp_path / "long")[0] == 0
    assert run(capsys, "train", "--epochs", "2", *common, "--out", tmp_path / "short")[0] == 0
    assert run(capsys, "train", "--resume", "--epochs", "5", "--out", tmp_path / "short")[0] == 0
    a, b = weights(tmp_path / "long"), weights(tmp_path / "short")
    assert all(np.array_equal(a[k], b[k]) for k in a)


# --- bad input: one line, the right exit status, no traceback ---
@pytest.mark.parametrize("argv, words", [
    (["train", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["train", "--model", "transformer"], ["invalid choice", "mlp", "cnn", "lstm"]),
    (["train", "--dataset", "imagenet"], ["invalid choice", "digits", "fashion-mnist", "csv"]),
    (["train", "--optimizer", "lion"], ["invalid choice", "sgd", "adam", "nadam"]),
    (["train", "--activation", "swish"], ["invalid choice", "relu"]),
    (["train", "--epochs", "0"], ["--epochs", "at least 1"]),
    (["train", "--lr", "-1"], ["--lr", "> 0"]),
    (["train", "--hidden", "64,x"], ["--hidden", "256,128"]),
    (["train", "--batch-size", "half"], ["--batch-size", "'full'"]),
    (["frobnicate"], ["invalid choice", "train", "evaluate", "predict"]),
])
def test_bad_flags_exit_2_with_the_valid_choices(argv, words, capsys):
    status, _, err = run(capsys, *argv)
    one_error(status, err, 2, *words)
    assert err.startswith("usage:")


@pytest.mark.parametrize("argv, status, words", [
    (["train", "--dataset", "mnist"], 2, ["--data-dir", "train-images-idx3-ubyte"]),
    (["train", "--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], 1,
     ["/nonexistent/mnist", "train-images-idx3-ubyte"]),
    (["train", "--dataset", "csv"], 2, ["--data-dir"]),
    (["train", "--model", "cnn", "--dataset", "xor"], 2, ["cnn", "image", "--model mlp"]),
    (["train", "--model", "lstm", "--dataset", "spirals"], 2, ["lstm", "image"]),
    (["train", "--momentum", "0.5", "--optimizer", "adam"], 2, ["--momentum", "sgd"]),
    (["train", "--target", "y"], 2, ["target"]),
])
def test_bad_combinations_are_refused(argv, status, words, tmp_path, capsys):
    got, _, err = run(capsys, *argv, "--out", tmp_path / "r")
    one_error(got, err, status, *words)
    assert not (tmp_path / "r" / CHECKPOINT).exists()


def test_config_unknown_key_lists_the_valid_keys(tmp_path, capsys):
    conf = tmp_path / "c.toml"
    conf.write_text("epochs = 2\nlearning_rate = 0.1\n")
    status, _, err = run(capsys, "train", "--config", conf)
    one_error(status, err, 2, "learning_rate", "valid keys", "lr", "batch_size")
    conf.write_text("epochs = 'many'\n")
    status, _, err = run(capsys, "train", "--config", conf)
    one_error(status, err, 2, "epochs", "integer")
    conf.write_text("epochs = \n")
    status, _, err = run(capsys, "train", "--config", conf)
    one_error(status, err, 2, "not valid TOML")
    status, _, err = run(capsys, "train", "--config", tmp_path / "missing.toml")
    one_error(status, err, 2, "no such file")


def test_existing_run_directory_is_refused_without_resume(digits_run, capsys):
    before = weights(digits_run)
    status, _, err = run(capsys, "train", "--out", digits_run)
    one_error(status, err, 2, str(digits_run), "--resume")
    after = weights(digits_run)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_resume_without_checkpoint_says_so(tmp_path, capsys):
    status, _, err = run(capsys, "train", "--resume", "--out", tmp_path / "nothing")
    one_error(status, err, 1, "no checkpoint", "nothing")
    status, _, err = run(capsys, "train", "--resume")
    one_error(status, err, 2, "--out")


def test_resume_refuses_changed_settings(digits_run, capsys):
    status, _, err = run(capsys, "train", "--resume", "--lr", "0.5", "--out", digits_run)
    one_error(status, err, 2, "--lr", "0.5", "saved")


def test_corrupted_checkpoint_is_refused_everywhere(tmp_path, capsys):
    out = tmp_path / "r"
    assert run(capsys, "train", "--dataset", "xor", "--epochs", "5", "--out", out)[0] == 0
    data = bytearray((out / CHECKPOINT).read_bytes())
    data[-10] ^= 0xFF  # a byte of the tensors
    (out / CHECKPOINT).write_bytes(bytes(data))
    for argv in (["evaluate", out], ["train", "--resume", "--out", out]):
        status, _, err = run(capsys, *argv)
        one_error(status, err, 1, "corrupted", "not loaded")
    (out / CHECKPOINT).write_bytes(bytes(data[:100]))  # truncated
    status, _, err = run(capsys, "evaluate", out)
    one_error(status, err, 1, "truncated")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "r"
    status, stdout, err = run(capsys, "train", "--dataset", "spirals", "--optimizer", "sgd",
                              "--lr", "1e12", "--batch-size", "full", "--out", out)
    one_error(status, err, 1, "loss became", "epoch", "step", "learning rate")
    assert not (out / "metrics.json").exists()
    if (out / CHECKPOINT).exists():  # epochs before the failure were saved, and are loadable
        state = load_checkpoint(out / CHECKPOINT)
        assert all(np.isfinite(v.data).all() for v in state["model"].values())


def test_predict_refuses_inputs_of_the_wrong_shape(digits_run, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), dtype=np.float32))
    status, _, err = run(capsys, "predict", digits_run, tmp_path / "bad.npy")
    one_error(status, err, 1, "(3, 5)", "64")
    status, _, err = run(capsys, "predict", digits_run, tmp_path / "missing.npy")
    one_error(status, err, 1, "missing.npy")


def test_evaluate_on_another_dataset_checks_shapes_and_labels(tmp_path, capsys, digits_run):
    status, _, err = run(capsys, "evaluate", digits_run, "--dataset", "xor")
    one_error(status, err, 1, "(N, 1, 8, 8)")
    xor_run = tmp_path / "xor"
    assert run(capsys, "train", "--dataset", "xor", "--epochs", "3", "--out", xor_run)[0] == 0
    status, _, err = run(capsys, "evaluate", xor_run, "--dataset", "spirals")
    one_error(status, err, 1, "labels '2'", "not among", "2 classes")
    status, _, err = run(capsys, "evaluate", tmp_path / "nope")
    one_error(status, err, 1, "no run directory")


def test_the_console_command_prints_no_traceback(tmp_path):
    done = cli("train", "--dataset", "mnist", "--data-dir", tmp_path / "empty")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("backprop train: error: ")
    assert len(done.stderr.strip().splitlines()) == 1
    done = cli()
    assert done.returncode == 2 and "train" in done.stderr


def test_demo_still_trains_xor_with_bare_tensors(capsys):
    status, stdout, _ = run(capsys, "demo", "--epochs", "300")
    assert status == 0
    assert "1 xor 0" in stdout


def test_runs_go_under_runs_by_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, stdout, err = run(capsys, "train", "--dataset", "xor", "--epochs", "2")
    assert status == 0, err
    made = list((tmp_path / "runs").iterdir())
    assert len(made) == 1 and made[0].name.startswith("xor-mlp-")
    assert os.path.join("runs", made[0].name) in stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_no_compile_trains_the_same_run(model, tmp_path, capsys):
    """Steps are compiled by default; --no-compile runs them eagerly with identical results."""
    runs = {}
    for flag in ([], ["--no-compile"]):
        out = tmp_path / (flag[0] if flag else "compiled")
        status, _, err = run(capsys, "train", "--model", model, "--epochs", "2", "--hidden",
                             "16", "--dropout", "0.2", "--out", out, *flag)
        assert status == 0, err
        assert "CompileWarning" not in err
        runs[bool(flag)] = out
    assert history_rows(runs[True] / "history.csv") == history_rows(runs[False] / "history.csv")
    a, b = weights(runs[True]), weights(runs[False])
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
