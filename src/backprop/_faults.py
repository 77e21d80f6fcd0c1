"""Deterministic pause points for tests that kill a training run.

Killing a run "a little after" something happens is a race: on an idle machine the run may
finish first. Tests instead set ``BACKPROP_PAUSE_AFTER_STEP=N`` (comma-separated for several
points) in the child's environment. When step N is complete, its callbacks included (so a
checkpoint due at step N is on disk), the process writes one line to stderr,

    backprop: paused after step N (BACKPROP_PAUSE_AFTER_STEP)

and stops itself with SIGSTOP. The test reads that line and then sends SIGKILL (or SIGTERM
followed by SIGCONT, or SIGCONT alone to let it go on). ``BACKPROP_PAUSE_BEFORE_REPLACE=NAME``
pauses the same way inside ``atomic_write`` of a file named NAME, when the new contents are
written to the temporary file and not yet renamed over the old one:

    backprop: paused before replacing NAME (BACKPROP_PAUSE_BEFORE_REPLACE)

Without the variables nothing happens; where there is no SIGSTOP (Windows) the hooks do nothing.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "BACKPROP_PAUSE_AFTER_STEP"
REPLACE_ENV = "BACKPROP_PAUSE_BEFORE_REPLACE"


def pause_steps() -> frozenset[int]:
    """The steps named in ``BACKPROP_PAUSE_AFTER_STEP`` (empty when unset or malformed)."""
    raw = os.environ.get(ENV, "")
    try:
        return frozenset(int(s) for s in raw.split(",") if s.strip())
    except ValueError:
        print(f"backprop: ignoring {ENV}={raw!r}: expected step numbers such as 37,100",
              file=sys.stderr)
        return frozenset()


def pause(step: int) -> None:
    """Announce the pause after ``step`` on stderr and stop this process until it gets SIGCONT
    (or dies)."""
    _stop(f"after step {step} ({ENV})")


def pause_before_replace(name: str) -> None:
    """Pause if ``BACKPROP_PAUSE_BEFORE_REPLACE`` names the file ``name`` being replaced."""
    if os.environ.get(REPLACE_ENV) == name:
        _stop(f"before replacing {name} ({REPLACE_ENV})")


def _stop(where: str) -> None:
    stop = getattr(signal, "SIGSTOP", None)
    if stop is None:
        return
    sys.stdout.flush()
    print(f"backprop: paused {where}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), stop)
