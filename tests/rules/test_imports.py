"""backprop.rules loads on first use, like nn and optim: ``import backprop`` stays NumPy-only."""

import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_backprop_does_not_import_rules_and_the_attribute_loads_it():
    code = ("import sys, backprop as bp\n"
            "print('backprop.rules' in sys.modules, 'backprop.nn' in sys.modules)\n"
            "fa = bp.rules.FALinear\n"
            "print('backprop.rules' in sys.modules, 'rules' in dir(bp), fa.__module__)\n")
    assert _run(code).splitlines() == ["False False", "True True backprop.rules.fa"]


def test_from_backprop_import_rules_works():
    assert _run("from backprop import rules; print(sorted(rules.__all__)[:3])") == \
        "['DFA', 'DirectFeedback', 'FAConv2d']"
