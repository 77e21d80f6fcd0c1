"""Smoke test of examples/transformer_lm.py on a tiny model and text (the real run, held-out bits
per character beside the LSTM's, is by hand: see README "Examples")."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load():
    spec = importlib.util.spec_from_file_location("transformer_lm_example",
                                                  EXAMPLES / "transformer_lm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluation_scores_every_held_out_character_once_with_context():
    example = _load()
    probs = np.array([0.1, 0.2, 0.3, 0.4])

    class FixedModel(bp.nn.Module):
        """Predicts the same distribution everywhere; records the windows it is shown."""

        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, ids):
            self.calls.append(ids.data.copy())
            return bp.tensor(np.broadcast_to(np.log(probs), ids.shape + (4,)).copy())

    ids = np.random.default_rng(0).integers(0, 4, 53)
    model = FixedModel()
    bpc = example.evaluate(model, ids, context=8, batch=3)
    # the mean over ids[1:], each target once: a skipped or repeated one would change it
    assert bpc == pytest.approx(-np.log2(probs[ids[1:]]).mean(), rel=1e-12)
    windows = np.concatenate(model.calls)
    assert windows.shape[1] == 8 and windows[-1, -1] == ids[-2]  # the last target is ids[-1]
    assert all(np.array_equal(w, ids[s:s + 8]) for w, s in zip(windows, [0, 4, 8]))


def test_positional_encoding_is_vaswani_s():
    pe = _load().PositionalEncoding(6, 10).pe.data
    position, i = 7, 1
    assert pe[position, 2 * i] == pytest.approx(np.sin(position / 10000 ** (2 * i / 6)))
    assert pe[position, 2 * i + 1] == pytest.approx(np.cos(position / 10000 ** (2 * i / 6)))


def test_transformer_lm_main_trains_reports_and_samples(capsys):
    bpc = _load().main(["--limit", "8000", "--steps", "80", "--eval-every", "40",
                        "--d-model", "32", "--nhead", "2", "--num-layers", "1",
                        "--dim-feedforward", "64", "--context", "16", "--batch-size", "16",
                        "--lr", "0.01", "--warmup", "5", "--sample-len", "20", "--seed", "0"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].startswith("pydoc_data topics: 8,000 characters")
    assert "1 layers, d_model 32, 2 heads" in lines[1]
    baseline = float(lines[2].split("unigram baseline: ")[1].split()[0])
    steps = [line.split(":")[0] for line in lines if line.startswith("step ")]
    assert steps == ["step 40/80", "step 80/80"]
    held_out = [float(line.split("held-out bpc ")[1].split(",")[0])
                for line in lines if line.startswith("step ")]
    assert held_out[-1] == pytest.approx(bpc, abs=1e-3)
    assert held_out[-1] < held_out[0] and bpc < baseline  # 80 tiny steps beat the unigram
    assert lines[lines.index("--- sample (temperature 0.7) ---") + 1].startswith("The ")
    assert lines[-1].startswith(f"held-out bits per character: {bpc:.3f}")


def test_bad_arguments_give_a_usage_error():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "transformer_lm.py"), "--nhead", "3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--nhead" in proc.stderr and "Traceback" not in proc.stderr
