from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesloop.model import STATIC_COLUMNS, future_frame, to_frame
from salesloop.model.frame import future_rows, grouped_rolling_mean, last_n_mean, pandas_freq


def _rows(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "series_id": "CA_1/A",
        "store_id": "CA_1",
        "item_id": "A",
        "dept_id": "FOODS_1",
        "cat_id": "FOODS",
        "state_id": "CA",
        "date": "2024-01-01",
        "units": 1.0,
        "sell_price": 2.0,
        "snap": False,
        "event_name": None,
    }
    base.update(over)
    return base


def test_to_frame_fills_missing_days_with_zero_and_carries_price() -> None:
    sales = pd.DataFrame(
        [
            _rows(date="2024-01-01", units=3, sell_price=2.0),
            _rows(date="2024-01-04", units=5, sell_price=1.5),
            _rows(series_id="CA_1/B", item_id="B", date="2024-01-03", units=1, sell_price=None),
        ]
    )
    f = to_frame(sales)
    a = f[f.unique_id == "CA_1/A"]
    assert list(a.ds.dt.strftime("%m-%d")) == ["01-01", "01-02", "01-03", "01-04"]
    assert list(a.y) == [3, 0, 0, 5]
    assert list(a.sell_price) == [2.0, 2.0, 2.0, 1.5]
    b = f[f.unique_id == "CA_1/B"]
    # B launched on the 3rd: no invented leading zeros; runs to the frame's last day.
    assert list(b.ds.dt.strftime("%m-%d")) == ["01-03", "01-04"]
    assert list(b.y) == [1, 0]
    assert b.sell_price.isna().all()
    for col in STATIC_COLUMNS:
        assert isinstance(f[col].dtype, pd.CategoricalDtype)


def test_to_frame_later_insert_wins_and_fills_calendar_flags() -> None:
    sales = pd.DataFrame(
        [
            _rows(date="2024-01-01", units=3, inserted_at=pd.Timestamp("2024-01-02", tz="UTC")),
            _rows(date="2024-01-01", units=4, inserted_at=pd.Timestamp("2024-01-05", tz="UTC")),
            _rows(date="2024-01-03", units=1, inserted_at=pd.Timestamp("2024-01-04", tz="UTC")),
            # another series of the same state says the 2nd was a SNAP day with an event
            _rows(
                series_id="CA_1/B",
                item_id="B",
                date="2024-01-02",
                snap=True,
                event_name="SuperBowl",
                inserted_at=pd.Timestamp("2024-01-04", tz="UTC"),
            ),
        ]
    )
    f = to_frame(sales)
    a = f[f.unique_id == "CA_1/A"].reset_index(drop=True)
    assert list(a.y) == [4, 0, 1]
    assert list(a.snap) == [0, 1, 0]
    assert list(a.event) == [0, 1, 0]


def test_to_frame_rejects_negative_units() -> None:
    with pytest.raises(ValueError, match="negative"):
        to_frame(pd.DataFrame([_rows(units=-1)]))


def test_to_frame_weekly_grid_keeps_the_data_weekday() -> None:
    mondays = pd.date_range("2024-01-01", periods=4, freq="W-MON")
    sales = pd.DataFrame([_rows(date=d, units=i) for i, d in enumerate(mondays) if i != 2])
    f = to_frame(sales, freq="W")
    assert list(f.ds) == list(mondays)
    assert list(f.y) == [0, 1, 0, 3]
    assert pandas_freq("W", mondays[0]) == "W-MON"


def test_future_frame_carries_price_and_defaults_flags() -> None:
    hist = pd.DataFrame(
        {
            "unique_id": ["a", "a", "b", "b"],
            "ds": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01", "2024-01-02"]),
            "sell_price": [1.0, np.nan, 3.0, 4.0],
        }
    )
    future = pd.DataFrame(
        {
            "unique_id": ["b"],
            "ds": pd.to_datetime(["2024-01-04"]),
            "snap": [1.0],
            "event": [1.0],
            "sell_price": [2.5],
        }
    )
    fut = future_frame(hist, 3, "D", future)
    assert list(fut.ds.dt.day) == [3, 4, 5, 3, 4, 5]
    assert list(fut.sell_price) == [1.0, 1.0, 1.0, 4.0, 2.5, 4.0]
    assert list(fut.snap) == [0, 0, 0, 0, 1, 0]
    assert list(fut.event) == [0, 0, 0, 0, 1, 0]


def test_grouped_rolling_helpers_do_not_cross_series() -> None:
    ids = np.array(["a", "a", "a", "b", "b"])
    vals = np.array([1.0, np.nan, 3.0, 10.0, 20.0])
    np.testing.assert_allclose(grouped_rolling_mean(vals, ids, 2), [1.0, 1.0, 3.0, 10.0, 15.0])
    np.testing.assert_allclose(last_n_mean(np.array([1.0, 2, 3, 10, 20]), ids, 2), [2.5, 15.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 5)), max_size=12),
    st.lists(st.tuples(st.sampled_from("abd"), st.integers(0, 5)), max_size=12, unique=True),
)
def test_future_rows_is_a_left_join(
    wanted: list[tuple[str, int]], known: list[tuple[str, int]]
) -> None:
    day = np.datetime64("2024-01-01", "ns")
    ids = np.array([w[0] for w in wanted], dtype=object)
    times = np.array([day + np.timedelta64(w[1], "D") for w in wanted], dtype="datetime64[ns]")
    f_ids = np.array([k[0] for k in known], dtype=object)
    f_times = np.array([day + np.timedelta64(k[1], "D") for k in known], dtype="datetime64[ns]")
    got = future_rows(ids, times, f_ids, f_times)
    left = pd.DataFrame({"unique_id": ids, "ds": times})
    right = pd.DataFrame({"unique_id": f_ids, "ds": f_times, "row": np.arange(len(known))})
    expected = left.merge(right, on=["unique_id", "ds"], how="left")["row"].fillna(-1)
    assert got.tolist() == expected.astype(int).tolist()


def test_future_rows_refuses_two_rows_for_one_series_and_day() -> None:
    day = np.array(["2024-01-01"], dtype="datetime64[ns]")
    with pytest.raises(ValueError, match="more than one row"):
        future_rows(np.array(["a"]), day, np.array(["a", "a"]), np.repeat(day, 2))
