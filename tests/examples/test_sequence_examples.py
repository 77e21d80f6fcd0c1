"""Smoke tests of examples/lstm_adding.py and examples/char_lm.py on tiny sizes (the real runs,
to a test MSE far below 0.167 and a bits-per-character far below the unigram baseline, are by
hand: see README "Examples")."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reports(out: str, key: str) -> list[float]:
    """The figure after ``key`` on every "step ..." line of ``out``."""
    return [float(line.split(key)[1].split(",")[0].split()[0])
            for line in out.splitlines() if line.startswith("step ")]


def _run(name, *args):
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=60)


# --- the adding problem ---


def test_adding_problem_data_has_two_markers_and_their_sum_as_target():
    x, y = _load("lstm_adding").adding_problem(500, 30, np.random.default_rng(0))
    assert x.shape == (500, 30, 2) and y.shape == (500, 1)
    assert x.dtype == y.dtype == np.float32
    assert (x[..., 1].sum(axis=1) == 2).all()
    assert set(np.unique(x[..., 1])) == {0.0, 1.0}
    assert ((x[..., 0] >= 0) & (x[..., 0] < 1)).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * x[..., 1]).sum(axis=1), rtol=1e-6)
    # the markers land everywhere, the first and last steps included
    positions = np.nonzero(x[..., 1])[1]
    assert positions.min() == 0 and positions.max() == 29
    assert abs(((y - 1) ** 2).mean() - 1 / 6) < 0.03  # the baseline of always predicting 1


def test_adding_main_trains_and_reports_test_mse(capsys):
    mse = _load("lstm_adding").main(["--seq-len", "12", "--steps", "150", "--eval-every", "50",
                                     "--hidden-size", "16", "--batch-size", "32",
                                     "--limit", "1000", "--seed", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("adding problem, T = 12: train 1,000 / test 1,000 sequences")
    baseline = float(lines[1].split("test MSE ")[1])
    assert 0.1 < baseline < 0.25
    steps = [line.split(":")[0] for line in lines if line.startswith("step ")]
    assert steps == ["step 50/150", "step 100/150", "step 150/150"]
    losses = _reports("\n".join(lines), "train loss ")
    assert losses[-1] < losses[0]
    assert _reports("\n".join(lines), "test MSE ")[-1] == pytest.approx(mse, abs=1e-6)
    assert lines[-1].startswith(f"test MSE: {mse:.6f} (baseline {baseline:.4f}")
    assert mse < baseline  # 150 steps on T = 12 already beat always predicting 1


def test_adding_main_is_reproducible_with_a_seed(capsys):
    example = _load("lstm_adding")
    args = ["--seq-len", "8", "--steps", "20", "--eval-every", "10", "--hidden-size", "8",
            "--limit", "200", "--seed", "3"]
    assert example.main(args) == example.main(args)
    out = capsys.readouterr().out
    reports = [line.rsplit(",", 1)[0] for line in out.splitlines() if line.startswith("step ")]
    assert reports[:2] == reports[2:]


@pytest.mark.parametrize("args, message", [(["--seq-len", "1"], "--seq-len"),
                                           (["--steps", "0"], "--steps")])
def test_adding_bad_arguments_give_a_usage_error(args, message):
    proc = _run("lstm_adding", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


# --- the character-level language model ---


def test_stream_chunks_lay_out_streams_chunk_by_chunk():
    example = _load("char_lm")
    ids = np.arange(101)
    ds = example.stream_chunks(ids, n_streams=3, bptt=4)
    x, y = (np.stack([ds[i][k].data for i in range(len(ds))]) for k in (0, 1))
    # 100 inputs -> 3 streams of 33 -> 8 chunks of 4 per stream
    assert x.shape == y.shape == (24, 4)
    np.testing.assert_array_equal(y, x + 1)  # the targets are the next characters
    np.testing.assert_array_equal(x[:3, 0], [0, 33, 66])  # chunk 0 of streams 0, 1, 2
    # row j*3 + b is followed in the text by row (j+1)*3 + b: the state carries over
    np.testing.assert_array_equal(x[3:, 0], x[:-3, -1] + 1)


def test_stream_chunks_reject_a_text_too_short():
    with pytest.raises(ValueError, match="too few"):
        _load("char_lm").stream_chunks(np.arange(20), n_streams=4, bptt=8)


def test_unigram_bits_is_the_entropy_of_the_character_distribution():
    example = _load("char_lm")
    assert example.unigram_bits(np.array([0, 1, 2, 3] * 5), 6) == pytest.approx(2.0)
    assert example.unigram_bits(np.zeros(7, dtype=np.int64), 3) == 0.0


def test_char_lm_main_trains_reports_bpc_and_samples(capsys):
    bpc = _load("char_lm").main(["--limit", "6000", "--steps", "60", "--eval-every", "20",
                                 "--hidden-size", "32", "--embed-dim", "8", "--bptt", "16",
                                 "--batch-size", "8", "--lr", "0.01", "--sample-len", "30",
                                 "--prime", "The ", "--seed", "0"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].startswith("pydoc_data topics: 6,000 characters")
    assert "truncated BPTT, k = 16, 8 streams" in lines[1]
    assert "training limited to 60 steps = 7,680 characters" in lines[1]
    baseline = float(lines[2].split("unigram baseline: ")[1].split()[0])
    assert 3 < baseline < 7
    steps = [line.split(":")[0] for line in lines if line.startswith("step ")]
    assert steps == ["step 20/60", "step 40/60", "step 60/60"]
    assert "pre-clip grad norm mean" in out
    train_bpc = _reports(out, "train bpc ")
    assert train_bpc[-1] < train_bpc[0]
    assert _reports(out, "held-out bpc ")[-1] == pytest.approx(bpc, abs=1e-3)
    start = lines.index("--- sample (temperature 0.7) ---")
    sample = "\n".join(lines[start + 1:-2])
    assert sample.startswith("The ") and len(sample) >= 30  # the prime, then 30 characters
    assert lines[-2] == "---"
    assert lines[-1] == f"held-out bits per character: {bpc:.3f} (unigram baseline {baseline:.3f})"
    assert bpc < baseline  # even 60 tiny steps learn more than the character frequencies


def test_char_lm_without_clipping_still_logs_the_gradient_norm(capsys):
    _load("char_lm").main(["--limit", "3000", "--steps", "4", "--eval-every", "2",
                           "--hidden-size", "8", "--embed-dim", "4", "--bptt", "8",
                           "--batch-size", "4", "--clip", "0", "--sample-len", "0"])
    out = capsys.readouterr().out
    assert all(n > 0 for n in _reports(out, "grad norm mean "))
    assert "(0/2 clipped)" in out and "--- sample" not in out


def test_char_lm_text_too_short_gives_a_one_line_error():
    proc = _run("char_lm", "--limit", "100", "--steps", "1")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "too few" in lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("args, message", [(["--temperature", "0"], "--temperature"),
                                           (["--holdout", "1.5"], "--holdout")])
def test_char_lm_bad_arguments_give_a_usage_error(args, message):
    proc = _run("char_lm", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
