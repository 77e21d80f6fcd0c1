"""The two ways a ``backprop`` command fails on a user's mistake, each with one readable line.

``UsageError`` is a bad command line or config (exit status 2, as argparse); ``RunError`` is a
run that could not be done or went wrong (exit status 1); ``Interrupted`` is a run stopped by
Ctrl-C (exit status 130) or SIGTERM (143), 128 plus the signal's number as shells report it.
``backprop.cli.main`` prints each as ``backprop <command>: error: <message>`` with no traceback.
"""

from __future__ import annotations


class UsageError(Exception):
    """A bad flag value, model/dataset combination or config key: exit status 2."""

    exit_status = 2


class RunError(Exception):
    """Missing or malformed data, a corrupt checkpoint, a diverged run: exit status 1."""

    exit_status = 1


class Interrupted(RunError):
    """A command stopped by a signal (SIGINT, SIGTERM): exit status 128 + the signal number."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum


def describe_os_error(exc: OSError) -> str:
    """An OSError as the end of an error line: ``<file>: <reason> (errno N)``."""
    where = f"{exc.filename}: " if exc.filename else ""
    code = f" (errno {exc.errno})" if exc.errno else ""
    return f"{where}{exc.strerror or exc}{code}"
