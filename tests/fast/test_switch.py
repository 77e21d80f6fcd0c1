"""The fast path's switch: environment variable, flags(), and what happens without numba."""

import os
import subprocess
import sys

import pytest

from backprop import _fast
from backprop.backends import fast


def _run(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k != "BACKPROP_FAST"}  # unset unless given
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_environment_variable_turns_the_path_off():
    code = "from backprop import _fast; print(_fast.is_enabled())"
    assert _run(code, BACKPROP_FAST="0") == "False"
    assert _run(code, BACKPROP_FAST="off") == "False"
    if _fast.is_available():
        assert _run(code, BACKPROP_FAST="1") == "True"
        assert _run(code) == "True"


def test_import_backprop_does_not_import_numba():
    code = "import sys, backprop; print('numba' in sys.modules)"
    assert _run(code) == "False"


def test_flags_restore_the_previous_setting():
    before = fast.is_enabled()
    with fast.flags(enabled=False):
        assert not fast.is_enabled()
        assert _fast.kernels("anything") is None  # off: no module is even looked up
    assert fast.is_enabled() == before


def test_enabling_without_numba_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_fast, "_available", False)
    monkeypatch.setattr(_fast, "_enabled", None)
    with pytest.raises(RuntimeError, match=r"pip install 'backprop\[fast\]'"):
        fast.set_enabled(True)
    assert not fast.is_enabled()  # unavailable: off, whatever the environment says
