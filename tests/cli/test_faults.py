"""``backprop train / evaluate / predict`` under faults (issue 16): one process per run
directory, exact resume after every kind of stop, tables read by name, and one ``error:`` line
for every failure, whether the user's, the data's or the machine's.

Real processes are signalled only at points the run announces (``tests.cli.helpers.Paused``);
a full disk and permission errors are injected (CI runs as root, which may write anything),
and a real full tmpfs is tried where the machine lets a test mount one.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop.serialization as fmt
import backprop.train.checkpoint as ckpt_mod
from backprop.cli.main import CHECKPOINT
from backprop.cli.rundir import LOCK, RunDirectory
from backprop.train import load_checkpoint, save_checkpoint
from tests.cli.helpers import (
    Paused,
    cli,
    history_rows,
    kill_when_paused,
    one_error,
    paused_at_step,
    run,
    weights,
)

# spirals: 240 training rows, batch 32 -> 8 steps per epoch
SPIRALS = ["--dataset", "spirals", "--hidden", "16", "--dropout", "0.1"]


def _table(path: Path, n=200, seed=0, labels=("no", "yes"), header="a,b,c,answer",
           bom=False, only=None) -> Path:
    """A CSV whose label is "yes" exactly when a > 0 (so a trained model gets it right)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    if only is not None:  # rows of one class only
        x[:, 0] = np.abs(x[:, 0]) * (1 if only == labels[1] else -1)
    lines = [header] + [f"{a},{b},{c},{labels[int(a > 0)]}" for a, b, c in x]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A csv run on ``_table`` (classes 'no', 'yes'; features a, b, c)."""
    tmp = tmp_path_factory.mktemp("table")
    from backprop.cli import main
    out = tmp / "run"
    assert main(["train", "--dataset", "csv", "--data-dir", str(_table(tmp / "t.csv")),
                 "--target", "answer", "--epochs", "15", "--lr", "0.02", "--hidden", "16",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    from backprop.cli import main
    out = tmp_path_factory.mktemp("xor") / "run"
    assert main(["train", "--dataset", "xor", "--epochs", "3", "--out", str(out)]) == 0
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- 1. one process per run directory ---------------------------------------------------------
def test_a_second_run_on_a_directory_in_use_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "r"
    args = [*SPIRALS, "--epochs", "2", "--out", out]
    holder = paused_at_step(args, 3)  # a real process holding the directory
    try:
        for argv in (["train", *args], ["train", "--resume", "--out", out]):
            done = cli(*argv)
            one_error(done.returncode, done.stderr, 1, str(out), f"PID {holder.pid}", "in use")
    finally:
        status, err = holder.finish(signal.SIGCONT)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and "epochs = 2" in (out / "config.toml").read_text()
    RunDirectory.claim(out, create=False).release()  # the lock went with the process


# --- 2. what a resumed run was asked to do is in its checkpoint -------------------------------
def test_an_extended_run_survives_a_kill_and_keeps_its_new_epoch_count(tmp_path, capsys):
    common = [*SPIRALS, "--checkpoint-every", "4"]
    ref, ext = tmp_path / "ref", tmp_path / "ext"
    assert run(capsys, "train", "--epochs", "4", *common, "--out", ref)[0] == 0
    assert run(capsys, "train", "--epochs", "2", *common, "--out", ext)[0] == 0
    # extended to 4 epochs, killed in epoch 3 right after the checkpoint of step 20
    kill_when_paused(["--resume", "--epochs", "4", "--out", ext], 21)
    state = load_checkpoint(ext / CHECKPOINT)
    assert state["trainer"]["step"] == 20 and state["config"]["settings"]["epochs"] == 4
    status, _, err = run(capsys, "train", "--resume", "--out", ext)  # no --epochs this time
    assert status == 0, err
    a, b = weights(ref), weights(ext)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert json.loads((ext / "metrics.json").read_text())["epochs"] == 4
    assert "epochs = 4" in (ext / "config.toml").read_text()
    status, _, err = run(capsys, "train", "--resume", "--epochs", "3", "--out", ext)
    one_error(status, err, 2, "--epochs 3", "already trained 4 epochs")


# --- 3. columns and classes by name -------------------------------------------------------------
def test_predict_refuses_a_feature_column_named_twice(table_run, tmp_path, capsys):
    rows = _table(tmp_path / "in.csv", n=5, seed=1).read_text().splitlines()
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join(["a,b,c,a"] + [r.rsplit(",", 1)[0] + ",0" for r in rows[1:]]))
    status, _, err = run(capsys, "predict", table_run, dup)
    one_error(status, err, 1, "'a'", "2 times", "columns 1, 4")


def test_predict_reads_a_table_with_a_byte_order_mark(table_run, tmp_path, capsys):
    plain = _table(tmp_path / "plain.csv", n=20, seed=2)
    marked = _table(tmp_path / "bom.csv", n=20, seed=2, bom=True)
    status, with_bom, err = run(capsys, "predict", table_run, marked)
    assert status == 0, err
    assert with_bom == run(capsys, "predict", table_run, plain)[1]


def test_training_reads_a_target_column_behind_a_byte_order_mark(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("\ufeffanswer,a,b\n" + "".join(f"{'yes' if i % 2 else 'no'},{i % 2},{i}\n"
                                                   for i in range(40)), encoding="utf-8")
    status, _, err = run(capsys, "train", "--dataset", "csv", "--data-dir", path, "--target",
                         "answer", "--epochs", "1", "--hidden", "4", "--out", tmp_path / "r")
    assert status == 0, err


def test_evaluate_maps_another_tables_labels_by_name(table_run, tmp_path, capsys):
    # only 'yes' rows: sorted alone, 'yes' is class 0 there, but class 1 in the run
    yes = _table(tmp_path / "yes.csv", n=100, seed=3, only="yes")
    status, out, err = run(capsys, "evaluate", table_run, "--dataset", "csv", "--data-dir", yes,
                           "--target", "answer")
    assert status == 0, err
    accuracy = float(out.split("accuracy ")[1].split("%")[0])
    assert accuracy >= 90, out


def test_evaluate_reports_a_label_the_run_never_saw(table_run, tmp_path, capsys):
    other = _table(tmp_path / "maybe.csv", n=100, seed=4, labels=("maybe", "yes"))
    status, _, err = run(capsys, "evaluate", table_run, "--dataset", "csv", "--data-dir", other,
                         "--target", "answer")
    one_error(status, err, 1, "'maybe'", "not among", "'no', 'yes'")


# --- 4. a run that ends before its first checkpoint --------------------------------------------
def test_a_run_diverging_in_epoch_1_claims_no_checkpoint_and_is_one_line(tmp_path):
    out = tmp_path / "r"
    done = cli("train", "--dataset", "spirals", "--optimizer", "sgd", "--lr", "1e12",
               "--batch-size", "8", "--out", out)
    one_error(done.returncode, done.stderr, 1, "loss became", "epoch 1,", "no checkpoint")
    assert "intact" not in done.stderr
    # NumPy's overflow warnings would come first: the error is the only line
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (out / CHECKPOINT).exists()
    done = cli("train", "--dataset", "spirals", "--epochs", "1", "--out", out)
    assert done.returncode == 0, done.stderr
    assert f"reusing {out}" in done.stdout and (out / CHECKPOINT).exists()


def test_a_run_killed_before_its_first_checkpoint_is_restarted_not_resumed(tmp_path, capsys):
    out = tmp_path / "r"
    kill_when_paused([*SPIRALS, "--epochs", "2", "--out", out], 2)
    assert (out / "config.toml").exists() and not (out / CHECKPOINT).exists()
    status, _, err = run(capsys, "train", "--resume", "--out", out)
    one_error(status, err, 1, "no checkpoint", "without --resume")
    status, stdout, err = run(capsys, "train", *SPIRALS, "--epochs", "2", "--out", out)
    assert status == 0, err
    assert "holds no checkpoint" in stdout


def test_a_directory_of_other_files_is_not_taken_for_a_run(tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    status, _, err = run(capsys, "train", "--dataset", "xor", "--epochs", "1", "--out", out)
    one_error(status, err, 2, "not a run directory", "notes.txt")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# --- 5. one error line for what the machine refuses ----------------------------------------------
def _failing_writes(monkeypatch, name: str, allowed: int) -> None:
    """Every atomic write of the file ``name`` after the first ``allowed`` fails as on a full
    disk: opening its temporary file raises OSError(ENOSPC)."""
    real_open, seen = open, []

    def fake_open(file, mode="r", *args, **kwargs):
        if "w" in mode and Path(file).name.startswith(f".{name}.tmp-"):
            seen.append(file)
            if len(seen) > allowed:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)

    writer = sys.modules[ckpt_mod.atomic_write.__module__]  # wherever atomic_write lives
    monkeypatch.setattr(writer, "open", fake_open, raising=False)


@pytest.mark.parametrize("name, allowed, epoch", [
    ("config.toml", 0, None), ("checkpoint.safetensors", 1, 1), ("metrics.json", 0, 2)])
def test_a_full_disk_is_one_line_and_the_last_checkpoint_survives(name, allowed, epoch,
                                                                   tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    _failing_writes(monkeypatch, name, allowed)
    status, _, err = run(capsys, "train", *SPIRALS, "--epochs", "2", "--out", out)
    one_error(status, err, 1, "No space left on device", "errno 28", str(out / name))
    monkeypatch.undo()
    if epoch is None:  # nothing was written: the directory it made is gone again
        assert not out.exists()
        return
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    assert "intact" in err and load_checkpoint(out / CHECKPOINT)["trainer"]["epoch"] == epoch
    status, _, err = run(capsys, "train", "--resume", "--out", out)
    assert status == 0, err


def test_a_full_tmpfs_is_one_line(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the fault-injected full disk covers this")
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the fault-injected "
                    "full disk covers this")
    try:
        # digits, hidden 256: a checkpoint of ~230 kB (weights and Adam's moments) in 128 kB
        done = cli("train", "--epochs", "1", "--hidden", "256", "--out", mnt / "run")
        one_error(done.returncode, done.stderr, 1, "No space left on device", CHECKPOINT)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert sorted(p.name for p in (mnt / "run").iterdir()) == [LOCK, "config.toml"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _deny(monkeypatch, under: Path, method: str) -> None:
    """``Path.<method>`` raises PermissionError for paths under ``under``, as for a user who
    may not read (or search, or write) there."""
    real = getattr(Path, method)

    def denied(self, *args, **kwargs):
        if self == under or under in self.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, method, denied)


@pytest.mark.parametrize("dataset", ["mnist", "csv"])
def test_an_unreadable_data_dir_is_one_line(dataset, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    path = data if dataset == "mnist" else _table(data / "t.csv")
    _deny(monkeypatch, data, "stat")
    extra = ["--target", "answer"] if dataset == "csv" else []
    status, _, err = run(capsys, "train", "--dataset", dataset, "--data-dir", path, *extra,
                         "--out", tmp_path / "r")
    one_error(status, err, 1, str(data), "Permission denied")


def test_out_under_a_read_only_directory_or_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    status, _, err = run(capsys, "train", "--dataset", "xor", "--out", afile / "run")
    one_error(status, err, 1, "cannot create", "Not a directory")
    status, _, err = run(capsys, "train", "--dataset", "xor", "--out", afile)
    one_error(status, err, 2, str(afile), "not a directory")
    _deny(monkeypatch, tmp_path / "ro", "mkdir")
    status, _, err = run(capsys, "train", "--dataset", "xor", "--out", tmp_path / "ro" / "run")
    one_error(status, err, 1, "cannot create", "Permission denied")


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    conf = tmp_path / "c.toml"
    conf.write_bytes(b"epochs = 2\n# caf\xe9\n")
    status, _, err = run(capsys, "train", "--config", conf)
    one_error(status, err, 2, "not UTF-8", "0xe9")


def test_an_undecodable_out_is_one_line(tmp_path):
    out = os.fsencode(tmp_path) + b"/run-\xff"
    done = subprocess.run([sys.executable, "-m", "backprop", "train", "--dataset", "xor",
                           "--epochs", "1", "--out", out], capture_output=True, timeout=120)
    err = done.stderr.decode("utf-8", "backslashreplace")
    one_error(done.returncode, err, 2, "--out", "not valid UTF-8")
    assert not os.path.exists(out)


def test_idx_files_holding_no_images_are_one_line(tmp_path, capsys):
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(
            (2051).to_bytes(4, "big") + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(
            (2049).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    status, _, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", tmp_path,
                         "--out", tmp_path / "r")
    one_error(status, err, 1, "0 images")


def test_an_absurd_hidden_size_is_refused_before_allocating(tmp_path, capsys):
    status, _, err = run(capsys, "train", "--hidden", "10000000000", "--out", tmp_path / "r")
    one_error(status, err, 2, "750,000,000,010 parameters", "TiB of memory", "available")
    assert not (tmp_path / "r").exists()


def test_an_npy_header_claiming_1e11_rows_is_one_line(xor_run, tmp_path, capsys):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (10**11, 2)})
        f.write(np.zeros(8, np.float32).tobytes())
    status, _, err = run(capsys, "predict", xor_run, path)
    one_error(status, err, 1, "(100000000000, 2)", "800,000,000,000 bytes", "32 bytes")


@pytest.mark.parametrize("where, words", [
    ("backprop.cli.datasets.load_splits", ["while loading the data", "no checkpoint"]),
    ("backprop.train.Trainer.evaluate", ["while testing", "training finished (2 epochs",
                                         "--resume"]),
    ("backprop.train.History.plot", ["while drawing curves.png", "run is complete"]),
])
def test_ctrl_c_outside_the_training_loop_is_one_line(where, words, tmp_path, capsys,
                                                      monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupt)
    out = tmp_path / "r"
    status, _, err = run(capsys, "train", *SPIRALS, "--epochs", "2", "--out", out)
    one_error(status, err, 130, "SIGINT", *words)
    assert "epoch 3" not in err


def test_ctrl_c_while_the_command_loads_is_one_line(capsys, monkeypatch):
    import builtins

    from backprop.__main__ import main as entry_point

    real_import = builtins.__import__

    def interrupted_import(name, *args, **kwargs):
        if name == "backprop.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    status = entry_point(["train"])
    monkeypatch.undo()
    one_error(status, capsys.readouterr().err, 130, "SIGINT", "while starting")


# --- 6. values float32 cannot hold ----------------------------------------------------------------
def test_values_beyond_float32_are_refused_at_load(xor_run, tmp_path, capsys):
    x = np.zeros((4, 2))
    x[2, 1] = 1e300
    np.save(tmp_path / "x.npy", x)
    status, _, err = run(capsys, "predict", xor_run, tmp_path / "x.npy")
    one_error(status, err, 1, "x.npy", "input 3, value 2", "float32")
    table = _table(tmp_path / "t.csv")
    lines = table.read_text().splitlines()
    lines[5] = "1e300," + lines[5].split(",", 1)[1]
    table.write_text("\n".join(lines) + "\n")
    status, _, err = run(capsys, "train", "--dataset", "csv", "--data-dir", table, "--target",
                         "answer", "--out", tmp_path / "r")
    one_error(status, err, 1, "row 5 (line 6)", "column 'a'", "float32")


def test_a_csv_value_beyond_float32_in_predict_is_the_only_line(table_run, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n4,1e300,6\n")
    done = cli("predict", table_run, path)
    one_error(done.returncode, done.stderr, 1, "input 2, value 2", "float32")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# --- 7. a run directory someone sent you
def test_a_checkpoint_that_is_a_fifo_is_refused_without_hanging(xor_run, tmp_path):
    sent = _copy_run(xor_run, tmp_path / "sent")
    (sent / CHECKPOINT).unlink()
    os.mkfifo(sent / CHECKPOINT)
    done = cli("evaluate", sent, timeout=60)
    one_error(done.returncode, done.stderr, 1, "not a regular file", "FIFO")


def test_a_checkpoint_linked_out_of_its_directory_is_refused(xor_run, tmp_path, capsys):
    sent = _copy_run(xor_run, tmp_path / "sent")
    (sent / CHECKPOINT).unlink()
    (sent / CHECKPOINT).symlink_to(xor_run / CHECKPOINT)
    for argv in (["evaluate", sent], ["train", "--resume", "--out", sent]):
        status, _, err = run(capsys, *argv)
        one_error(status, err, 1, "symbolic link out of the run directory")


MUTATIONS = {
    "no trainer part": (lambda s: s.pop("trainer"), True),
    "int32 weights": (lambda s: s["model"].update(
        {k: v.data.astype(np.int32) for k, v in s["model"].items()}), True),
    "input shape unlike its statistics": (
        lambda s: s["config"]["data"].update(input_shape=[10**12]), True),
    "absurd image shape": (lambda s: s["config"]["data"].update(
        input_shape=[1, 10**6, 10**6], kind="image", mean=np.zeros((), np.float32),
        std=np.ones((), np.float32)), True),  # consistent, but a model of 1e12 inputs
    "bad setting": (lambda s: s["config"]["settings"].update(lr="fast"), True),
    "NaN weights": (lambda s: s["model"].update(
        {k: np.full(v.shape, np.nan, np.float32) for k, v in s["model"].items()}), True),
    "optimizer groups": (lambda s: s["optimizer"].update(param_groups=[]), False),
    "rng state": (lambda s: s["rng"].update({"global": {"bit_generator": "PCG64",
                                                        "state": "x"}}), False),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_rehashed_checkpoint_with_inconsistent_contents_is_refused(mutation, xor_run,
                                                                     tmp_path, capsys):
    sent = _copy_run(xor_run, tmp_path / "sent")
    state = load_checkpoint(sent / CHECKPOINT)
    change, evaluate_refuses = MUTATIONS[mutation]
    change(state)
    save_checkpoint(sent / CHECKPOINT, state)  # a valid SHA-256 over the changed contents
    status, _, err = run(capsys, "train", "--resume", "--epochs", "4", "--out", sent)
    one_error(status, err, 1, "corrupt", "not loaded")
    status, _, err = run(capsys, "evaluate", sent)
    if evaluate_refuses:  # evaluate reads only the settings, the data facts and the weights
        one_error(status, err, 1, "corrupt", "not loaded")
    else:
        assert status == 0, err


def test_a_checkpoint_nested_too_deeply_is_one_line(xor_run, tmp_path, capsys):
    st = pytest.importorskip("safetensors.numpy")
    sent = _copy_run(xor_run, tmp_path / "sent")
    state_json = "[" * 100_000 + "]" * 100_000
    meta = {"format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION,
            "state": state_json, "sha256": fmt._digest(state_json, {})}
    (sent / CHECKPOINT).write_bytes(st.save({}, metadata=meta))
    status, _, err = run(capsys, "evaluate", sent)
    one_error(status, err, 1, "nested too deeply")


# --- 8. a relative --data-dir
def test_a_relative_data_dir_works_from_any_directory(tmp_path, capsys, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    table = _table(tmp_path / "a" / "t.csv")
    monkeypatch.chdir(tmp_path / "a")
    status, _, err = run(capsys, "train", "--dataset", "csv", "--data-dir", "t.csv", "--target",
                         "answer", "--epochs", "2", "--hidden", "8", "--out", tmp_path / "r")
    assert status == 0, err
    assert f'data_dir = "{table.resolve()}"' in (tmp_path / "r" / "config.toml").read_text()
    monkeypatch.chdir(tmp_path / "b")
    status, _, err = run(capsys, "evaluate", tmp_path / "r")
    assert status == 0, err
    status, _, err = run(capsys, "train", "--resume", "--epochs", "3", "--data-dir", table,
                         "--out", tmp_path / "r")  # the absolute spelling: the same setting
    assert status == 0, err


# --- 9. SIGTERM stops like Ctrl-C, and both checkpoint the last completed step --------------------
SIGNALLED = [*SPIRALS, "--epochs", "3"]


@pytest.fixture(scope="module")
def spirals_reference(tmp_path_factory):
    from backprop.cli import main
    out = tmp_path_factory.mktemp("ref") / "ref"
    assert main(["train", *SIGNALLED, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("signum, step, where", [
    (signal.SIGINT, 5, "in epoch 1 of 3, after batch 5 of 8 (step 5)"),
    (signal.SIGTERM, 11, "in epoch 2 of 3, after batch 3 of 8 (step 11)"),
    (signal.SIGTERM, 24, "in epoch 3 of 3, after batch 8 of 8 (step 24)"),  # the last step
], ids=["sigint", "sigterm", "sigterm-last-step"])
def test_a_signal_checkpoints_the_last_step_and_the_resumed_run_is_exact(
        signum, step, where, spirals_reference, tmp_path, capsys):
    out = tmp_path / "r"
    status, err = paused_at_step([*SIGNALLED, "--out", out], step).finish(signum,
                                                                          signal.SIGCONT)
    err = err.replace(f"backprop: paused after step {step} (BACKPROP_PAUSE_AFTER_STEP)\n", "")
    one_error(status, err, 128 + signum, signal.Signals(signum).name, where, "--resume")
    assert load_checkpoint(out / CHECKPOINT)["trainer"]["step"] == step
    status, _, err = run(capsys, "train", "--resume", "--out", out)
    assert status == 0, err
    a, b = weights(spirals_reference), weights(out)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert history_rows(out / "history.csv") == history_rows(spirals_reference / "history.csv")


# --- 10. a write killed before its rename
def test_a_write_killed_before_its_rename_leaves_nothing_after_the_next_start(tmp_path, capsys):
    out = tmp_path / "r"
    args = [*SPIRALS, "--epochs", "1", "--out", out]
    paused = Paused(args, {"BACKPROP_PAUSE_BEFORE_REPLACE": CHECKPOINT},
                    f"paused before replacing {CHECKPOINT}")
    assert paused.finish(signal.SIGKILL)[0] == -signal.SIGKILL
    leftovers = [p.name for p in out.iterdir() if ".tmp-" in p.name]
    assert leftovers == [f".{CHECKPOINT}.tmp-{paused.pid}"]
    status, _, err = run(capsys, "train", *args)  # no checkpoint yet: a new run reuses it
    assert status == 0, err
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    (out / f".{CHECKPOINT}.tmp-99999").write_bytes(b"half a checkpoint")
    (out / ".history.csv.tmp-123").write_bytes(b"epoch,lo")
    status, _, err = run(capsys, "train", "--resume", "--out", out)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [LOCK]


# --- 11. degenerate data
def test_one_class_is_refused_and_many_classes_are_warned_about(tmp_path, capsys):
    one = tmp_path / "one.csv"
    one.write_text("a,label\n" + "".join(f"{i},x\n" for i in range(20)))
    status, _, err = run(capsys, "train", "--dataset", "csv", "--data-dir", one, "--target",
                         "label", "--out", tmp_path / "r1")
    one_error(status, err, 1, "'x'", "at least 2 classes")
    assert not (tmp_path / "r1").exists()
    many = tmp_path / "many.csv"
    many.write_text("a,label\n" + "".join(f"{i},{i % 8}\n" for i in range(40)))
    status, _, err = run(capsys, "train", "--dataset", "csv", "--data-dir", many, "--target",
                         "label", "--epochs", "1", "--out", tmp_path / "r2")
    assert status == 0, err
    assert "warning: 8 classes for 32 training rows" in err
