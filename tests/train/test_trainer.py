"""fit and Trainer: convergence, batching, validation, evaluate/predict, argument checks."""

import numpy as np
import pytest

import backprop as bp
import backprop.nn.functional as F
from backprop.data import DataLoader, TensorDataset
from backprop.data.datasets import load_digits, spirals, xor
from backprop.train import Trainer, fit

from .helpers import CountSteps, blobs, mlp


def _trainer(model, lr=0.01, **kw):
    kw.setdefault("progress", False)
    return Trainer(model, bp.nn.CrossEntropyLoss(), bp.optim.Adam(model.parameters(), lr=lr),
                   **kw)


def test_xor_full_batch_reaches_accuracy_one():
    bp.manual_seed(0)
    model = bp.nn.Sequential(bp.nn.Linear(2, 8), bp.nn.Tanh(), bp.nn.Linear(8, 2))
    history = fit(model, bp.nn.CrossEntropyLoss(), bp.optim.Adam(model.parameters(), lr=0.05),
                  xor(), epochs=200, batch_size="full", seed=0, progress=False)
    assert history["accuracy"][-1] == 1.0
    assert history["loss"][-1] < history["loss"][0] / 5
    assert history.epoch == list(range(1, 201))


def test_spirals_mlp_reaches_95_percent_train_accuracy():
    model = mlp(2, 64, 3, seed=0)
    history = fit(model, bp.nn.CrossEntropyLoss(), bp.optim.Adam(model.parameters(), lr=0.01),
                  spirals(), epochs=60, batch_size=32, seed=0, progress=False)
    assert history["accuracy"][-1] >= 0.95


@pytest.mark.slow
def test_digits_mlp_reaches_93_percent_test_accuracy():
    bp.manual_seed(0)
    model = bp.nn.Sequential(bp.nn.Flatten(), bp.nn.Linear(64, 64), bp.nn.ReLU(),
                             bp.nn.Linear(64, 10))
    trainer = _trainer(model, lr=0.01, seed=0)
    trainer.fit(load_digits(), epochs=10, batch_size=32)
    result = trainer.evaluate(load_digits(train=False))
    assert result["accuracy"] >= 0.93, result


@pytest.mark.parametrize("batch_size, steps, sizes", [
    (1, 50, [1] * 50), (32, 2, [32, 18]), ("full", 1, [50]), (None, 1, [50]), (50, 1, [50]),
    (49, 2, [49, 1]),
])
def test_optimizer_steps_per_epoch(batch_size, steps, sizes):
    model = mlp()
    trainer = _trainer(model, callbacks=[counter := CountSteps()], seed=0)
    calls = []
    real_step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (calls.append(1), real_step())
    trainer.fit(blobs(50), epochs=3, batch_size=batch_size)
    assert len(calls) == 3 * steps == trainer.step
    assert counter.per_epoch == {1: steps, 2: steps, 3: steps}
    assert counter.sizes == sizes * 3
    assert trainer.batches_per_epoch == steps


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -3}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"batch_size": "half"}, "batch_size"),
    ({"epochs": -1}, "epochs"),
    ({"epochs": 2.0}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"val_split": 1.0}, "val_split"),
    ({"val_split": -0.2}, "val_split"),
    ({"val_split": 1.5}, "val_split"),
])
def test_invalid_arguments_raise_value_error_naming_the_argument(kwargs, match):
    trainer = _trainer(mlp())
    with pytest.raises(ValueError, match=match) as exc:
        trainer.fit(blobs(20), **kwargs)
    bad = list(kwargs.values())[0]
    assert repr(bad) in str(exc.value)  # the message shows the offending value
    assert trainer.step == 0


def test_val_split_with_val_data_is_refused():
    ds = blobs(20)
    with pytest.raises(ValueError, match="val_data or val_split"):
        _trainer(mlp()).fit(ds, val_data=ds, val_split=0.2)


def test_val_split_on_a_dataloader_is_refused():
    with pytest.raises(ValueError, match="val_split"):
        _trainer(mlp()).fit(DataLoader(blobs(20), batch_size=4), val_split=0.2)


def test_val_split_adds_validation_columns_and_trains_on_the_rest():
    trainer = _trainer(mlp(), callbacks=[counter := CountSteps()], seed=3)
    history = trainer.fit(blobs(50), val_split=0.2, epochs=4, batch_size=8)
    assert history.columns == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                               "time"]
    assert all(isinstance(v, float) and np.isfinite(v) for v in history["val_loss"])
    assert all(0.0 <= v <= 1.0 for v in history["val_accuracy"])
    assert sum(counter.sizes) == 4 * 40  # 10 of the 50 samples held out
    assert history["val_loss"][-1] < history["val_loss"][0]


def test_no_validation_columns_without_validation_data():
    history = _trainer(mlp(), seed=0).fit(blobs(20), epochs=2, batch_size=8)
    assert history.columns == ["epoch", "loss", "accuracy", "lr", "time"]
    with pytest.raises(KeyError, match="val_loss"):
        history["val_loss"]


def test_train_loss_is_the_sample_weighted_mean_of_batch_losses():
    losses = []

    class Record(bp.train.Callback):
        def on_batch_end(self, trainer, logs):
            losses.append((logs["loss"], logs["size"]))

    history = _trainer(mlp(), callbacks=[Record()], seed=0).fit(blobs(50), epochs=1,
                                                                batch_size=32)
    expected = sum(v * n for v, n in losses) / 50
    assert history["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_evaluate_matches_cross_entropy_over_the_whole_set():
    model = mlp(dropout=0.5)
    trainer = _trainer(model, seed=0)
    trainer.fit(blobs(50), epochs=2, batch_size=8)
    data = blobs(300, seed=7)  # 300 > 256: two evaluation batches of unequal size
    x, y = data.tensors
    model.eval()
    with bp.no_grad():
        out = model(x)
        expected_loss = F.cross_entropy(out, y).item()
    expected_acc = float((out.data.argmax(1) == y.data).mean())
    model.train()
    result = trainer.evaluate(data)
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert result["accuracy"] == expected_acc
    assert model.training  # evaluate restores the mode
    # batch size must not matter beyond rounding, nor may a DataLoader
    for other in (trainer.evaluate(data, batch_size=1), trainer.evaluate(data, "full"),
                  trainer.evaluate(DataLoader(data, batch_size=7))):
        assert other["loss"] == pytest.approx(expected_loss, rel=1e-5)
        assert other["accuracy"] == expected_acc


def test_evaluate_does_not_change_the_weights_or_the_global_rng():
    model = mlp(dropout=0.5)
    trainer = _trainer(model, seed=0)
    before = {k: v.data.copy() for k, v in model.state_dict().items()}
    state = bp.random.default_generator().bit_generator.state
    trainer.evaluate(blobs(40))
    assert bp.random.default_generator().bit_generator.state == state
    for k, v in model.state_dict().items():
        assert np.array_equal(v.data, before[k])


def test_predict_equals_the_model_in_eval_mode():
    model = mlp(dropout=0.5)
    trainer = _trainer(model, seed=0)
    trainer.fit(blobs(50), epochs=1, batch_size=8)
    data = blobs(300, seed=4)
    x = data.arrays[0]
    model.eval()
    with bp.no_grad():
        expected = model(bp.Tensor(x)).data
    model.train()
    for source in (x, bp.Tensor(x), data, DataLoader(data, batch_size=64)):
        got = trainer.predict(source)
        assert isinstance(got, np.ndarray) and got.shape == (300, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(trainer.predict(x, batch_size=7), expected, rtol=1e-6,
                               atol=1e-6)
    assert model.training
    # dropout is off: two calls agree exactly
    assert np.array_equal(trainer.predict(x), trainer.predict(x))


def test_regression_records_loss_but_no_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)
    bp.manual_seed(0)
    model = bp.nn.Linear(3, 1)
    trainer = Trainer(model, F.mse_loss, bp.optim.Adam(model.parameters(), lr=0.05), seed=0,
                      progress=False)
    history = trainer.fit(TensorDataset(x, y), val_split=0.25, epochs=30, batch_size=16)
    assert "accuracy" not in history.columns and "val_accuracy" not in history.columns
    assert history["loss"][-1] < history["loss"][0] / 10
    result = trainer.evaluate(TensorDataset(x, y))
    assert set(result) == {"loss"}
    with bp.no_grad():
        expected = F.mse_loss(model(bp.Tensor(x)), bp.Tensor(y)).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-5)


def test_a_custom_dataloader_is_used_as_given():
    ds = blobs(50)
    loader = DataLoader(ds, batch_size=10, shuffle=False, drop_last=False)
    trainer = _trainer(mlp(), callbacks=[counter := CountSteps()], seed=0)
    history = trainer.fit(loader, epochs=2, batch_size=1)  # batch_size is the loader's
    assert trainer.loader is loader
    assert counter.sizes == [10] * 10
    assert len(history) == 2


def test_a_loader_yielding_non_pairs_is_refused():
    ds = TensorDataset(np.zeros((8, 4), dtype=np.float32))  # inputs only
    with pytest.raises(TypeError, match="pair"):
        _trainer(mlp()).fit(ds, epochs=1, batch_size=4)


def test_train_data_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="Dataset or a DataLoader"):
        _trainer(mlp()).fit(np.zeros((4, 4)), epochs=1)


def test_fit_counts_epochs_in_total_and_a_second_call_continues():
    trainer = _trainer(mlp(), seed=0)
    trainer.fit(blobs(20), epochs=2, batch_size=10)
    assert trainer.epoch == 2 and trainer.step == 4
    trainer.fit(blobs(20), epochs=2, batch_size=10)  # already there: nothing to do
    assert trainer.step == 4 and len(trainer.history) == 2
    trainer.fit(blobs(20), epochs=3, batch_size=10)
    assert trainer.epoch == 3 and trainer.step == 6 and trainer.history.epoch == [1, 2, 3]


def test_non_callback_objects_are_refused():
    with pytest.raises(TypeError, match="Callback"):
        _trainer(mlp(), callbacks=[object()])


def test_same_seed_same_run():
    runs = []
    for _ in range(2):
        model = mlp(dropout=0.3, seed=1)
        trainer = _trainer(model, seed=5)
        h = trainer.fit(blobs(50), epochs=3, batch_size=8)
        runs.append((h["loss"], {k: v.data.copy() for k, v in model.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        assert np.array_equal(runs[0][1][k], runs[1][1][k])


def test_empty_training_data_is_refused_before_any_epoch():
    # an empty set used to "train" silently: zero steps, no loss, NaN-free but meaningless
    empty = TensorDataset(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    trainer = _trainer(mlp())
    with pytest.raises(ValueError, match="fit: the training data are empty"):
        trainer.fit(empty, epochs=2)
    with pytest.raises(ValueError, match="fit: the training data are empty"):
        trainer.fit(DataLoader(empty, batch_size=4), epochs=2)
    assert trainer.step == 0 and len(trainer.history) == 0


def test_compiled_and_eager_training_are_identical():
    """Trainer(compile="auto"), the default, replays captured steps: with dropout, BatchNorm,
    gradient clipping (a callback between backward and update), a per-batch LR schedule and a
    last partial batch, every weight and every history value equals the eager run's."""
    from backprop.train import GradientClipping, LRSchedulerStep

    def run(compile):
        bp.manual_seed(0)
        model = bp.nn.Sequential(bp.nn.Linear(4, 16), bp.nn.BatchNorm1d(16), bp.nn.ReLU(),
                                 bp.nn.Dropout(0.2), bp.nn.Linear(16, 3))
        opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = bp.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
        trainer = Trainer(model, bp.nn.CrossEntropyLoss(), opt, seed=0, progress=False,
                          compile=compile,
                          callbacks=[GradientClipping(max_norm=0.5),
                                     LRSchedulerStep(sched, interval="batch")])
        trainer.fit(blobs(50), epochs=4, batch_size=16)  # batches 16, 16, 16, 2
        return trainer

    eager, compiled = run(False), run("auto")
    assert compiled._compiled[0]._entries, "the compiled step was never used"
    assert any(e.tape is not None for e in compiled._compiled[0]._entries.values())
    for (name, p), q in zip(eager.model.state_dict().items(),
                            compiled.model.state_dict().values()):
        assert np.asarray(p).tobytes() == np.asarray(q).tobytes(), name
    for a, b in zip(eager.history.rows, compiled.history.rows):
        assert {k: v for k, v in a.items() if k != "time"} == \
            {k: v for k, v in b.items() if k != "time"}


def test_an_uncapturable_step_warns_only_when_compile_was_asked_for(recwarn):
    """A model whose forward reads a value back (``item()``) cannot be captured: the default
    ("auto") trains eagerly in silence; compile=True says why in a CompileWarning."""
    class ReadsBack(bp.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = bp.nn.Linear(4, 3)

        def forward(self, x):
            h = self.lin(x)
            return h * 2.0 if h.sum().item() > -1e9 else h

    def run(compile):
        bp.manual_seed(0)
        model = ReadsBack()
        _trainer(model, compile=compile).fit(blobs(20), epochs=2, batch_size=10)
        return model.lin.weight.detach().numpy().copy()

    auto = run("auto")
    assert not [w for w in recwarn if issubclass(w.category, bp.CompileWarning)]
    with pytest.warns(bp.CompileWarning, match=r"item\(\)"):
        asked = run(True)
    np.testing.assert_array_equal(auto, asked)
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        _trainer(ReadsBack(), compile="yes")
