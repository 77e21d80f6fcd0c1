"""Smoke test of examples/learning_rules.py: two epochs of every rule in a plain loop (the full run
is by hand: see README "Beyond backprop")."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "learning_rules.py"


def test_every_rule_trains_in_the_plain_loop_and_reports_angles(capsys):
    spec = importlib.util.spec_from_file_location("learning_rules_example", SCRIPT)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--epochs", "2"])
    assert list(results) == ["backprop", "fa", "dfa", "ff", "perturbation"]
    assert all(0.3 < acc <= 1.0 for acc in results.values()), results  # chance: 0.1
    out = capsys.readouterr().out
    assert out.count("angle to the gradient") == 4  # fa and dfa, two epochs each
