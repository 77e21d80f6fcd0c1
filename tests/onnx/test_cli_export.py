"""``backprop export RUN_DIR --format onnx``: the run's model as ONNX, equal under onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from backprop.cli.main import main
from backprop.cli.rundir import load_run

ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
pytest.importorskip("onnx", reason="the [onnx] extra is not installed")


@pytest.mark.parametrize("model", ["mlp", "cnn", "lstm"])
def test_export_writes_model_onnx_that_onnxruntime_runs_to_the_same_scores(tmp_path, rng,
                                                                           model, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", model, "--epochs", "1", "--out", str(run)]) == 0
    out = tmp_path / "custom.onnx"
    assert main(["export", str(run)]) == 0
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    _, facts, net = load_run(str(run))
    x = rng.normal(size=(3, *facts["input_shape"])).astype(np.float32)
    import backprop as bp
    with bp.no_grad():
        ref = net(bp.tensor(x)).numpy()
    for path in (run / "model.onnx", out):
        (got,) = ort.InferenceSession(str(path)).run(["output"], {"input": x})
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_export_of_a_missing_run_is_one_error_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backprop export: error: no run directory" in err
