"""Ctrl-C (SIGINT) and SIGTERM during ``fit``: the step in progress is abandoned or finished,
never half done, so the trainer holds the state after its last completed step and a checkpoint
of it resumes to exactly the weights of an uninterrupted run.

The signals here are real (``signal.raise_signal``) and raised from inside the step at a chosen
point, so where they land is known; tests/cli/test_faults.py sends them to a real process.
"""

import signal

import pytest

import backprop as bp
from backprop.train import Callback, Trainer, TrainingInterrupted

from .helpers import assert_weights_equal, blobs, weights

EPOCHS, BATCH, N = 3, 8, 40  # 5 steps per epoch


def _model(seed=0):
    """Dropout (draws from the global RNG in forward) and BatchNorm (updates its buffers in
    forward): the two ways a forward pass changes state that a checkpoint holds."""
    bp.manual_seed(seed)
    return bp.nn.Sequential(bp.nn.Linear(4, 16), bp.nn.BatchNorm1d(16), bp.nn.ReLU(),
                            bp.nn.Dropout(0.3), bp.nn.Linear(16, 3))


class SignalAt(Callback):
    """Raises a real signal inside step ``step`` (1-based), after its backward pass: the
    optimizer update of that step has not happened yet."""

    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def on_after_backward(self, trainer):
        if trainer.step + 1 == self.step:
            signal.raise_signal(self.signum)


def _trainer(callbacks=(), loss_fn=None, **kw):
    if isinstance(loss_fn, InterruptingLoss):
        # the signal comes from the loss's Python code, which a replayed (compiled) step does
        # not run; a real signal interrupts a replayed step as it does an eager one
        kw.setdefault("compile", False)
    model = _model()
    return Trainer(model, loss_fn or bp.nn.CrossEntropyLoss(),
                   bp.optim.Adam(model.parameters(), lr=0.02), callbacks=list(callbacks),
                   seed=0, progress=False, **kw)


@pytest.fixture(scope="module")
def uninterrupted():
    trainer = _trainer()
    trainer.fit(blobs(N), epochs=EPOCHS, batch_size=BATCH)
    return weights(trainer.model), trainer.history.rows


def _resume_and_compare(trainer, tmp_path, uninterrupted):
    path = tmp_path / "c.safetensors"
    trainer.save_checkpoint(path)
    resumed = _trainer()
    resumed.load_checkpoint(path)
    resumed.fit(blobs(N), epochs=EPOCHS, batch_size=BATCH)
    assert_weights_equal(weights(resumed.model), uninterrupted[0])
    strip = [{k: v for k, v in r.items() if k != "time"} for r in resumed.history.rows]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in uninterrupted[1]]


class InterruptingLoss:
    """Cross-entropy that raises ``signum`` inside the loss of step ``step``: after the forward
    pass drew its dropout mask and moved BatchNorm's running statistics."""

    def __init__(self, step, signum):
        self.step, self.signum, self.calls = step, signum, 0
        self.inner = bp.nn.CrossEntropyLoss()

    def __call__(self, out, y):
        self.calls += 1
        if self.calls == self.step:
            signal.raise_signal(self.signum)
        return self.inner(out, y)


@pytest.mark.parametrize("step", [6, 8], ids=["first-batch-of-epoch-2", "mid-epoch-2"])
def test_ctrl_c_in_the_forward_pass_abandons_the_step_and_resumes_exactly(
        step, tmp_path, uninterrupted):
    trainer = _trainer(loss_fn=InterruptingLoss(step, signal.SIGINT))
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit(blobs(N), epochs=EPOCHS, batch_size=BATCH)
    assert info.value.signum == signal.SIGINT and isinstance(info.value, KeyboardInterrupt)
    assert trainer.step == step - 1  # the interrupted step was abandoned, not half applied
    assert "SIGINT" in str(info.value) and f"step {step - 1}" in str(info.value)
    _resume_and_compare(trainer, tmp_path, uninterrupted)


def test_sigterm_during_the_update_finishes_the_step_then_stops(tmp_path, uninterrupted):
    trainer = _trainer([SignalAt(7, signal.SIGTERM)], handle_sigterm=True)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit(blobs(N), epochs=EPOCHS, batch_size=BATCH)
    assert info.value.signum == signal.SIGTERM
    assert trainer.step == 7 and trainer.epoch == 1 and trainer.batch_in_epoch == 2
    _resume_and_compare(trainer, tmp_path, uninterrupted)


def test_sigterm_is_left_alone_unless_asked_for_and_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    seen = []

    def handler(signum, frame):
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)  # someone else's handler: kept
    try:
        trainer = _trainer([SignalAt(3, signal.SIGTERM)], handle_sigterm=True)
        trainer.fit(blobs(N), epochs=1, batch_size=BATCH)
        assert seen == [signal.SIGTERM] and trainer.step == 5
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert {s: signal.getsignal(s) for s in before} == before
