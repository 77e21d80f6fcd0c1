"""Exact resume: a checkpoint taken anywhere (mid-epoch too) continues the run bit for bit."""

import shutil

import numpy as np
import pytest

import backprop as bp
from backprop.optim.lr_scheduler import StepLR
from backprop.train import (
    CSVLogger,
    EarlyStopping,
    GradientClipping,
    History,
    LRSchedulerStep,
    ModelCheckpoint,
    Trainer,
    load_checkpoint,
)

from .helpers import assert_weights_equal, blobs, mlp, weights

EPOCHS, BATCH = 4, 8  # 40 training samples (val_split=0.2 of 50): 5 batches, not a multiple of 3


class CopyingCheckpoint(ModelCheckpoint):
    """Keeps a copy of every checkpoint it writes, with the step it was written at."""

    def __init__(self, path, copies_dir, **kw):
        super().__init__(path, **kw)
        self.copies_dir, self.copies = copies_dir, []

    def _save(self, trainer):
        super()._save(trainer)
        copy = self.copies_dir / f"ckpt-{len(self.copies):02d}.safetensors"
        shutil.copyfile(self.path, copy)
        self.copies.append((copy, trainer.epoch, trainer.step, trainer.batch_in_epoch))


def _build(ckpt):
    model = mlp(4, 16, 3, dropout=0.3, seed=0)
    opt = bp.optim.Adam(model.parameters(), lr=0.02)
    callbacks = [
        ckpt,  # listed first on purpose: it must still run after the others
        EarlyStopping(monitor="val_loss", patience=100),
        LRSchedulerStep(StepLR(opt, step_size=2, gamma=0.5)),
        GradientClipping(max_norm=5.0),
    ]
    trainer = Trainer(model, bp.nn.CrossEntropyLoss(), opt, callbacks=callbacks, seed=0,
                      progress=False, config={"run": "resume-test", "lr": 0.02})
    return trainer


def _fit(trainer, epochs=EPOCHS):
    return trainer.fit(blobs(50), val_split=0.2, epochs=epochs, batch_size=BATCH)


def _rows(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history.rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    ckpt = CopyingCheckpoint(tmp / "run.safetensors", tmp, every_n_steps=3)
    trainer = _build(ckpt)
    history = _fit(trainer)
    return trainer, history, ckpt.copies


def test_the_reference_run_saved_mid_epoch_and_at_epoch_ends(reference):
    trainer, history, copies = reference
    assert trainer.step == EPOCHS * 5 and len(history) == EPOCHS
    steps = [c[2] for c in copies]
    # every 3 steps, plus every epoch end (step 15 is both: saved twice)
    assert steps == [3, 5, 6, 9, 10, 12, 15, 15, 18, 20]
    assert any(c[3] not in (0, 5) for c in copies)  # really mid-epoch
    assert "grad_norm" in history.columns
    assert history["lr"] == [0.02, 0.02, 0.01, 0.01]


def test_resume_from_every_checkpoint_is_exact(reference, tmp_path):
    trainer, history, copies = reference
    final = weights(trainer.model)
    (es,) = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]
    for copy, epoch, step, batch in copies:
        resumed = _build(ModelCheckpoint(tmp_path / "again.safetensors", every_n_steps=3))
        resumed.load_checkpoint(copy)
        assert (resumed.epoch, resumed.step, resumed.batch_in_epoch) == (epoch, step, batch)
        assert resumed.config == {"run": "resume-test", "lr": 0.02}
        h = _fit(resumed)
        where = f"resumed from step {step} (epoch {epoch}, batch {batch})"
        assert resumed.step == trainer.step, where
        for k, v in weights(resumed.model).items():
            assert np.array_equal(v, final[k]), f"{k} differs, {where}"
        assert _rows(h) == _rows(history), where
        assert h.columns == history.columns, where
        (res_es,) = [cb for cb in resumed.callbacks if isinstance(cb, EarlyStopping)]
        assert (res_es.best, res_es.best_epoch) == (es.best, es.best_epoch), where
        for k, v in resumed.optimizer.state_dict()["state"].items():
            ref = trainer.optimizer.state_dict()["state"][k]
            for name in v:
                assert np.array_equal(np.asarray(getattr(v[name], "data", v[name])),
                                      np.asarray(getattr(ref[name], "data", ref[name]))), where


def test_resumed_trainer_with_more_epochs_continues_like_a_longer_run(reference, tmp_path):
    _, _, copies = reference
    last = copies[-1][0]
    longer = _build(ModelCheckpoint(tmp_path / "long.safetensors"))
    long_history = _fit(longer, epochs=EPOCHS + 2)

    resumed = _build(ModelCheckpoint(tmp_path / "res.safetensors"))
    resumed.load_checkpoint(last)
    h = _fit(resumed, epochs=EPOCHS + 2)
    assert resumed.epoch == EPOCHS + 2 and resumed.step == (EPOCHS + 2) * 5
    assert_weights_equal(weights(resumed.model), weights(longer.model))
    assert _rows(h) == _rows(long_history)
    assert h["lr"][-2:] == [0.005, 0.005]


def test_a_fresh_trainer_does_not_reproduce_by_accident(reference, tmp_path):
    """Guard: without load_checkpoint the same trainer differs from the reference when it only
    trains the remaining epochs, so the exact-resume test can fail."""
    trainer, _, _ = reference
    other = _build(ModelCheckpoint(tmp_path / "x.safetensors"))
    other.fit(blobs(50), val_split=0.2, epochs=2, batch_size=BATCH)
    assert any(not np.array_equal(v, weights(trainer.model)[k])
               for k, v in weights(other.model).items())


def test_checkpoint_history_includes_columns_added_by_callbacks(reference):
    """The checkpoint written at an epoch end holds that epoch's full row (grad_norm too)."""
    _, history, copies = reference
    copy, epoch, _, batch = next(c for c in copies if c[3] == 0)
    rows = load_checkpoint(copy)["history"]
    assert len(rows) == epoch
    assert rows[-1]["grad_norm"] == history.rows[epoch - 1]["grad_norm"]


def test_csv_logger_keeps_columns_added_by_callbacks(tmp_path):
    path = tmp_path / "log.csv"
    model = mlp()
    trainer = Trainer(model, bp.nn.CrossEntropyLoss(), bp.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[CSVLogger(path), GradientClipping(max_norm=1.0)], seed=0,
                      progress=False)
    history = trainer.fit(blobs(20), epochs=3, batch_size=5)
    on_disk = History.from_csv(path)
    assert on_disk.columns == history.columns
    assert on_disk.rows == history.rows


def test_csv_logger_on_resume_rewrites_the_file_from_the_checkpoint(reference, tmp_path):
    _, history, copies = reference
    copy, epoch, _, _ = next(c for c in copies if c[1] == 2 and c[3] == 0)
    log = tmp_path / "log.csv"
    # the file as a crashed run left it: 3 epochs, though the checkpoint has only 2
    History(history.rows[:3]).to_csv(log)
    resumed = _build(ModelCheckpoint(tmp_path / "r.safetensors"))
    resumed.callbacks.append(CSVLogger(log))

    class Check(bp.train.Callback):
        def on_train_begin(self, trainer):  # runs after CSVLogger.on_train_begin
            self.rows = History.from_csv(log).rows

    resumed.callbacks.append(check := Check())
    resumed.load_checkpoint(copy)
    _fit(resumed)
    assert [r["epoch"] for r in check.rows] == [1, 2]  # the extra epoch-3 row is gone
    assert check.rows == [{k: v for k, v in r.items()} for r in history.rows[:2]]
    final = History.from_csv(log)
    assert final.epoch == [1, 2, 3, 4]  # no duplicated row
    assert _rows(final) == _rows(history)


def test_early_stopped_run_resumed_from_its_last_checkpoint_keeps_the_best_weights(tmp_path):
    """The checkpoint written at the stopping epoch has stop_training set; fitting after
    loading it must end like the original run did: with the best epoch's weights."""
    from .test_callbacks import _overfitting_data

    train, val = _overfitting_data()

    def build(path):
        model = mlp(5, 128, 2, seed=1)
        stopper = EarlyStopping(patience=3)
        return Trainer(model, bp.nn.CrossEntropyLoss(),
                       bp.optim.Adam(model.parameters(), lr=0.01),
                       callbacks=[stopper, ModelCheckpoint(path)], seed=1, progress=False)

    original = build(tmp_path / "a.safetensors")
    original.fit(train, val_data=val, epochs=200, batch_size=8)
    assert original.callbacks[0].stopped_epoch  # it did stop early
    resumed = build(tmp_path / "b.safetensors")
    resumed.load_checkpoint(tmp_path / "a.safetensors")
    resumed.fit(train, val_data=val, epochs=200, batch_size=8)
    assert resumed.epoch == original.epoch
    assert_weights_equal(weights(resumed.model), weights(original.model))
