"""Ctrl-C and SIGTERM during ``fit``: stop between steps, never inside an update.

Python's default Ctrl-C raises ``KeyboardInterrupt`` wherever the program is, for example
halfway through ``optimizer.step()`` with half of the parameters updated; SIGTERM (what
schedulers and ``docker stop`` send) kills the process outright. While ``fit`` runs, these
signals are instead turned into ``TrainingInterrupted``, raised at once while a step is still
only computing (forward, loss, backward: the trainer then undoes what that computation changed,
the RNG draws and BatchNorm's running statistics) and deferred to the end of the step while it
updates anything a checkpoint holds. Either way the trainer ends in the state after its last
completed step, so ``save_checkpoint`` then writes a checkpoint that resumes exactly.
"""

from __future__ import annotations

import signal
import threading

SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` stopped on SIGINT (Ctrl-C) or SIGTERM, between two steps.

    A ``KeyboardInterrupt``, so code that handles Ctrl-C keeps working. The trainer holds the
    state after its last completed step (``trainer.step``), which ``save_checkpoint`` saves.

    Attributes:
        signum: the signal received.
    """

    def __init__(self, signum: int, text: str | None = None) -> None:
        self.signum = signum
        super().__init__(text or f"stopped by {SIGNAL_NAMES.get(signum, signum)}")


def raise_interrupted(signum, frame) -> None:
    """A signal handler that raises ``TrainingInterrupted`` wherever the program is (what Python
    does for SIGINT by default). ``StopSignals`` refines it to between two steps during ``fit``;
    the ``backprop`` command installs it for SIGTERM so that start-up and plotting stop cleanly
    too."""
    raise TrainingInterrupted(signum)


class StopSignals:
    """While active (``with``), SIGINT and, with ``sigterm``, SIGTERM raise
    ``TrainingInterrupted``: immediately, or at ``raise_pending()`` when ``deferring`` is set.

    A signal whose handler is neither Python's default nor ``raise_interrupted`` is left alone
    (someone else handles it), and so is everything outside the main thread, where Python
    cannot install handlers.
    """

    def __init__(self, sigterm: bool) -> None:
        # the handlers this replaces: Python's defaults, or one that raises anywhere
        self.wanted = {signal.SIGINT: (signal.default_int_handler, raise_interrupted)}
        if sigterm:
            self.wanted[signal.SIGTERM] = (signal.SIG_DFL, raise_interrupted)
        self.previous: dict[int, object] = {}
        self.deferring = False
        self.pending: int | None = None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum, defaults in self.wanted.items():
                if signal.getsignal(signum) in defaults:
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.deferring:
            self.pending = signum
        else:
            raise TrainingInterrupted(signum)

    def raise_pending(self) -> None:
        """End a deferred section: raise for a signal that came during it."""
        self.deferring = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise TrainingInterrupted(signum)
