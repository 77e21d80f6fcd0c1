"""The two ways a ``backprop`` command fails on a user's mistake, each with one readable line.

``UsageError`` is a bad command line or config (exit status 2, as argparse); ``RunError`` is a
run that could not be done or went wrong (exit status 1). ``backprop.cli.main`` prints either as
``backprop <command>: error: <message>`` with no traceback.
"""

from __future__ import annotations


class UsageError(Exception):
    """A bad flag value, model/dataset combination or config key: exit status 2."""

    exit_status = 2


class RunError(Exception):
    """Missing or malformed data, a corrupt checkpoint, a diverged run: exit status 1."""

    exit_status = 1
