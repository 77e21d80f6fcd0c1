"""The package as a whole: import hygiene, version, the demo job, the doctests."""

import doctest
import importlib
import io
import pkgutil
import subprocess
import sys

import pytest

import backprop as bp
from backprop import _fast
from backprop.__main__ import main, train_xor


def test_import_backprop_imports_numpy_and_nothing_else_third_party():
    code = (
        "import sys; before = set(sys.modules); import backprop; "
        "new = [sys.modules[m] for m in set(sys.modules) - before]; "
        "third = {m.__name__.split('.')[0] for m in new "
        "if 'site-packages' in (getattr(m, '__file__', None) or '')}; "
        "print(','.join(sorted(third - {'backprop', 'numpy'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import backprop pulled in: {out.stdout.strip()}"


def test_version_is_exposed():
    assert isinstance(bp.__version__, str) and bp.__version__.count(".") == 2


def test_xor_demo_loss_falls_and_it_learns_xor():
    out = io.StringIO()
    final = train_xor(epochs=2000, out=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("epoch")]
    losses = [float(line.split()[-1]) for line in lines]
    assert losses[0] > 0.2 and final < 0.01
    assert all(b <= a for a, b in zip(losses[1:], losses[2:]))  # falling after the start
    assert "1 xor 1 -> 0.0" in out.getvalue()


def test_demo_refuses_bad_arguments_with_exit_2(capsys):
    assert main(["demo", "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err


def test_python_dash_m_backprop_demo_runs():
    out = subprocess.run([sys.executable, "-m", "backprop", "demo", "--epochs", "50"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "epoch    50" in out.stdout


def _modules():
    for info in pkgutil.walk_packages(bp.__path__, "backprop."):
        if not info.name.endswith("__main__"):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_doctests(name):
    if name.startswith("backprop._fast.") and not _fast.is_available():
        pytest.skip("a numba kernel module: it needs the [fast] extra (pip install "
                    "'backprop[fast]')")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_python_examples_run():
    """The README's examples are code users paste: they must keep working."""
    import pathlib
    import re

    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["w"].grad.shape == (2, 3)
    assert namespace["loss"].item() < 1.0  # the digits model learned something in 10 epochs
