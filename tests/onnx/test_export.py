"""backprop.onnx.export: onnx.checker passes and onnxruntime gives backprop's outputs (1e-5)
for every supported model kind, at the example's batch size and another one."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.onnx import OPSET, UnsupportedOpError, export

onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
nn = bp.nn


class CustomMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = bp.tanh(self.a(x.reshape(x.shape[0], -1))) * 2.0 + 1
        return nn.functional.log_softmax(self.b(bp.relu(h)), dim=1)


class FunctionalLinear(nn.Module):
    """nn.functional.linear called in forward: traced op by op (Addmm, then MM + Add)."""

    def __init__(self):
        super().__init__()
        self.w, self.b = nn.Parameter(bp.randn(5, 16)), nn.Parameter(bp.randn(5))
        self.w2 = nn.Parameter(bp.randn(3, 5))

    def forward(self, x):
        h = nn.functional.linear(x.reshape(x.shape[0], -1), self.w, self.b)
        return nn.functional.linear(bp.tanh(h), self.w2) + 0.5


class Recurrent(nn.Module):
    def __init__(self, cls, batch_first):
        super().__init__()
        self.rnn = cls(3, 5, num_layers=2, batch_first=batch_first, bidirectional=True)
        self.head = nn.Linear(10, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y)


class LastStep(nn.Module):
    """A classifier on an LSTM's final hidden state (h_n of the ONNX LSTM)."""

    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.LSTM(3, 6, batch_first=True), nn.Linear(6, 4)

    def forward(self, x):
        _, (h, _) = self.rnn(x)
        return self.head(h[0])


def models():
    return {
        "sequential_mlp": (lambda: nn.Sequential(
            nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3),
            nn.Sigmoid()), (2, 4, 4), 0),
        "custom_mlp": (CustomMLP, (2, 4, 4), 0),
        "functional_linear": (FunctionalLinear, (2, 4, 4), 0),
        "cnn2d": (lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.AvgPool2d(2), nn.Flatten(),
            nn.Dropout(0.5), nn.Linear(24, 3)), (2, 1, 16, 16), 0),
        "cnn1d": (lambda: nn.Sequential(
            nn.Conv1d(2, 4, 3, dilation=2), nn.BatchNorm1d(4), nn.Tanh(), nn.MaxPool1d(2),
            nn.Flatten()), (2, 2, 13), 0),
        "lstm_batch_first": (lambda: Recurrent(nn.LSTM, True), (2, 4, 3), 0),
        "gru_time_first": (lambda: Recurrent(nn.GRU, False), (4, 2, 3), 1),
        "lstm_last_state": (LastStep, (2, 7, 3), 0),
    }


@pytest.mark.parametrize("kind", list(models()))
def test_onnxruntime_matches_backprop_with_a_dynamic_batch(tmp_path, rng, kind):
    build, shape, axis = models()[kind]
    bp.manual_seed(0)
    model = build()
    x = bp.tensor(rng.normal(size=shape).astype(np.float32))
    with bp.no_grad():  # train-mode BatchNorm statistics, so eval differs from the init
        model(x)
    path = tmp_path / "model.onnx"
    export(model, x, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17 and OPSET >= 17
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[axis].dim_param == "batch"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    for batch in (shape[axis], 5):
        s = list(shape)
        s[axis] = batch
        data = rng.normal(size=s).astype(np.float32)
        (got,) = sess.run(["output"], {"input": data})
        with bp.no_grad():
            ref = model(bp.tensor(data))
        ref = (ref[0] if isinstance(ref, tuple) else ref).numpy()
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_an_unsupported_op_is_named_with_its_module(tmp_path):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return bp.cumsum(self.fc(x), dim=1)

    with pytest.raises(UnsupportedOpError, match=r"Cumsum.* in Odd \(Odd\)"):
        export(Odd(), bp.randn(2, 4), tmp_path / "odd.onnx")
    assert not (tmp_path / "odd.onnx").exists()


def test_export_refuses_an_old_opset(tmp_path):
    with pytest.raises(ValueError, match="17 or newer"):
        export(nn.Linear(2, 2), bp.randn(1, 2), tmp_path / "m.onnx", opset_version=13)


def test_torch_onnx_export_spelling_runs_unchanged(tmp_path, rng):
    """``torch.onnx.export(model, (x,), f)`` with ``import backprop as torch``."""
    import backprop as torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    x = torch.tensor(rng.normal(size=(2, 4)).astype(np.float32))
    torch.onnx.export(model, (x,), str(tmp_path / "m.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = sess.run(["output"], {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-6)
