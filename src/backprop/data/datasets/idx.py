"""MNIST and Fashion-MNIST from their four original IDX files, compressed (.gz) or not.

IDX layout (every header integer is a big-endian uint32): magic ``00 00 TT DD`` where TT is the
element type (0x08 = uint8) and DD the number of dimensions, then DD sizes, then the elements,
with no padding. So an image file of N 28x28 images is 16 + N*784 bytes, a label file 8 + N bytes.
Every one of those facts is checked, and a file that breaks one raises ``DatasetError``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from backprop.data.dataset import DatasetError, LabeledDataset

# type byte -> element dtype (big-endian where it matters)
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _describe_magic(magic: int) -> str:
    kind, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    dtype = _IDX_TYPES.get(kind)
    what = f"{dtype.name} data" if dtype is not None and magic >> 16 == 0 else "not an IDX magic"
    return f"{magic} (0x{magic:08X}: {what}, {ndim} dimensions)"


def _unreadable(path: Path, exc: OSError) -> DatasetError:
    return DatasetError(f"{path}: cannot read the file: {exc.strerror or exc}; check its "
                        "permissions (and those of the directories above it)")


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but a directory that may not be searched is a DatasetError (pathlib
    raises PermissionError there) rather than a traceback."""
    try:
        return path.is_file()
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _read_bytes(path: Path, hint: str) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except OSError as exc:
        if exc.errno is not None:  # the OS refused (permissions, I/O): not a damaged file
            raise _unreadable(path, exc) from None
        raise _damaged(path, exc, hint) from None
    except (EOFError, zlib.error) as exc:
        raise _damaged(path, exc, hint) from None


def _damaged(path: Path, exc: Exception, hint: str) -> DatasetError:
    # gzip.BadGzipFile is an OSError without an errno; a cut-off .gz raises EOFError
    return DatasetError(
        f"{path}: expected a complete gzip-compressed IDX file, but it cannot be "
        f"decompressed ({type(exc).__name__}: {exc}); the file is truncated or damaged. "
        f"{hint}"
    )


def read_idx(path: str | os.PathLike, magic: int | None = None, shape: tuple | None = None,
             hint: str = "") -> np.ndarray:
    """Read one IDX file (``.gz`` or uncompressed) into an array, checking it fully.

    Args:
        path: the file.
        magic: the expected magic number (2051 for images, 2049 for labels); None accepts any
            valid one.
        shape: expected sizes, ``None`` for a size not checked, e.g. ``(None, 28, 28)``.
        hint: appended to every error message (where to get the dataset).

    Returns:
        the elements, shaped by the header, in the file's type (uint8 for MNIST).

    Raises:
        DatasetError: unreadable, wrong magic, wrong dimensions, or a size that does not match
            the header (truncated or padded file), naming the file, what was expected and what
            was found.
    """
    path = Path(path)
    hint = f" {hint}" if hint else ""
    if not _is_file(path):
        raise DatasetError(f"{path}: file not found.{hint}")
    buf = _read_bytes(path, hint.strip())
    raw = " (after decompression)" if path.suffix == ".gz" else ""
    if len(buf) < 4:
        raise DatasetError(
            f"{path}: expected an IDX file starting with a 4-byte magic number, found only "
            f"{len(buf)} bytes{raw}.{hint}"
        )
    found = int.from_bytes(buf[:4], "big")
    kind, ndim = buf[2], buf[3]
    if magic is not None and found != magic:
        raise DatasetError(
            f"{path}: expected magic number {_describe_magic(magic)} at offset 0, found "
            f"{_describe_magic(found)}.{hint}"
        )
    if buf[0] != 0 or buf[1] != 0 or kind not in _IDX_TYPES or ndim == 0:
        raise DatasetError(
            f"{path}: expected an IDX magic number (00 00, a type byte, a dimension count), found "
            f"bytes {buf[:4].hex(' ')}.{hint}"
        )
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DatasetError(
            f"{path}: expected a {header}-byte header for {ndim} dimensions, found only "
            f"{len(buf)} bytes{raw}: the file is truncated.{hint}"
        )
    dims = tuple(int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if shape is not None:
        if len(shape) != ndim or any(e is not None and e != d for e, d in zip(shape, dims)):
            want = " x ".join("N" if e is None else str(e) for e in shape)
            raise DatasetError(
                f"{path}: expected dimensions {want}, found {' x '.join(map(str, dims))} in the "
                f"header.{hint}"
            )
    dtype = _IDX_TYPES[kind]
    size = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buf) != size:
        problem = "truncated" if len(buf) < size else "longer than its header says"
        raise DatasetError(
            f"{path}: expected {size:,} bytes{raw} for {' x '.join(map(str, dims))} "
            f"{dtype.name} elements plus the {header}-byte header, found {len(buf):,} bytes: the "
            f"file is {problem}.{hint}"
        )
    return np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)


class MNIST(LabeledDataset):
    """The MNIST handwritten digits, read from the four original IDX files in ``root``.

    ``root`` must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzip-compressed (``.gz``) or
    not (the dotted names ``gunzip -N`` restores, ``train-images.idx3-ubyte``, work too). Nothing
    is downloaded.

    Args:
        root: the directory holding the files.
        train: the 60,000 training images, else the 10,000 test images.

    Attributes:
        data: (N, 1, 28, 28) float32 in [0, 1] (pixel / 255).
        targets: (N,) int64 labels.
        classes: the class names.

    Raises:
        DatasetError: a file is missing, unreadable, truncated or garbled, holds no images, or
            images and labels disagree.
    """

    classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    source = (
        "MNIST is at https://yann.lecun.com/exdb/mnist/ (mirror: "
        "https://ossci-datasets.s3.amazonaws.com/mnist/)"
    )

    def __init__(self, root: str | os.PathLike, train: bool = True) -> None:
        root = Path(root)
        split = "train" if train else "t10k"
        hint = (
            f"Put the four original files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; or gunzipped) in {root}; "
            f"{self.source}."
        )
        images_path = self._find(root, split, "images", 3, hint)
        images = read_idx(images_path, 2051, (None, 28, 28), hint)
        if len(images) == 0:  # a valid file, but training on it would fail much later
            raise DatasetError(f"{images_path}: the file holds 0 images; expected the {split} "
                               f"images of {type(self).__name__}. {hint}")
        labels_path = self._find(root, split, "labels", 1, hint)
        labels = read_idx(labels_path, 2049, (None,), hint)
        if len(images) != len(labels):
            raise DatasetError(
                f"{labels_path}: expected {len(images):,} labels, one per image in the images "
                f"file, found {len(labels):,}.{' ' + hint}"
            )
        bad = np.flatnonzero(labels >= len(self.classes))
        if len(bad):
            raise DatasetError(
                f"{labels_path}: expected labels 0..{len(self.classes) - 1}, found "
                f"{labels[bad[0]]} at label {bad[0]}.{' ' + hint}"
            )
        # one pass to float32: x / 255 exactly rounded, no float64 temporary
        data = np.divide(images, np.float32(255), dtype=np.float32)
        super().__init__(data.reshape(len(images), 1, 28, 28), labels.astype(np.int64),
                         type(self).classes, name=type(self).__name__)

    @staticmethod
    def _find(root: Path, split: str, what: str, ndim: int, hint: str) -> Path:
        names = [f"{split}-{what}-idx{ndim}-ubyte", f"{split}-{what}.idx{ndim}-ubyte"]
        for name in names:
            for candidate in (root / f"{name}.gz", root / name):
                if _is_file(candidate):
                    return candidate
        raise DatasetError(
            f"{root / names[0]}: expected the {split} {what} file (.gz or uncompressed) in "
            f"{root}, found no such file.{' ' + hint}"
        )


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (28x28 greyscale clothing, 10 classes) from its four IDX files.

    The same file names, format and arguments as ``MNIST``, so see there.
    """

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                "Sneaker", "Bag", "Ankle boot"]
    source = (
        "Fashion-MNIST is at https://github.com/zalando-research/fashion-mnist (files: "
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/)"
    )
