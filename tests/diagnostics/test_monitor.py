"""GradientMonitor: it records by itself on every backward, once when also a callback, and warns
on the deep sigmoid network but not on ReLU + He."""

import math
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.data import TensorDataset
from backprop.data.datasets import load_digits
from backprop.diagnostics import GradientMonitor, GradientWarning
from backprop.train import Trainer
from tests.cli.helpers import run


def deep(kind: str, depth: int = 10, width: int = 32) -> bp.nn.Sequential:
    bp.manual_seed(0)
    layers, prev = [bp.nn.Flatten()], 64
    for _ in range(depth - 1):
        linear = bp.nn.Linear(prev, width)
        if kind == "relu":
            bp.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            bp.nn.init.zeros_(linear.bias)
        layers += [linear, bp.nn.Sigmoid() if kind == "sigmoid" else bp.nn.ReLU()]
        prev = width
    return bp.nn.Sequential(*layers, bp.nn.Linear(prev, 10))


def train_plain(model, steps=5):
    data = load_digits()
    x, y = bp.tensor(data.data[:128]), bp.tensor(data.targets[:128])
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        bp.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def caught(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in got if issubclass(w.category, GradientWarning)]


def test_deep_sigmoid_warns_that_first_layers_vanish():
    model = deep("sigmoid")
    monitor = GradientMonitor(model)
    messages = caught(lambda: train_plain(model))
    assert any("vanish in layer '1'" in m and "ReLU" in m and "He" in m for m in messages)
    assert len(messages) == len(set(messages))  # once per layer and kind, not per step
    first = [r["grad_norm"] for r in monitor.records if r["layer"] == "1"]
    last = [r["grad_norm"] for r in monitor.records if r["layer"] == "19"]
    assert len(first) == 5 and max(first) < 1e-3 * min(last)


def test_relu_he_does_not_warn():
    model = deep("relu")
    monitor = GradientMonitor(model)
    assert caught(lambda: train_plain(model)) == []
    assert len(monitor.records) == 5 * 10


def test_records_rows_and_update_ratio_by_itself():
    bp.manual_seed(1)
    model = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.Tanh(), bp.nn.Linear(4, 2))
    monitor = GradientMonitor(model)
    x = bp.randn(6, 3)
    w_before = model[0].weight.data.copy()
    b_before = model[0].bias.data.copy()
    opt = bp.optim.SGD(model.parameters(), lr=0.5)
    model(x).pow(2).mean().backward()
    grad = np.concatenate([model[0].weight.grad.numpy().ravel(), model[0].bias.grad.numpy()])
    opt.step()
    opt.zero_grad()
    model(x).pow(2).mean().backward()  # the next pass closes step 1's update ratio
    rows = monitor.records
    assert [(r["step"], r["layer"]) for r in rows] == [(1, "0"), (1, "2"), (2, "0"), (2, "2")]
    assert set(rows[0]) == {"step", "layer", "grad_norm", "weight_norm", "update_ratio"}
    assert rows[0]["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-6)
    before = np.concatenate([w_before.ravel(), b_before])
    assert rows[0]["weight_norm"] == pytest.approx(np.linalg.norm(before), rel=1e-6)
    assert rows[0]["update_ratio"] == pytest.approx(
        0.5 * np.linalg.norm(grad) / np.linalg.norm(before), rel=1e-5)
    assert math.isnan(rows[2]["update_ratio"])


def test_as_callback_too_it_records_once_per_step():
    model = deep("relu", depth=3)
    monitor = GradientMonitor(model)
    data = load_digits()
    trainer = Trainer(model, bp.nn.CrossEntropyLoss(), bp.optim.Adam(model.parameters()),
                      callbacks=[monitor], progress=False)
    trainer.fit(TensorDataset(data.data[:64], data.targets[:64]), epochs=2, batch_size=32)
    assert trainer.step == 4
    assert [r["step"] for r in monitor.records] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert all(r["update_ratio"] > 0 for r in monitor.records)  # closed after each step


def test_explode_warns_on_huge_and_non_finite_gradients():
    model = bp.nn.Sequential(bp.nn.Linear(2, 2), bp.nn.Linear(2, 1))
    GradientMonitor(model, explode=10.0)
    messages = caught(lambda: (model(bp.full((4, 2), 1e4)).sum() * 1e3).backward())
    assert any("explode in layer '0'" in m and "clipping" in m for m in messages)


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    model = deep("sigmoid", depth=4)
    monitor = GradientMonitor(model, warn=False)
    train_plain(model, steps=3)
    path = monitor.plot(tmp_path / "g.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_monitor_gradients_flag(capsys, tmp_path):
    status, _, err = run(capsys, "train", "--dataset", "xor", "--epochs", "2",
                         "--hidden", "4,4,4,4,4,4,4,4", "--activation", "sigmoid",
                         "--monitor-gradients", "--out", tmp_path / "run")
    assert status == 0, err
    assert "warning: gradients vanish in layer '1'" in err
    assert "CompileWarning" not in err  # the monitor's hooks: the command trains eagerly
    lines = (tmp_path / "run" / "gradients.csv").read_text().splitlines()
    assert lines[0] == "step,layer,grad_norm,weight_norm,update_ratio"
    assert len(lines) == 1 + 2 * 9  # 2 full-batch steps x 9 layers
    assert (tmp_path / "run" / "gradients.png").exists()
