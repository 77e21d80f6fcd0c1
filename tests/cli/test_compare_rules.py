"""``backprop compare-rules``: the digits defaults meet their targets; the files it writes; one
readable error line for every mistake."""

import csv
from pathlib import Path

import numpy as np
import pytest

from backprop.cli.compare_rules import RESULTS_HEADER, parse_rules
from tests.cli.test_cli import run
from tests.data.test_idx import _small_mnist

PNG = b"\x89PNG\r\n\x1a\n"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_digits_defaults_meet_the_targets_and_write_every_file(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    status, stdout, err = run(capsys, "compare-rules", "--out", out)
    assert status == 0, err
    assert (out / "results.csv").read_text().splitlines()[0] == \
        "rule,test_accuracy,epochs,seconds,angle_deg"
    rows = {r["rule"]: r for r in _rows(out / "results.csv")}
    assert list(rows) == ["backprop", "fa", "dfa", "ff", "perturbation"]
    acc = {k: float(r["test_accuracy"]) for k, r in rows.items()}
    for rule in ("backprop", "fa", "dfa", "ff"):
        assert acc[rule] > 0.90, (rule, acc)
    assert acc["backprop"] - acc["fa"] <= 0.03 and acc["backprop"] - acc["dfa"] <= 0.03
    assert acc["perturbation"] > 0.80
    assert all(r["epochs"] == "30" for r in rows.values())
    assert all(float(r["seconds"]) > 0 for r in rows.values())  # timing: see benchmarks/
    for rule, r in rows.items():
        if rule in ("fa", "dfa"):
            assert 0 < float(r["angle_deg"]) < 90
        else:
            assert r["angle_deg"] == ""
    history = _rows(out / "history.csv")
    assert len(history) == 5 * 30 + 2  # fa and dfa add the angle before training, epoch 0
    fa = [h for h in history if h["rule"] == "fa"]
    assert fa[0]["epoch"] == "0" and fa[0]["test_accuracy"] == ""
    assert float(fa[0]["angle_deg"]) > float(fa[-1]["angle_deg"])  # the alignment effect
    assert fa[-1]["test_accuracy"] == rows["fa"]["test_accuracy"]
    assert (out / "accuracy.png").read_bytes()[:8] == PNG
    for rule in ("backprop", "fa", "dfa", "ff", "perturbation"):
        assert f"\n{rule}" in stdout


def test_a_subset_of_rules_and_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = run(capsys, "compare-rules", "--rules", "dfa,backprop", "--epochs",
                              "2", "--out", out)
    assert status == 0, err
    rows = _rows(out / "results.csv")
    assert [r["rule"] for r in rows] == ["backprop", "dfa"]  # the command's order
    assert tuple(rows[0]) == RESULTS_HEADER
    assert [r["epochs"] for r in rows] == ["2", "2"]
    assert rows[0]["angle_deg"] == "" and float(rows[1]["angle_deg"]) > 0
    assert "MLP 64-256-256-10 tanh" in stdout


def test_mnist_recipe_runs_ff_on_raw_pixels_and_leaves_perturbation_out(tmp_path, capsys, rng):
    (tmp_path / "mnist").mkdir()
    _small_mnist(tmp_path / "mnist", rng, n=40, split="train")
    _small_mnist(tmp_path / "mnist", rng, n=20, split="t10k")
    out = tmp_path / "run"
    status, stdout, err = run(capsys, "compare-rules", "--dataset", "mnist", "--data-dir",
                              tmp_path / "mnist", "--rules", "ff,backprop", "--epochs", "1",
                              "--out", out)
    assert status == 0, err
    assert [r["rule"] for r in _rows(out / "results.csv")] == ["backprop", "ff"]
    assert "784-1000-1000-10" in stdout and "FF 784+10-1000-1000-1000-1000 ReLU" in stdout
    status, stdout, err = run(capsys, "compare-rules", "--dataset", "mnist", "--data-dir",
                              tmp_path / "mnist", "--rules", "ff", "--epochs", "1",
                              "--ff-hidden", "30,20", "--out", tmp_path / "run2")
    assert status == 0, err
    assert "FF 784+10-30-20 ReLU" in stdout


@pytest.mark.parametrize("argv,status,words", [
    (["--rules", "backprop,sgd"], 2, ["unknown rule(s) sgd", "backprop,fa,dfa,ff,perturbation"]),
    (["--rules", ","], 2, ["(none given)"]),
    (["--dataset", "mnist", "--data-dir", ".", "--rules", "perturbation"], 2,
     ["digits only"]),
    (["--epochs", "0"], 2, ["--epochs must be >= 1"]),
    (["--ff-hidden", "100,x"], 2, ["--ff-hidden", "'100,x'"]),
    (["--ff-hidden", "0"], 2, ["positive layer widths"]),
    (["--dataset", "mnist"], 2, ["--data-dir"]),
    (["--data-dir", "somewhere"], 2, ["--data-dir goes with --dataset mnist"]),
    (["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], 1, ["/nonexistent/mnist"]),
])
def test_mistakes_end_with_one_error_line(tmp_path, capsys, argv, status, words):
    code, _, err = run(capsys, "compare-rules", *argv, "--out", tmp_path / "run")
    assert code == status
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backprop compare-rules: error:"), err
    for w in words:
        assert w in lines[0]
    assert not (tmp_path / "run").exists()


def test_an_existing_output_directory_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.csv").write_text("old")
    code, _, err = run(capsys, "compare-rules", "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and "already exists" in err
    assert (tmp_path / "run" / "results.csv").read_text() == "old"


def test_an_unwritable_output_directory_is_a_run_error(tmp_path, capsys, monkeypatch):
    import backprop.cli.compare_rules as cr

    def refuse(path, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("backprop.train.atomic_write", refuse)
    code, _, err = run(capsys, "compare-rules", "--rules", "backprop", "--epochs", "1",
                       "--out", tmp_path / "run")
    assert code == 1 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert cr.RESULTS_HEADER[0] == "rule"


def test_parse_rules_keeps_the_fixed_order():
    assert parse_rules(" ff, backprop ,fa") == ["backprop", "fa", "ff"]
    np.testing.assert_equal(parse_rules("perturbation"), ["perturbation"])
