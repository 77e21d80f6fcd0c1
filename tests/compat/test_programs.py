"""Real PyTorch programs run with only their import lines changed (issue 15).

Each file in ``programs/`` is written for PyTorch, in its idiom (a ``device`` variable, a
``torch.utils.data`` loader with ``num_workers=2``, ``torch.save`` of a checkpoint dict and
``torch.load``, an evaluation loop with ``.eq().sum().item()``, an LBFGS closure, a small
Transformer, packed sequences). Each runs twice: as written, with torch, and with every
``import torch...`` / ``from torch... import`` line rewritten to backprop, nothing else
touched. The two runs must give the same results.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

PROGRAMS = Path(__file__).with_name("programs")


def backprop_source(source: str) -> str:
    """``source`` with its torch import lines pointed at backprop, and only those lines."""
    out = []
    for line in source.splitlines():
        if re.match(r"^import torch$", line):
            line = "import backprop as torch"
        elif re.match(r"^import torch\.", line):
            line = re.sub(r"^import torch\.", "import backprop.", line)
        elif re.match(r"^from torch(\.| )", line):
            line = re.sub(r"^from torch", "from backprop", line)
        out.append(line)
    return "\n".join(out) + "\n"


def _run(name: str, source: str) -> dict:
    namespace = {"__name__": f"program_{name}"}
    exec(compile(source, str(PROGRAMS / f"{name}.py"), "exec"), namespace)
    return namespace["RESULT"]


def _compare(ours, theirs, where, rtol):
    if isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for k in theirs:
            _compare(ours[k], theirs[k], f"{where}.{k}", rtol)
    elif isinstance(theirs, (list, tuple)) and theirs and isinstance(theirs[0], str):
        assert list(ours) == list(theirs), where
    elif isinstance(theirs, str) or isinstance(theirs, bool) or theirs is None:
        assert ours == theirs, where
    else:
        a, b = np.asarray(ours), np.asarray(theirs)
        assert a.shape == b.shape, f"{where}: shape {a.shape} vs {b.shape}"
        if b.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2, err_msg=where)


def test_only_import_lines_change():
    source = (PROGRAMS / "mnist_style.py").read_text()
    rewritten = backprop_source(source)
    changed = [(a, b) for a, b in zip(source.splitlines(), rewritten.splitlines()) if a != b]
    assert changed and all(a.startswith(("import torch", "from torch")) for a, _ in changed)
    assert ("import torch", "import backprop as torch") in changed
    assert ("import torch.nn.functional as F", "import backprop.nn.functional as F") in changed
    assert ("from torch.utils.data import DataLoader, TensorDataset",
            "from backprop.utils.data import DataLoader, TensorDataset") in changed
    assert "torch" not in rewritten.replace("import backprop as torch", "").split("import")[0]


# float32 programs agree to float32 round-off grown over a few dozen steps; float64 ones closer
@pytest.mark.parametrize("name, rtol", [
    ("mnist_style", 2e-4),
    ("lbfgs_fit", 1e-7),
    ("small_transformer", 1e-7),
    ("packed_lstm", 1e-9),
    ("tensor_idioms", 1e-7),
])
def test_program_gives_torch_s_results_under_backprop(name, rtol):
    source = (PROGRAMS / f"{name}.py").read_text()
    theirs = _run(name, source)
    ours = _run(name, backprop_source(source))
    _compare(ours, theirs, name, rtol)
