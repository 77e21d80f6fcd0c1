"""Smoke tests of examples/exploding_gradients.py on tiny sizes (the real run, where the unclipped
SGD run blows up and the clipped one goes far below the 0.167 baseline, is by hand: see README
"Examples")."""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "exploding_gradients.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("exploding_gradients_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_step(example, clip, gain=3.0, seq_len=30, lr=0.1):
    """Parameters before and after one SGD step on one batch, and the step's reported norm."""
    from backprop.data import DataLoader, TensorDataset

    x, y = example.adding_problem(16, seq_len, np.random.default_rng(0))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = example.make_model(8, gain, seed=0)
    before = [p.data.copy() for p in model.parameters()]
    run = example.train(model, loader, loader, steps=1, lr=lr, clip=clip, eval_every=1)
    after = [p.data.copy() for p in model.parameters()]
    update = math.sqrt(sum(float(((a.astype(np.float64) - b) ** 2).sum())
                           for a, b in zip(after, before)))
    return run, update


def test_the_data_comes_from_the_lstm_adding_example():
    example = _load_example()
    x, y = example.adding_problem(50, 10, np.random.default_rng(0))
    assert x.shape == (50, 10, 2) and y.shape == (50, 1)
    assert (x[..., 1].sum(axis=1) == 2).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * x[..., 1]).sum(axis=1), rtol=1e-6)


def test_make_model_gives_the_same_weights_and_a_scaled_orthogonal_recurrent_matrix():
    example = _load_example()
    a, b = example.make_model(8, 2.0, seed=5), example.make_model(8, 2.0, seed=5)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    w = a.rnn.weight_hh_l0.data.astype(np.float64)
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(8), atol=1e-5)


def test_clipping_bounds_the_update_by_lr_times_max_norm_and_reports_the_pre_clip_norm():
    example = _load_example()
    unclipped, step_unclipped = _one_step(example, clip=None)
    clipped, step_clipped = _one_step(example, clip=1.0)
    norm = unclipped["norms"][0]
    # a large recurrent matrix over 30 steps: the gradient is far above the threshold
    assert norm > 10
    assert clipped["norms"][0] == pytest.approx(norm, rel=1e-4)  # the norm before clipping
    assert step_unclipped == pytest.approx(0.1 * norm, rel=1e-3)  # plain SGD: lr * |g|
    assert step_clipped <= 0.1 * 1.0 * (1 + 1e-4)  # clipped: at most lr * max_norm
    assert step_clipped == pytest.approx(0.1, rel=1e-3)


def test_main_reports_both_runs_with_the_same_start(capsys):
    result = _load_example().main(["--seq-len", "20", "--steps", "60", "--eval-every", "30",
                                   "--hidden-size", "16", "--gain", "1.5", "--lr", "0.1",
                                   "--clip", "0.5", "--limit", "300", "--seed", "0"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].startswith("adding problem, T = 20: train 300 / test 300 sequences")
    assert 0.1 < result["baseline"] < 0.25
    assert lines[1] == f"baseline (always predict 1): test MSE {result['baseline']:.4f}"
    steps = [line.split(" | ")[0] for line in lines if line[:3] in ("| 1", "| 2", "| 3", "| 6")]
    assert steps == ["| 1", "| 10", "| 25", "| 30", "| 60"]  # early reports, then every 30
    u, c = result["unclipped"], result["clipped"]
    assert len(u["norms"]) == len(c["norms"]) == 60
    # same initial weights, same first batch: the same first gradient
    assert u["norms"][0] == pytest.approx(c["norms"][0], rel=1e-5)
    assert u["losses"][0] == pytest.approx(c["losses"][0], rel=1e-6)
    assert c["nonfinite_steps"] == 0 and math.isfinite(c["test_mse"])
    assert c["max_norm"] > 0.5  # clipping had something to do
    # even 60 tiny steps show it: unclipped SGD's gradient explodes, the clipped run's does not
    assert u["max_norm"] > 1e4 and not u["test_mse"] < 100 * result["baseline"]  # or NaN
    assert c["max_norm"] < 100 and c["test_mse"] < 2 * result["baseline"]
    assert lines[-1].startswith("test MSE: unclipped ")


def test_bad_arguments_give_a_usage_error():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--gain", "0"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "--gain" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
