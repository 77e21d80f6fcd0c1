"""``load_csv``: a user's own table as a classification dataset.

The first row names the columns (each name once; a UTF-8 byte-order mark is dropped); every
feature cell must be a number that float32 can hold; the target column holds class labels (any
text), which are mapped to 0..K-1 in sorted order (numerically when every label is a number)
and reported in ``.classes`` / ``.class_to_idx``. A bad cell raises ``DatasetError``
naming its row and column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backprop.data.dataset import DatasetError, LabeledDataset

NA_VALUES = ("", "NA", "N/A", "NaN", "nan", "null", "None", "?")


def _column_index(spec: str | int, header: list[str], path: Path, role: str) -> int:
    if isinstance(spec, str):
        hits = [j for j, name in enumerate(header) if name == spec]
        if len(hits) != 1:
            found = "no such column" if not hits else f"{len(hits)} columns of that name"
            raise DatasetError(
                f"{path}: expected a {role} column named {spec!r} in the header, found "
                f"{found}; the columns are {header}"
            )
        return hits[0]
    if isinstance(spec, bool) or not isinstance(spec, (int, np.integer)) \
            or not -len(header) <= spec < len(header):
        raise DatasetError(
            f"{path}: expected a {role} column name or an index in "
            f"{-len(header)}..{len(header) - 1}, found {spec!r}; the columns are {header}"
        )
    return int(spec) % len(header)


def _numeric(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load_csv(path: str | os.PathLike, target: str | int, *,
             features: Sequence[str | int] | None = None, delimiter: str = ",",
             na_values: Sequence[str] = NA_VALUES, encoding: str = "utf-8") -> LabeledDataset:
    """Load a delimited text table with a header row as a classification dataset.

    Args:
        path: the file.
        target: the class-label column, by header name or index (negative counts from the end).
        features: the feature columns, by name or index, in the order wanted; None takes every
            column except the target.
        delimiter: the field separator.
        na_values: cell texts (after stripping spaces) that count as missing.
        encoding: the file's text encoding.

    Returns:
        a ``LabeledDataset``: ``data`` (N, F) float32, ``targets`` (N,) int64 in 0..K-1,
        ``classes`` (the original label of each index), plus ``feature_names`` and
        ``target_name``. Blank lines are skipped.

    Raises:
        DatasetError: no header, an unknown or duplicated column name, a row with the wrong
            number of fields, or a missing or non-numeric cell or one beyond float32's range;
            the message names the row (the first data row is row 1; the file line is given
            too) and the column (name and 1-based position).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = p.write_text("x,y,kind\\n1,2,cat\\n3,4,dog\\n5,6,cat\\n")
        >>> ds = load_csv(p, target="kind")
        >>> ds.data.tolist(), ds.targets.tolist(), ds.classes
        ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0, 1, 0], ['cat', 'dog'])
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding=encoding) as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [name.strip() for name in next(reader, [])]
            if header:  # a UTF-8 byte-order mark (Excel writes one) is not part of the name
                header[0] = header[0].lstrip("\ufeff").strip()
            if not header:
                raise DatasetError(f"{path}: expected a header row naming the columns, found an "
                                   "empty file")
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(
                        f"{path}: row {len(rows) + 1} (line {reader.line_num}): expected "
                        f"{len(header)} fields as in the header, found {len(row)}"
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") \
            from None
    if not rows:
        raise DatasetError(f"{path}: expected at least one data row after the header, found none")

    t = _column_index(target, header, path, "target")
    if features is None:
        cols = [j for j in range(len(header)) if j != t]
    else:
        cols = [_column_index(c, header, path, "feature") for c in features]
    if not cols:
        raise DatasetError(f"{path}: expected at least one feature column besides the target "
                           f"{header[t]!r}, found none")
    for j in (*cols, t):  # columns are later found by name (predict): one name, one column
        same = [k + 1 for k, name in enumerate(header) if name == header[j]]
        if len(same) > 1:
            raise DatasetError(
                f"{path}: column name {header[j]!r} appears {len(same)} times (columns "
                f"{', '.join(map(str, same))}); give each column its own name, or pick the "
                "feature columns with features="
            )

    def where(i: int, j: int) -> str:
        return f"{path}: row {i + 1} (line {lines[i]}), column {header[j]!r} (column {j + 1})"

    cells = np.char.strip(np.array(rows, dtype=str))
    missing = np.isin(cells[:, cols + [t]], list(na_values))
    if missing.any():
        i, k = np.argwhere(missing)[0]
        j = (cols + [t])[k]
        raise DatasetError(f"{where(i, j)}: expected a value, found a missing one "
                           f"({rows[i][j]!r})")
    try:
        data = cells[:, cols].astype(np.float64)
    except ValueError:
        data = None
    if data is None or not np.isfinite(data).all():
        for i in range(len(rows)):  # only to locate the bad cell for the message
            for j in cols:
                value = _numeric(cells[i, j])
                if value is None or not np.isfinite(value):
                    raise DatasetError(f"{where(i, j)}: expected a finite number, found "
                                       f"{rows[i][j]!r}")

    if data is None:  # NumPy refused a text that Python's float() reads (e.g. "1_000")
        data = np.array([[float(c) for c in row] for row in cells[:, cols].tolist()])
    big = np.abs(data) > np.finfo(np.float32).max
    if big.any():  # finite here, but inf once stored as float32
        i, k = np.argwhere(big)[0]
        raise DatasetError(f"{where(i, cols[k])}: {rows[i][cols[k]].strip()} is beyond the range "
                           f"of float32 (magnitude at most {np.finfo(np.float32).max:.4g}), "
                           "the type the features are stored in; rescale the column")

    names, inverse = np.unique(cells[:, t], return_inverse=True)
    names = names.tolist()
    values = [_numeric(s) for s in names]
    if all(v is not None for v in values):  # numeric labels sort as numbers: "2" before "10"
        order = sorted(range(len(names)), key=lambda k: (values[k], names[k]))
        names = [names[k] for k in order]
        inverse = np.argsort(order)[inverse]
    targets = inverse.reshape(-1).astype(np.int64)
    ds = LabeledDataset(data.astype(np.float32), targets, names, name=f"csv({path.name})")
    ds.feature_names = [header[j] for j in cols]
    ds.target_name = header[t]
    return ds
