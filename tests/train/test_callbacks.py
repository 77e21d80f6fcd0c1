"""EarlyStopping, LRSchedulerStep, GradientClipping, NaN handling, ProgressBar, EpochLogger."""

import io
import math

import numpy as np
import pytest

import backprop as bp
from backprop.data import TensorDataset
from backprop.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau, StepLR
from backprop.train import (
    Callback,
    EarlyStopping,
    EpochLogger,
    GradientClipping,
    LRSchedulerStep,
    ModelCheckpoint,
    ProgressBar,
    Trainer,
    TrainingError,
    load_checkpoint,
)

from .helpers import Snapshots, assert_weights_equal, blobs, mlp, weights, weights_differ


def _trainer(model, lr=0.01, opt=None, **kw):
    kw.setdefault("progress", False)
    opt = opt or bp.optim.Adam(model.parameters(), lr=lr)
    return Trainer(model, bp.nn.CrossEntropyLoss(), opt, **kw)


# --- EarlyStopping ---
def _overfitting_data(seed=1):
    """24 training points with 30% flipped labels and a big net: the validation loss falls
    while the true rule is learnt, then rises as the noise is memorised."""
    rng = np.random.default_rng(seed)
    xt = rng.standard_normal((24, 5)).astype(np.float32)
    yt = (xt[:, 0] > 0).astype(np.int64)
    flip = rng.random(24) < 0.3
    yt[flip] = 1 - yt[flip]
    xv = rng.standard_normal((200, 5)).astype(np.float32)
    yv = (xv[:, 0] > 0).astype(np.int64)
    return TensorDataset(xt, yt), TensorDataset(xv, yv)


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_stops_and_restores_the_best_epochs_weights(restore):
    train, val = _overfitting_data()
    model = mlp(5, 128, 2, seed=1)
    stopper = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=restore)
    snaps = Snapshots()
    trainer = _trainer(model, callbacks=[snaps, stopper], seed=1)
    history = trainer.fit(train, val_data=val, epochs=200, batch_size=8)

    assert 0 < stopper.stopped_epoch < 200
    assert len(history) == stopper.stopped_epoch == trainer.epoch
    assert stopper.stopped_epoch == stopper.best_epoch + stopper.patience  # as Keras
    val_loss = history["val_loss"]
    assert stopper.best_epoch == 1 + int(np.argmin(val_loss))
    assert stopper.best == min(val_loss)
    assert stopper.best_epoch > 1  # the val loss did fall first, then rise
    assert all(v >= stopper.best for v in val_loss[stopper.best_epoch:])

    best, last = snaps.by_epoch[stopper.best_epoch], snaps.by_epoch[stopper.stopped_epoch]
    assert weights_differ(best, last)  # otherwise the test would prove nothing
    assert_weights_equal(weights(model), best if restore else last)
    if restore:  # the restored weights give the best epoch's validation loss back
        assert trainer.evaluate(val)["loss"] == pytest.approx(stopper.best, rel=1e-6)


def test_early_stopping_on_accuracy_uses_max_mode():
    stopper = EarlyStopping(monitor="val_accuracy")
    assert stopper.mode == "max" and stopper.best == -math.inf


def test_early_stopping_with_unknown_monitor_says_what_exists():
    trainer = _trainer(mlp(), callbacks=[EarlyStopping(monitor="val_loss")])
    with pytest.raises(ValueError, match="val_loss.*val_data or val_split"):
        trainer.fit(blobs(20), epochs=2, batch_size=10)


@pytest.mark.parametrize("kwargs", [{"patience": -1}, {"patience": 1.5}, {"min_delta": -0.1},
                                    {"mode": "up"}])
def test_early_stopping_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        EarlyStopping(**kwargs)


# --- LRSchedulerStep ---
def test_step_lr_per_epoch_follows_the_schedule():
    model = mlp()
    opt = bp.optim.SGD(model.parameters(), lr=0.8)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    trainer = _trainer(model, opt=opt, callbacks=[LRSchedulerStep(sched)], seed=0)
    history = trainer.fit(blobs(50), epochs=7, batch_size=10)
    # the row's lr is the one the epoch trained with; the scheduler steps after it
    assert history["lr"] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.8 * 0.5 ** 3)  # after 7 steps


def test_one_cycle_per_batch_steps_once_per_optimizer_step():
    epochs, n, batch = 3, 50, 8  # 7 batches per epoch
    model = mlp()
    opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    total = epochs * 7
    sched = OneCycleLR(opt, max_lr=0.5, total_steps=total + 1)
    trainer = _trainer(model, opt=opt, callbacks=[LRSchedulerStep(sched, interval="batch")],
                       seed=0)
    history = trainer.fit(blobs(n), epochs=epochs, batch_size=batch)

    ref_model = mlp()
    ref_opt = bp.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9)
    ref = OneCycleLR(ref_opt, max_lr=0.5, total_steps=total + 1)
    lrs_at_epoch_end = []
    for step in range(1, total + 1):
        ref.step()
        if step % 7 == 0:
            lrs_at_epoch_end.append(ref_opt.param_groups[0]["lr"])
    assert trainer.step == total
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    assert opt.param_groups[0]["momentum"] == ref_opt.param_groups[0]["momentum"]
    assert history["lr"] == lrs_at_epoch_end
    assert sched.last_epoch == total


def test_reduce_lr_on_plateau_with_monitor():
    model = mlp()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    sched = ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)

    class Constant(Callback):  # a metric that never improves after the first epoch
        order = 5

        def on_epoch_end(self, trainer, epoch, logs):
            logs["score"] = 1.0

    trainer = _trainer(model, opt=opt, seed=0,
                       callbacks=[LRSchedulerStep(sched, monitor="score"), Constant()])
    history = trainer.fit(blobs(20), epochs=4, batch_size=10)
    assert history["lr"] == [0.1, 0.1, 0.05, 0.025]
    assert history["score"] == [1.0] * 4
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0125)


def test_reduce_lr_on_plateau_on_val_loss():
    model = mlp()
    opt = bp.optim.SGD(model.parameters(), lr=0.0)  # nothing learns: val_loss is flat
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=0)
    opt.param_groups[0]["lr"] = 1e-30  # tiny but non-zero so factor shows in lr
    trainer = _trainer(model, opt=opt, seed=0, callbacks=[LRSchedulerStep(sched)])
    history = trainer.fit(blobs(20), val_split=0.25, epochs=5, batch_size=10)
    # epoch 1 sets best; 2: bad 1; 3: bad 2 > patience -> halve; 4: bad 1; 5: bad 2 -> halve
    assert history["lr"] == pytest.approx([1e-30, 1e-30, 1e-30, 5e-31, 5e-31])
    assert opt.param_groups[0]["lr"] == pytest.approx(2.5e-31)


def test_plateau_without_its_metric_fails_clearly():
    model = mlp()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    trainer = _trainer(model, opt=opt, callbacks=[LRSchedulerStep(ReduceLROnPlateau(opt))])
    with pytest.raises(ValueError, match="monitor='val_loss'"):
        trainer.fit(blobs(20), epochs=1, batch_size=10)


def test_scheduler_step_rejects_bad_interval_and_plateau_per_batch():
    model = mlp()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="interval"):
        LRSchedulerStep(StepLR(opt, 1), interval="step")
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        LRSchedulerStep(ReduceLROnPlateau(opt), interval="batch")


# --- GradientClipping ---
class GradNorms(Callback):
    """Runs after GradientClipping (order 30): records the total grad norm the optimizer sees,
    and the largest absolute gradient element."""

    order = 40

    def __init__(self):
        self.norms, self.maxabs = [], []

    def on_after_backward(self, trainer):
        grads = [p.grad.data for p in trainer.model.parameters() if p.grad is not None]
        self.norms.append(math.sqrt(sum(float((g.astype(np.float64) ** 2).sum())
                                        for g in grads)))
        self.maxabs.append(max(float(np.abs(g).max()) for g in grads))


def _clip_run(clipper, seed=0):
    model = mlp(seed=seed)
    seen = GradNorms()
    callbacks = [seen] + ([clipper] if clipper else [])
    trainer = _trainer(model, lr=0.05, callbacks=callbacks, seed=seed)
    history = trainer.fit(blobs(50), epochs=3, batch_size=5)
    return seen, history, trainer


def test_gradient_norm_clipping_bounds_every_step():
    c = 0.05
    unclipped, _, _ = _clip_run(None)
    assert max(unclipped.norms) > c  # clipping has something to do
    seen, history, trainer = _clip_run(GradientClipping(max_norm=c))
    assert len(seen.norms) == trainer.step == 30
    assert all(n <= c * (1 + 1e-6) for n in seen.norms)
    assert "grad_norm" in history.columns
    assert all(g > c for g in history["grad_norm"])  # the norm before clipping is reported


def test_grad_norm_is_the_epochs_maximum_pre_clip_norm():
    pre = []

    class Before(Callback):  # runs before clipping
        order = 25

        def on_after_backward(self, trainer):
            pre.append(math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum())
                                     for p in trainer.model.parameters())))

    model = mlp()
    clip = GradientClipping(max_norm=0.05)
    history = _trainer(model, lr=0.05, callbacks=[clip, Before()], seed=0).fit(
        blobs(50), epochs=2, batch_size=5)
    assert history["grad_norm"] == pytest.approx([max(pre[:10]), max(pre[10:])], rel=1e-5)


def test_gradient_value_clipping_bounds_every_element():
    v = 0.01
    unclipped, _, _ = _clip_run(None)
    assert max(unclipped.maxabs) > v
    seen, history, _ = _clip_run(GradientClipping(clip_value=v))
    assert all(m <= v for m in seen.maxabs)
    assert "grad_norm" not in history.columns


@pytest.mark.parametrize("kwargs", [{}, {"max_norm": 1.0, "clip_value": 1.0},
                                    {"max_norm": 0.0}, {"clip_value": -1.0}])
def test_gradient_clipping_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        GradientClipping(**kwargs)


# --- NaN loss ---
class Poison(Callback):
    """At the start of epoch ``epoch``, writes NaN into sample ``index`` of the training data."""

    def __init__(self, x, epoch, index):
        self.x, self.epoch, self.index = x, epoch, index

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            self.x[self.index] = np.nan


class SnapshotEveryStep(Callback):
    order = 99

    def __init__(self, path=None):
        self.last, self.path, self.file_bytes = None, path, None

    def on_batch_end(self, trainer, logs):
        self.last = (trainer.step, weights(trainer.model))
        if self.path is not None:  # runs after ModelCheckpoint (order 80)
            self.file_bytes = self.path.read_bytes()


def test_nan_loss_raises_training_error_naming_the_step_and_changes_nothing(tmp_path):
    ds = blobs(20)
    x = ds.arrays[0]
    path = tmp_path / "ckpt.safetensors"
    snap = SnapshotEveryStep(path)
    ckpt = ModelCheckpoint(path, every_n_steps=1)
    # 5 batches of 4 per epoch, no shuffle: sample 10 is in batch 3; epoch 2 -> step 5 + 3
    trainer = _trainer(mlp(), callbacks=[Poison(x, 2, 10), snap, ckpt], seed=0)
    with pytest.raises(TrainingError) as exc:
        trainer.fit(ds, epochs=3, batch_size=4, shuffle=False)
    msg = str(exc.value)
    assert "nan" in msg
    assert "epoch 2" in msg and "batch 3 of 5" in msg and "step 8" in msg
    assert trainer.step == 7 and snap.last[0] == 7
    assert_weights_equal(weights(trainer.model), snap.last[1])
    state = load_checkpoint(path)  # the last checkpoint is from step 7, before the NaN
    assert state["trainer"]["step"] == 7 and ckpt.saves == 7 + 1  # + epoch 1's end
    assert path.read_bytes() == snap.file_bytes  # not rewritten after step 7
    for k, v in state["model"].items():
        assert np.array_equal(v.data, snap.last[1][k])
    assert len(trainer.history) == 1


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_infinite_loss_from_a_diverging_lr_is_caught():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((32, 2)) * 1e3).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    bp.manual_seed(0)
    model = bp.nn.Linear(2, 1)
    trainer = Trainer(model, bp.nn.MSELoss(), bp.optim.SGD(model.parameters(), lr=10.0),
                      progress=False, seed=0)
    with pytest.raises(TrainingError, match=r"(inf|nan).*epoch \d+, batch \d+ of 4 \(step \d+"):
        trainer.fit(TensorDataset(x, y), epochs=50, batch_size=8)
    assert all(np.isfinite(p.data).all() for p in model.parameters())


# --- ProgressBar and EpochLogger ---
def test_progress_bar_forced_writes_loss_and_rate(monkeypatch):
    tqdm = pytest.importorskip("tqdm")

    class EagerTqdm(tqdm.tqdm):  # tqdm redraws at most every 0.1 s: these epochs are faster
        def __init__(self, *args, **kwargs):
            super().__init__(*args, mininterval=0, **kwargs)

    monkeypatch.setattr(tqdm, "tqdm", EagerTqdm)
    out = io.StringIO()
    _trainer(mlp(), callbacks=[ProgressBar(file=out, force=True)], seed=0).fit(
        blobs(60), epochs=2, batch_size=3)
    text = out.getvalue()
    assert "samples/s" in text and "loss" in text and "accuracy" in text
    assert "epoch 2/2" in text and "20/20" in text


def test_progress_bar_is_quiet_on_a_non_terminal():
    out = io.StringIO()
    _trainer(mlp(), callbacks=[ProgressBar(file=out)], seed=0).fit(blobs(50), epochs=2,
                                                                     batch_size=5)
    assert out.getvalue() == ""


def test_default_progress_bar_adds_nothing_to_a_non_terminal_stderr(capsys):
    _trainer(mlp(), progress=True, seed=0).fit(blobs(20), epochs=1, batch_size=5)
    assert capsys.readouterr().err == ""


def test_epoch_logger_prints_one_line_per_epoch():
    lines = []
    history = _trainer(mlp(), callbacks=[EpochLogger(print_fn=lines.append)], seed=0).fit(
        blobs(50), epochs=3, batch_size=10)
    assert len(lines) == 3
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {epoch}/3")
        assert f"loss {history['loss'][epoch - 1]:.4f}" in line
        assert "lr 0.01" in line
