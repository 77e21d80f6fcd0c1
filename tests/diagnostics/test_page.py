"""The interactive page in a real browser (headless Chromium): stepping it shows the Python
trace's numbers, its keys and buttons move the step, and its screenshot is not blank."""

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from backprop.cli.explain import SNAPSHOTS
from tests.cli.helpers import run

CHROMIUM = os.environ.get("BACKPROP_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")


def chromium(*args, timeout=90) -> str:
    # root in CI: Chromium refuses to run as root without --no-sandbox
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--user-data-dir=" + os.environ.get("TMPDIR", "/tmp") +
           f"/bp-chromium-{os.getpid()}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "xor.html"
    from backprop.cli.main import main
    assert main(["explain", "--html", str(path)]) == 0
    text = path.read_text()
    trace = json.loads(re.search(r'<script type="application/json" id="trace">(.*?)</script>',
                                 text, re.S).group(1))
    return path, text, trace


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def row(value, samples):
    if isinstance(value, list) and len(value) == samples and samples > 1:
        return value[0]
    return value


def test_page_is_self_contained_and_embeds_the_trace(page, capsys):
    path, text, trace = page
    assert not re.search(r'(src|href)\s*=\s*"https?:', text)
    assert "<script src" not in text and "<link" not in text
    status, out, _ = run(capsys, "explain", "--format", "json")
    assert status == 0
    ref = json.loads(out)
    assert [n["id"] for n in trace["nodes"]] == [n["id"] for n in ref["nodes"]]
    assert trace["gradients"] == ref["gradients"]
    assert [s["step"] for s in trace["steps"]] == list(SNAPSHOTS)


@needs_chromium
def test_stepping_the_page_shows_the_python_trace(page):
    path, _, trace = page
    dom = chromium("--dump-dom", path.as_uri() + "#selftest")
    result = json.loads(html.unescape(
        re.search(r'<pre id="selftest-result">(.*?)</pre>', dom, re.S).group(1)))
    nodes = {n["id"]: n for n in trace["nodes"]}
    ops = [n["id"] for n in trace["nodes"] if n["op"] not in ("param", "input", "const")]
    order = ops + trace["backward_order"]
    samples = trace["meta"]["samples"]
    assert [s["node"] for s in result["steps"]] == order
    assert result["S"] == len(order) == 14
    for shown in result["steps"]:
        node = nodes[shown["node"]]
        expected = np.ravel(row(node["value"], samples))
        np.testing.assert_allclose(numbers(shown["value"]), expected, rtol=2e-3, atol=2e-4)
        if shown["step"] > len(ops):  # backward: the gradient is shown once it is computed
            grad = np.ravel(row(node["upstream_grad"], samples))
            np.testing.assert_allclose(numbers(shown["grad"]), grad, rtol=2e-3, atol=1e-7)
        else:
            assert shown["grad"] == ""
    s = result["S"]
    assert result["keys"] == [s, s - 1, s - 2, s - 1, s - 2]  # Next at the end, ←, ←, →, Back
    losses = [float(d["loss"]) for d in result["descent"]]
    assert [d["step"] for d in result["descent"]] == list(SNAPSHOTS)
    np.testing.assert_allclose(losses, [q["loss"] for q in trace["steps"]], rtol=2e-3)
    assert losses[-1] < losses[0] / 100  # the loss falls as the learner steps
    assert "n3 = Addmm(n2, 2.weight, 2.bias)" in result["clicked"] \
        and "∂L/∂n2[0,0]" in result["clicked"]
    # the graph's SVG nodes carry their numbers
    match = re.search(r'data-node="n3" data-value="([^"]*)" data-grad="([^"]*)"', dom)
    np.testing.assert_allclose(json.loads(html.unescape(match.group(1))), nodes["n3"]["value"])
    np.testing.assert_allclose(json.loads(html.unescape(match.group(2))),
                               nodes["n3"]["upstream_grad"])


@needs_chromium
def test_screenshot_at_1280x800_is_not_blank(page, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    path, _, _ = page
    shot = tmp_path / "page.png"
    chromium("--window-size=1280,800", f"--screenshot={shot}", path.as_uri() + "#step=14")
    pixels = image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (800, 1280)
    not_background = np.mean(np.abs(pixels - pixels[0, 0]).sum(axis=-1) > 0.1)
    assert not_background > 0.05  # text, boxes and edges cover a good part of the page
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert colours > 50
