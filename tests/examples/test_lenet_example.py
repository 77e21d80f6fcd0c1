"""Smoke tests of examples/lenet_mnist.py on a tiny synthetic MNIST written in tmp_path (the real
run, to >= 99% test accuracy, is by hand: see README "Examples")."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "lenet_mnist.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("lenet_mnist_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, rng, n_train=96, n_test=40) -> Path:
    """Uncompressed IDX files in MNIST's layout: class k is a bright k-th row band, so it is
    learnable."""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 2 + 2 * k:4 + 2 * k, 4:24] = 255
        _write_idx(root / f"{split}-images-idx3-ubyte", images, 2051)
        _write_idx(root / f"{split}-labels-idx1-ubyte", labels, 2049)
    return root


def test_main_trains_and_reports_accuracy_on_a_tiny_idx_dataset(tmp_path, rng, capsys):
    root = _fake_mnist(tmp_path, rng)
    example = _load_example()
    accuracy = example.main(["--data-dir", str(root), "--epochs", "3", "--batch-size", "32",
                             "--lr", "0.01", "--seed", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("train 96 / test 40 images")
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    losses = [float(line.split("train loss ")[1].split(",")[0]) for line in epochs]
    assert losses[-1] < losses[0]
    assert lines[-1] == f"test accuracy: {100 * accuracy:.2f}%"
    assert accuracy >= 0.3  # chance is 0.1; the row bands are easy to learn


def test_main_is_reproducible_with_a_seed(tmp_path, rng, capsys):
    root = _fake_mnist(tmp_path, rng, n_train=64, n_test=20)
    example = _load_example()
    args = ["--data-dir", str(root), "--epochs", "1", "--batch-size", "16", "--seed", "3"]
    example.main(args)
    first = [line for line in capsys.readouterr().out.splitlines() if "loss" in line]
    example.main(args)
    second = [line for line in capsys.readouterr().out.splitlines() if "loss" in line]
    strip_time = lambda lines: [line.rsplit(",", 1)[0] for line in lines]
    assert strip_time(first) == strip_time(second)


def test_limit_uses_only_the_first_images(tmp_path, rng, capsys):
    root = _fake_mnist(tmp_path, rng)
    _load_example().main(["--data-dir", str(root), "--epochs", "1", "--limit", "10"])
    assert "train 10 / test 10 images" in capsys.readouterr().out


@pytest.mark.parametrize("make", ["missing_dir", "empty_dir"])
def test_missing_data_gives_a_one_line_error_and_nonzero_exit(tmp_path, make):
    root = tmp_path / "nowhere"
    if make == "empty_dir":
        root.mkdir()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(root)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "train images file" in lines[0] and str(root) in lines[0]
    assert proc.stdout == ""


def test_data_dir_is_required():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "--data-dir" in proc.stderr and "Traceback" not in proc.stderr
