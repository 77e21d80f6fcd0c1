"""Smoke test of examples/vanishing_gradients.py for one epoch (the real run is by hand: see
README "Examples"): the deep sigmoid network's monitor warns, ReLU + He's does not."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "vanishing_gradients.py"


def _load():
    spec = importlib.util.spec_from_file_location("vanishing_gradients_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_epoch_sigmoid_vanishes_and_relu_he_does_not():
    example = _load()
    sigmoid = example.train("sigmoid", epochs=1)
    relu = example.train("relu-he", epochs=1)
    assert any("vanish in layer '1'" in w for w in sigmoid["warnings"])
    assert relu["warnings"] == []
    assert example.first_last_ratio(sigmoid["monitor"]) < 1e-5
    assert example.first_last_ratio(relu["monitor"]) > 1e-2
