"""TensorBoard event files, read back with the tensorboard package's own event reader."""

import pytest

import backprop as bp
from backprop.data import TensorDataset
from backprop.data.datasets import load_digits
from backprop.train import Trainer
from tests.cli.helpers import one_error, run

pytest.importorskip("tensorboardX", reason="pip install 'backprop[tensorboard]'")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard package reads the files back: pip install tensorboard")


def read(log_dir):
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"histograms": 0,
                                                                          "scalars": 0})
    acc.Reload()
    return acc


def test_trainer_callback_writes_scalars_and_histograms(tmp_path):
    from backprop.diagnostics.tensorboard import TensorBoardLogger

    bp.manual_seed(0)
    model = bp.nn.Sequential(bp.nn.Flatten(), bp.nn.Linear(64, 16), bp.nn.ReLU(),
                             bp.nn.Linear(16, 10))
    data = load_digits()
    trainer = Trainer(model, bp.nn.CrossEntropyLoss(), bp.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[TensorBoardLogger(tmp_path, model, histogram_every=2)],
                      progress=False)
    history = trainer.fit(TensorDataset(data.data[:96], data.targets[:96]), epochs=2,
                          batch_size=32)
    acc = read(tmp_path)
    tags = acc.Tags()
    losses = acc.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4, 5, 6]
    epoch_loss = [e.value for e in acc.Scalars("epoch/loss")]
    assert epoch_loss == pytest.approx([row["loss"] for row in history.rows], rel=1e-6)
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([0.1] * 6)
    assert {"grad/1.weight", "weight/1.weight", "grad/3.bias"} <= set(tags["histograms"])
    hist = acc.Histograms("weight/1.weight")
    assert [h.step for h in hist] == [1, 2, 4, 6]
    assert hist[0].histogram_value.num == 64 * 16


def test_train_tensorboard_flag(capsys, tmp_path):
    status, _, err = run(capsys, "train", "--dataset", "xor", "--epochs", "3",
                         "--tensorboard", tmp_path / "tb", "--out", tmp_path / "run")
    assert status == 0, err
    acc = read(tmp_path / "tb")
    assert len(acc.Scalars("epoch/accuracy")) == 3
    assert "grad/1.weight" in acc.Tags()["histograms"]


def test_missing_tensorboardx_is_one_error_line(capsys, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    status, _, err = run(capsys, "train", "--dataset", "xor", "--epochs", "1",
                         "--tensorboard", tmp_path / "tb", "--out", tmp_path / "run")
    one_error(status, err, 2, "pip install 'backprop[tensorboard]'")
