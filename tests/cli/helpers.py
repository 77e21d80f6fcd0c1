"""What the CLI tests share: running the command in-process and as a real process, stopping a
real run at a point it announces, and the one-error-line check."""

import csv
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import main
from backprop.cli.main import CHECKPOINT
from backprop.train import load_checkpoint


def run(capsys, *argv) -> tuple[int, str, str]:
    """main(argv) in-process: (exit status, stdout, stderr); argparse's exits are caught."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def cli(*argv, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """``python -m backprop ...`` in a real process."""
    return subprocess.run([sys.executable, "-m", "backprop", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def history_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def weights(run_dir: Path) -> dict:
    return {k: v.data for k, v in load_checkpoint(run_dir / CHECKPOINT)["model"].items()}


def one_error(status, err, expected_status, *words):
    """The command failed with ``expected_status`` and exactly one ``error:`` line on stderr
    (no traceback) holding every one of ``words``."""
    assert status == expected_status, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]


class Paused:
    """``backprop train *argv`` in a real process, run until it announces a pause (the
    BACKPROP_PAUSE_* hooks of ``backprop._faults``) and stopped itself with SIGSTOP.

    Every signal is then sent at a known point of the run, never after a guessed sleep.
    """

    def __init__(self, argv: list, env: dict, marker: str, cwd=None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backprop", "train", *map(str, argv)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env}, cwd=cwd)
        self.lines = []
        for line in self.proc.stderr:  # blocks until the run announces the pause or ends
            self.lines.append(line)
            if marker in line:
                break
        else:
            status = self.proc.wait()
            self.proc.stderr.close()
            pytest.fail(f"the run ended (status {status}) before {marker!r}: "
                        + "".join(self.lines))
        # The line comes just before the process stops itself: wait until it has, or a SIGCONT
        # sent now could arrive first and the SIGSTOP after it would stop it for good.
        _, status = os.waitpid(self.proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.proc.stderr.close()
            pytest.fail(f"the run announced {marker!r} but ended (status "
                        f"{self.proc.returncode}) instead of stopping: " + "".join(self.lines))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self, *signals: int) -> tuple[int, str]:
        """Send ``signals`` in order, then let the process end: (its status, all of stderr).

        SIGINT and SIGTERM go to the process's main thread. Sent to the process, a signal that
        arrives while it is stopped waits and is taken, after SIGCONT, by whichever of its
        threads (BLAS workers too) runs first; the main thread then sees it a moment later, at
        a step that depends on the machine's load."""
        try:
            for signum in signals:
                if signum in (signal.SIGINT, signal.SIGTERM):
                    _signal_main_thread(self.proc.pid, signum)
                else:
                    self.proc.send_signal(signum)
            rest = self.proc.stderr.read()
            return self.proc.wait(timeout=120), "".join(self.lines) + rest
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stderr.close()


def _signal_main_thread(pid: int, signum: int) -> None:
    """Send ``signum`` to the main thread of process ``pid`` (its thread id is its pid)."""
    tgkill = getattr(ctypes.CDLL(None, use_errno=True), "tgkill", None)
    if tgkill is None:  # not glibc >= 2.30: the process gets it, to any thread
        os.kill(pid, signum)
    elif tgkill(pid, pid, signum) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def paused_at_step(argv: list, step: int, **kwargs) -> Paused:
    """``backprop train *argv`` stopped right after step ``step`` (its callbacks included, so a
    checkpoint due at that step is on disk)."""
    return Paused(argv, {"BACKPROP_PAUSE_AFTER_STEP": str(step)},
                  f"paused after step {step} ", **kwargs)


def kill_when_paused(argv: list, step: int) -> str:
    """Run ``backprop train *argv`` until it pauses after ``step``, then SIGKILL it: a kill at a
    known point, not a guess. Returns its stderr."""
    status, err = paused_at_step(argv, step).finish(signal.SIGKILL)
    assert status == -signal.SIGKILL, err
    return err
