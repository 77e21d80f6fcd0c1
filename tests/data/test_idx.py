"""The IDX reader (MNIST, Fashion-MNIST) on small files written here, then on the real MNIST."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from backprop.data.datasets import MNIST, DatasetError, FashionMNIST, read_idx

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MNIST_DIR = REPO_ROOT / ".." / "shared" / "data" / "mnist"
MNIST_DIR = Path(os.environ.get("BACKPROP_MNIST_DIR", DEFAULT_MNIST_DIR))


def _idx_bytes(arr: np.ndarray, magic: int | None = None, dims=None) -> bytes:
    ndim = arr.ndim
    magic = (0x08 << 8 | ndim) if magic is None else magic
    dims = arr.shape if dims is None else dims
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return header + arr.astype(np.uint8).tobytes()


def _write(path: Path, content: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    return path


def _small_mnist(root: Path, rng, n=5, split="train", gz=True, labels_n=None, dotted=False):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, labels_n or n, dtype=np.uint8)
    sep = "." if dotted else "-"
    _write(root / f"{split}-images{sep}idx3-ubyte", _idx_bytes(images), gz)
    _write(root / f"{split}-labels{sep}idx1-ubyte", _idx_bytes(labels), gz)
    return images, labels


# --- small files written by the test ---


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_mnist_reads_small_idx_files(tmp_path, rng, gz, train):
    images, labels = _small_mnist(tmp_path, rng, n=7, split="train" if train else "t10k", gz=gz)
    ds = MNIST(tmp_path, train=train)
    assert ds.data.shape == (7, 1, 28, 28) and ds.data.dtype == np.float32
    assert ds.targets.dtype == np.int64 and len(ds) == 7
    np.testing.assert_array_equal(ds.data[:, 0], images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.targets, labels)
    assert ds.classes == [str(d) for d in range(10)]


def test_mnist_accepts_the_dotted_names_gunzip_n_restores(tmp_path, rng):
    images, _ = _small_mnist(tmp_path, rng, n=3, gz=False, dotted=True)
    np.testing.assert_array_equal(MNIST(tmp_path).data[:, 0] * 255, images)


def test_fashion_mnist_reads_the_same_format_with_its_classes(tmp_path, rng):
    _, labels = _small_mnist(tmp_path, rng, n=4)
    ds = FashionMNIST(tmp_path)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    np.testing.assert_array_equal(ds.targets, labels)


def test_read_idx_returns_the_header_shape(tmp_path, rng):
    arr = rng.integers(0, 256, (2, 3, 4), dtype=np.uint8)
    path = _write(tmp_path / "x-idx3-ubyte", _idx_bytes(arr), gz=True)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_truncated_raw_file_names_file_expected_and_found_sizes(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=5, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError) as exc:
        MNIST(tmp_path)
    msg = str(exc.value)
    assert str(path) in msg and "truncated" in msg
    assert f"expected {16 + 5 * 784:,} bytes" in msg and f"found {16 + 5 * 784 - 100:,}" in msg
    assert "yann.lecun.com" in msg  # where to get it


def test_truncated_gz_content_is_caught_after_decompression(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=5, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-2]))
    with pytest.raises(DatasetError, match=r"expected 13 bytes \(after decompression\).*found 11"):
        MNIST(tmp_path)


def test_cut_off_gzip_stream_is_a_dataset_error(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=5, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="cannot be decompressed") as exc:
        MNIST(tmp_path)
    assert str(path) in str(exc.value)


def test_garbage_gz_file_is_a_dataset_error(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=2, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        MNIST(tmp_path)


def test_padded_file_is_rejected_too(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=2, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DatasetError, match="longer than its header says"):
        MNIST(tmp_path)


def test_wrong_magic_names_expected_and_found_numbers(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=3, gz=False)
    labels = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(labels)  # a label file posing as images
    with pytest.raises(DatasetError) as exc:
        MNIST(tmp_path)
    msg = str(exc.value)
    assert "train-images-idx3-ubyte" in msg
    assert "expected magic number 2051 (0x00000803" in msg and "found 2049 (0x00000801" in msg


def test_non_idx_bytes_are_rejected_by_read_idx(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x50\x4b\x03\x04" + bytes(20))  # a zip file's signature
    with pytest.raises(DatasetError, match="expected an IDX magic number.*50 4b 03 04"):
        read_idx(path)


def test_count_mismatch_between_images_and_labels(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=5, labels_n=4, gz=True)
    with pytest.raises(DatasetError) as exc:
        MNIST(tmp_path)
    msg = str(exc.value)
    assert "train-labels-idx1-ubyte.gz" in msg and "expected 5 labels" in msg and "found 4" in msg


def test_header_count_larger_than_the_data_is_a_size_error(tmp_path, rng):
    images, _ = _small_mnist(tmp_path, rng, n=3, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images, dims=(4, 28, 28)))
    with pytest.raises(DatasetError, match=r"expected 3,152 bytes.*found 2,368"):
        MNIST(tmp_path)


def test_wrong_image_dimensions_are_named(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=2, gz=False)
    odd = rng.integers(0, 256, (2, 28, 27), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(odd))
    with pytest.raises(DatasetError, match="expected dimensions N x 28 x 28, found 2 x 28 x 27"):
        MNIST(tmp_path)


def test_labels_out_of_range_are_named(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=3, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([1, 12, 3])))
    with pytest.raises(DatasetError, match="expected labels 0..9, found 12 at label 1"):
        MNIST(tmp_path)


def test_missing_file_says_which_and_where_to_get_it(tmp_path, rng):
    _small_mnist(tmp_path, rng, n=2, gz=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError) as exc:
        MNIST(tmp_path)
    msg = str(exc.value)
    assert "train-labels-idx1-ubyte" in msg and "found no such file" in msg
    assert "https://" in msg


def test_missing_fashion_file_points_to_fashion_mnist(tmp_path):
    with pytest.raises(DatasetError, match="zalando-research/fashion-mnist"):
        FashionMNIST(tmp_path, train=False)


# --- the real MNIST files ---


@pytest.fixture(scope="module")
def real_mnist():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file() \
            and not (MNIST_DIR / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"real MNIST not found in {MNIST_DIR} (set BACKPROP_MNIST_DIR)")
    return MNIST(MNIST_DIR, train=True), MNIST(MNIST_DIR, train=False)


def test_real_mnist_sizes_and_label_counts(real_mnist):
    train, test = real_mnist
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.data.shape == (60_000, 1, 28, 28) and train.data.dtype == np.float32
    assert np.bincount(train.targets).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                   6265, 5851, 5949]
    assert np.bincount(test.targets).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                  974, 1009]


def test_real_mnist_first_labels(real_mnist):
    train, test = real_mnist
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.targets[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_real_mnist_pixel_statistics(real_mnist):
    for ds, mean, std in zip(real_mnist, (0.1307, 0.1325), (0.3081, 0.3105)):
        assert ds.data.min() == 0.0 and ds.data.max() == 1.0
        assert ds.data.mean(dtype=np.float64) == pytest.approx(mean, abs=1e-4)
        assert ds.data.std(dtype=np.float64) == pytest.approx(std, abs=1e-4)


def test_files_with_no_images_are_refused(tmp_path, rng):
    # zero images is a valid IDX file, and an empty training set that crashes much later
    _small_mnist(tmp_path, rng, n=0)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz: .*0 images"):
        MNIST(tmp_path)


def test_unreadable_files_say_permission_denied_not_damaged(tmp_path, rng, monkeypatch):
    # CI runs as root, which reads everything: inject the error the OS gives a normal user
    _small_mnist(tmp_path, rng, n=3, gz=False)
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if self.parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(DatasetError, match="cannot read.*Permission denied"):
        MNIST(tmp_path)
    monkeypatch.setattr(Path, "stat", real_stat)

    def read_bytes(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(DatasetError, match="cannot read.*Permission denied") as info:
        MNIST(tmp_path)
    assert "truncated" not in str(info.value) and "decompress" not in str(info.value)
