"""The gradient-cost benchmark: its two gradients agree, finite differences cost about one
forward pass per parameter, and the command's last line is the ratio."""

import numpy as np
import pytest

from backprop.diagnostics import cost
from tests.cli.helpers import run


def test_gradients_agree_and_finite_differences_scale_with_parameters():
    rows = cost.measure(hidden=(2, 16, 55), fd_budget=10.0)
    assert [r.params for r in rows] == [9, 289, 3136]
    assert all(r.agree and not r.extrapolated for r in rows)
    assert all(r.checked == r.params for r in rows)
    assert rows[-1].max_abs_diff < 1e-6
    # P + 1 forward passes: the 3136-parameter network costs far more than the 9-parameter one
    assert rows[-1].finite_difference > 50 * rows[0].finite_difference
    assert rows[-1].backprop < 20 * rows[-1].forward  # backprop: a few forward passes


def test_extrapolated_sizes_are_still_checked():
    (row,) = cost.measure(hidden=(100,), fd_budget=1e-6)
    assert row.extrapolated and row.checked == 64 and row.agree
    assert row.finite_difference > 1000 * row.forward


def test_a_wrong_gradient_is_reported_as_disagreeing(monkeypatch):
    real = cost.nn.functional.mse_loss

    def skewed(pred, target):  # backprop sees 1.1 x the loss finite differences see
        out = real(pred, target)
        return out if cost.bp.is_grad_enabled() is False else out * 1.1

    monkeypatch.setattr(cost.nn.functional, "mse_loss", skewed)
    (row,) = cost.measure(hidden=(8,), fd_budget=10.0)
    assert not row.agree


@pytest.mark.slow
def test_bench_command_last_line_and_files(capsys, tmp_path):
    status, out, err = run(capsys, "bench", "gradient-cost", "--out", tmp_path,
                           "--fd-budget", "0.5")
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("backward/forward ratio: ")
    ratio = float(lines[-1].split(": ")[1])
    assert 0.2 < ratio < 20
    assert "(extrapolated)" in out and "agree" in out and "DISAGREE" not in out
    assert (tmp_path / "gradient-cost.png").read_bytes()[:4] == b"\x89PNG"
    csv = (tmp_path / "gradient-cost.csv").read_text().splitlines()
    assert len(csv) == 1 + len(cost.HIDDEN)
    assert np.all([row.endswith(",1") for row in csv[1:]])
