"""load_csv: header, numeric features, class labels mapped and reported, errors with row and
column."""

import numpy as np
import pytest

from backprop.data.datasets import DatasetError, load_csv


def _csv(tmp_path, text, name="table.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_loads_features_and_maps_labels(tmp_path):
    path = _csv(tmp_path, "a,b,species\n1,2.5,setosa\n3,-4,virginica\n5,6e1,setosa\n")
    ds = load_csv(path, target="species")
    assert ds.data.dtype == np.float32 and ds.targets.dtype == np.int64
    assert ds.data.tolist() == [[1.0, 2.5], [3.0, -4.0], [5.0, 60.0]]
    assert ds.targets.tolist() == [0, 1, 0]
    assert ds.classes == ["setosa", "virginica"]
    assert ds.class_to_idx == {"setosa": 0, "virginica": 1}
    assert ds.feature_names == ["a", "b"] and ds.target_name == "species"
    assert "setosa" in repr(ds)


def test_csv_numeric_labels_sort_as_numbers(tmp_path):
    path = _csv(tmp_path, "x,y\n0,10\n1,9\n2,100\n3,9\n4,-1\n")
    ds = load_csv(path, target="y")
    assert ds.classes == ["-1", "9", "10", "100"]
    assert ds.targets.tolist() == [2, 1, 3, 1, 0]


def test_csv_target_by_index_and_feature_selection(tmp_path):
    path = _csv(tmp_path, "a,b,c,label\n1,2,3,x\n4,5,6,y\n")
    ds = load_csv(path, target=-1, features=["c", 0])
    assert ds.data.tolist() == [[3.0, 1.0], [6.0, 4.0]] and ds.feature_names == ["c", "a"]
    assert load_csv(path, target=3).classes == ["x", "y"]


def test_csv_other_delimiter_and_spaces(tmp_path):
    path = _csv(tmp_path, " a ; label \n 1.5 ; cat \n2;dog\n", name="t.tsv")
    ds = load_csv(path, target="label", delimiter=";")
    assert ds.data.tolist() == [[1.5], [2.0]] and ds.classes == ["cat", "dog"]


def test_csv_non_numeric_cell_names_row_and_column(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(DatasetError) as exc:
        load_csv(path, target="label")
    msg = str(exc.value)
    assert str(path) in msg
    assert "row 2 (line 3), column 'b' (column 2)" in msg and "'oops'" in msg


@pytest.mark.parametrize("cell", ["", "NA", " ", "?"])
def test_csv_missing_feature_names_row_and_column(tmp_path, cell):
    path = _csv(tmp_path, f"a,b,label\n1,2,x\n3,4,y\n{cell},6,x\n")
    with pytest.raises(DatasetError, match=r"row 3 \(line 4\), column 'a' \(column 1\).*missing"):
        load_csv(path, target="label")


def test_csv_missing_label_is_an_error_too(tmp_path):
    path = _csv(tmp_path, "a,label\n1,x\n2,\n")
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\), column 'label' \(column 2\)"):
        load_csv(path, target="label")


def test_csv_infinite_value_is_rejected(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,inf,x\n")
    with pytest.raises(DatasetError, match=r"row 1 \(line 2\), column 'b'.*finite number"):
        load_csv(path, target="label")


def test_csv_blank_lines_are_skipped_but_line_numbers_stay_true(tmp_path):
    path = _csv(tmp_path, "a,label\n1,x\n\n2,y\nbad,x\n")
    assert len(load_csv(_csv(tmp_path, "a,label\n1,x\n\n2,y\n", "ok.csv"), "label")) == 2
    with pytest.raises(DatasetError, match=r"row 3 \(line 5\), column 'a'"):
        load_csv(path, target="label")


def test_csv_row_with_wrong_field_count(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,2,x\n3,y\n")
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\): expected 3 fields.*found 2"):
        load_csv(path, target="label")


def test_csv_unknown_target_lists_the_columns(tmp_path):
    path = _csv(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DatasetError, match=r"'class'.*no such column.*\['a', 'b'\]"):
        load_csv(path, target="class")
    with pytest.raises(DatasetError, match="index in -2..1"):
        load_csv(path, target=2)


@pytest.mark.parametrize("text, match", [("", "header row"), ("a,label\n", "data row"),
                                         ("label\nx\n", "feature column")])
def test_csv_empty_tables_are_errors(tmp_path, text, match):
    with pytest.raises(DatasetError, match=match):
        load_csv(_csv(tmp_path, text), target="label")


# --- columns by name, the byte-order mark, values float32 cannot hold ---


def test_csv_duplicate_column_names_are_refused(tmp_path):
    # two columns "a": reading "a" by name would take one of them twice and drop the other
    path = _csv(tmp_path, "a,b,a,label\n1,2,3,x\n4,5,6,y\n")
    with pytest.raises(DatasetError, match=r"column name 'a' appears 2 times \(columns 1, 3\)"):
        load_csv(path, target="label")
    assert load_csv(path, target="label", features=["b"]).feature_names == ["b"]


def test_csv_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa,b,label\n1,2,x\n3,4,y\n".encode())
    ds = load_csv(path, target="label", features=["a", "b"])
    assert ds.feature_names == ["a", "b"]


@pytest.mark.parametrize("cell", ["1e300", "-4e38"])
def test_csv_values_beyond_float32_are_refused_with_row_and_column(tmp_path, cell):
    path = _csv(tmp_path, f"a,b,label\n1,2,x\n3,{cell},y\n")
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\), column 'b' \(column 2\).*"
                                           r"float32.*3\.4"):
        load_csv(path, target="label")
