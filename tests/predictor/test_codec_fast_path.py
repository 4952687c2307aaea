"""History rows → instances: the no-gap shortcut gives exactly what the general path gives.

``instances_from_history`` skips :func:`salesloop.model.to_frame` when every series is complete
up to its origin. These tests generate histories of every shape (complete, gappy, duplicated days,
null prices, SNAP as bools, ints or strings, shuffled rows) and compare the shortcut's result with
the general path's, which they force by asking for ``max_periods`` larger than any series.
The horizon's known calendar (``future``: the event function sends SNAP and events) goes through
both paths too, placed by date after each series' origin.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesloop.predictor import codec
from salesloop.predictor.codec import instances_from_history

STORES = ("CA_1", "TX_2")
ITEMS = ("FOODS_1_001", "HOBBIES_2_003", "HOUSEHOLD_1_010")


def _general(
    history: pd.DataFrame, recent_days: int | None, future: pd.DataFrame | None = None
) -> list[dict[str, object]]:
    return instances_from_history(
        history, recent_days=recent_days, max_periods=10_000, future=future
    )


@st.composite
def histories(draw: st.DrawFn) -> pd.DataFrame:
    rows = []
    n_series = draw(st.integers(1, 4))
    gaps = draw(st.booleans())
    snap_kind = draw(st.sampled_from(["bool", "int", "str", "none"]))
    for k in range(n_series):
        store, item = STORES[k % 2], ITEMS[k % 3]
        n = draw(st.integers(1, 40))
        first = date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 10)))
        for d in range(n):
            if gaps and draw(st.integers(0, 5)) == 0:
                continue
            snap: object = d % 3 == 0
            if snap_kind == "int":
                snap = int(bool(snap))
            elif snap_kind == "str":
                snap = "true" if snap else "false"
            elif snap_kind == "none":
                snap = None
            rows.append(
                {
                    "series_id": f"{store}/{item}",
                    "store_id": store,
                    "item_id": item,
                    "dept_id": item.rsplit("_", 1)[0],
                    "cat_id": item.split("_")[0],
                    "state_id": store[:2],
                    "date": first + timedelta(days=d),
                    "units": float(draw(st.integers(0, 50))),
                    "sell_price": draw(st.one_of(st.none(), st.floats(0.5, 20.0))),
                    "snap": snap,
                    "event_name": draw(st.one_of(st.none(), st.just("Christmas"))),
                }
            )
    if not rows:
        rows.append({**rows_template(), "date": date(2024, 1, 1)})
    df = pd.DataFrame(rows)
    if draw(st.booleans()):
        df = df.sample(frac=1.0, random_state=draw(st.integers(0, 1000)))
    return df.reset_index(drop=True)


@st.composite
def futures(draw: st.DrawFn, history: pd.DataFrame) -> pd.DataFrame:
    """Calendar rows around each series' origin: gaps, days before it, duplicates, an unknown
    series, SNAP in every representation the warehouse or a file may give."""
    origins = pd.to_datetime(history["date"]).groupby(history["series_id"]).max()
    snap_kind = draw(st.sampled_from(["bool", "int", "str", "none", "mixed"]))
    rows = []
    for sid, origin in [*origins.items(), ("WI_9/UNKNOWN_1_001", pd.Timestamp("2024-02-01"))]:
        if not draw(st.booleans()):
            continue
        for offset in draw(st.lists(st.integers(-3, 10), max_size=12)):
            flag = draw(st.booleans())
            snap: object = flag
            if snap_kind == "int" or (snap_kind == "mixed" and draw(st.booleans())):
                snap = int(flag)
            elif snap_kind == "str":
                snap = "true" if flag else "false"
            elif snap_kind == "none" or (snap_kind == "mixed" and draw(st.booleans())):
                snap = None
            rows.append(
                {
                    "series_id": sid,
                    "date": (origin + pd.Timedelta(days=offset)).date(),
                    "snap": snap,
                    "event_name": draw(st.one_of(st.none(), st.just("SuperBowl"))),
                }
            )
    frame = pd.DataFrame(rows, columns=["series_id", "date", "snap", "event_name"])
    if draw(st.booleans()):
        frame = frame.assign(sell_price=draw(st.one_of(st.none(), st.floats(0.5, 20.0))))
    return frame


def rows_template() -> dict[str, object]:
    return {
        "series_id": "CA_1/FOODS_1_001",
        "store_id": "CA_1",
        "item_id": "FOODS_1_001",
        "dept_id": "FOODS_1",
        "cat_id": "FOODS",
        "state_id": "CA",
        "units": 1.0,
        "sell_price": 2.5,
        "snap": False,
        "event_name": None,
    }


@settings(max_examples=300, deadline=None)
@given(history=histories(), recent=st.one_of(st.none(), st.integers(1, 30)))
def test_shortcut_equals_general_path(history: pd.DataFrame, recent: int | None) -> None:
    assert instances_from_history(history, recent_days=recent) == _general(history, recent)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), recent=st.one_of(st.none(), st.integers(1, 30)))
def test_shortcut_equals_general_path_with_the_horizon_calendar(
    data: st.DataObject, recent: int | None
) -> None:
    history = data.draw(histories())
    future = data.draw(futures(history))
    got = instances_from_history(history, recent_days=recent, future=future)
    assert got == _general(history, recent, future)


def test_shortcut_places_the_calendar_by_date(monkeypatch: pytest.MonkeyPatch) -> None:
    days = pd.date_range("2024-03-01", periods=10, freq="D").date
    history = pd.DataFrame([{**rows_template(), "date": d} for d in days])
    origin = pd.Timestamp(days[-1])
    future = pd.DataFrame(
        {
            "series_id": "CA_1/FOODS_1_001",
            # the origin itself (history, dropped), day 1, day 3 (day 2 unknown), day 2 of
            # another series
            "date": [origin, origin + pd.Timedelta(days=1), origin + pd.Timedelta(days=3)],
            "snap": [True, True, False],
            "event_name": [None, None, "Easter"],
        }
    )
    future = pd.concat(
        [
            future,
            pd.DataFrame(
                {
                    "series_id": ["TX_2/FOODS_1_001"],
                    "date": [origin + pd.Timedelta(days=2)],
                    "snap": [True],
                    "event_name": [None],
                }
            ),
        ],
        ignore_index=True,
    )

    def no_general_path(*args: object, **kwargs: object) -> None:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(codec, "to_frame", no_general_path)
    (inst,) = instances_from_history(history, future=future)
    assert inst["future"] == {"snap": [1.0, None, 0.0], "event": [0.0, None, 1.0]}
    assert "future" not in instances_from_history(history)[0]
    # Only days on or before the origin: nothing to send.
    (past,) = instances_from_history(history, future=future.iloc[:1])
    assert "future" not in past


def test_shortcut_fills_gaps_and_leaves_corrections_to_the_general_path() -> None:
    days = pd.date_range("2024-03-01", periods=10, freq="D").date
    rows = [{**rows_template(), "date": d, "units": float(i + 1)} for i, d in enumerate(days)]
    complete = pd.DataFrame(rows)
    dates = pd.to_datetime(complete["date"])
    origin = pd.Series(np.full(len(dates), dates.max()))
    assert codec._instances_direct(complete, dates, origin) is not None
    gappy = complete.drop(index=4).reset_index(drop=True)
    got = codec._instances_direct(gappy, pd.to_datetime(gappy["date"]), origin.iloc[:9])
    assert got is not None
    assert got[0]["units"][4] == 0.0 and len(got[0]["units"]) == 10
    assert got[0]["sell_price"][4] == 2.5  # carried forward
    twice = pd.concat([complete, complete.tail(1)], ignore_index=True)
    tdates = pd.to_datetime(twice["date"])
    assert codec._instances_direct(twice, tdates, pd.Series([dates.max()] * 11)) is None


def _future_oracle(instances: list[dict[str, object]]) -> pd.DataFrame:
    """Per series, the obvious way: its last history day, then one row per future position."""
    parts = []
    for inst in instances:
        fut = inst.get("future") or {}
        assert isinstance(fut, dict)
        lists = {k: v for k, v in fut.items() if isinstance(v, list)}
        n = max((len(v) for v in lists.values()), default=0)
        if n == 0:
            continue
        units = inst["units"]
        assert isinstance(units, list)
        last = pd.Timestamp(str(inst["start"])) + pd.Timedelta(days=len(units) - 1)
        part: dict[str, object] = {
            "unique_id": inst["series_id"],
            "ds": pd.date_range(last + pd.Timedelta(days=1), periods=n, freq="D"),
        }
        for col in ("sell_price", "snap", "event"):
            if col in lists:
                vals = [np.nan if v is None else float(v) for v in lists[col]]
                part[col] = vals + [np.nan] * (n - len(vals))
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            st.integers(1, 20),  # history length
            st.dictionaries(
                st.sampled_from(["sell_price", "snap", "event"]),
                st.lists(st.one_of(st.none(), st.integers(0, 5)), max_size=7),
                max_size=3,
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_decoded_future_matches_the_per_series_oracle(
    specs: list[tuple[int, dict[str, list[int | None]]]],
) -> None:
    instances: list[dict[str, object]] = [
        {
            **{k: v for k, v in rows_template().items() if k in ("store_id", "item_id")},
            "series_id": f"S{i}",
            "start": str(date(2024, 1, 1) + timedelta(days=i)),
            "units": [1.0] * n,
            "future": fut,
        }
        for i, (n, fut) in enumerate(specs)
    ]
    got = codec.decode_instances(instances).future
    want = _future_oracle(instances)
    if want.empty:
        assert got is None or got.empty
        return
    assert got is not None
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want[list(got.columns)], check_dtype=False
    )
    assert set(got.columns) == set(want.columns)
