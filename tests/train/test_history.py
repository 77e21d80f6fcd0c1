"""History: columns, CSV round trip, PNG plot."""

import math

import pytest

from backprop.train import History

ROWS = [
    {"epoch": 1, "loss": 0.1 + 0.2, "accuracy": 1 / 3, "val_loss": 1e-17, "val_accuracy": 0.5,
     "lr": 0.001, "time": 1.2345678901234567, "grad_norm": 3.0},
    {"epoch": 2, "loss": 2.0 / 7, "accuracy": 0.75, "val_loss": math.pi, "val_accuracy": 1.0,
     "lr": 1e-300, "time": 5e-324, "grad_norm": 123456789.98765433},
]


def test_columns_put_known_metrics_first_in_a_fixed_order_then_extras_sorted():
    rows = [{"zeta": 1, "time": 0.1, "lr": 0.1, "loss": 1.0, "epoch": 1, "alpha": 2,
             "val_loss": 1.0}]
    assert History(rows).columns == ["epoch", "loss", "val_loss", "lr", "time", "alpha", "zeta"]
    assert History(ROWS).columns == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                     "lr", "time", "grad_norm"]


def test_access_by_metric_and_keras_style_dict():
    h = History(ROWS)
    assert h["loss"] == [0.1 + 0.2, 2.0 / 7] and h.epoch == [1, 2] and len(h) == 2
    assert h.history["val_accuracy"] == [0.5, 1.0]
    with pytest.raises(KeyError, match="no metric 'f1'"):
        h["f1"]
    ragged = History([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5, "extra": 7}])
    assert ragged["extra"] == [None, 7]
    assert "2 epochs" in repr(h)


def test_history_copies_its_rows():
    rows = [{"epoch": 1, "loss": 1.0}]
    h = History(rows)
    rows[0]["loss"] = 99.0
    assert h["loss"] == [1.0]


def test_csv_round_trip_is_exact(tmp_path):
    path = tmp_path / "h.csv"
    h = History(ROWS)
    h.to_csv(path)
    back = History.from_csv(path)
    assert back.rows == h.rows  # floats bit for bit, ints as ints
    assert all(type(back.rows[i]["epoch"]) is int for i in range(2))
    assert path.read_text().splitlines()[0] == ",".join(h.columns)


def test_csv_round_trip_of_missing_values_and_non_finite_floats(tmp_path):
    path = tmp_path / "h.csv"
    rows = [{"epoch": 1, "loss": math.inf}, {"epoch": 2, "loss": 0.5, "grad_norm": 2.5}]
    History(rows).to_csv(path)
    back = History.from_csv(path)
    assert back.rows[0] == {"epoch": 1, "loss": math.inf, "grad_norm": None}
    assert back.rows[1] == rows[1]


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = History(ROWS).plot(tmp_path / "curves.png", title="run")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    regression = History([{"epoch": e, "loss": 1.0 / e} for e in range(1, 6)])
    p2 = regression.plot(tmp_path / "reg.png")
    assert p2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(p2.read_bytes()) < len(data)  # one panel (no accuracy) instead of two
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "reg.png"]
