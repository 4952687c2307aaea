"""Validation of insert-job rows: properties (hypothesis) and worked examples.

The property tests build jobs mixing valid rows with rows broken in exactly one way, and check the
vectorized validator against a row-by-row oracle: the partition is exact, each broken row gets its
class, and valid rows arrive unchanged.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloop.data.validate import (
    REASON_CLASSES,
    ValidationError,
    period_start,
    validate_sales,
)
from salesloop.schemas import REJECTED_SALES, SALES

TODAY = date(2016, 6, 1)
MAX_FUTURE = 2
NOW = datetime(2016, 6, 1, 12, 0, tzinfo=UTC)
STORES = ["CA_1", "CA_2", "TX_3", "WI_1"]
ITEMS = ["FOODS_3_090", "FOODS_1_001", "HOUSEHOLD_2_015", "HOBBIES_1_234"]


def run(raw: pd.DataFrame, **kw: Any):
    args: dict[str, Any] = {"today": TODAY, "max_future_days": MAX_FUTURE, "inserted_at": NOW}
    args.update(kw)
    return validate_sales(raw, "job-1", **args)


# --- strategies ------------------------------------------------------------------------------

dates = st.dates(min_value=date(2011, 1, 29), max_value=TODAY + timedelta(days=MAX_FUTURE))


@st.composite
def good_rows(draw: st.DrawFn, typed: bool) -> dict[str, Any]:
    """A valid row plus what it must become: (cells, expected values)."""
    store, item, day = draw(st.sampled_from(STORES)), draw(st.sampled_from(ITEMS)), draw(dates)
    units = draw(
        st.one_of(
            st.integers(0, 500).map(float),
            st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 3)),
        )
    )
    price = draw(
        st.one_of(st.none(), st.floats(0, 1000, allow_nan=False).map(lambda x: round(x, 2)))
    )
    snap = draw(st.sampled_from([None, True, False]))
    pad = draw(st.sampled_from(["", " ", "  "]))
    if typed:
        cells = {
            "store_id": store,
            "item_id": item,
            "date": day,
            "units": units,
            "sell_price": price,
            "snap": snap,
        }
    else:
        fmt = draw(
            st.sampled_from(
                ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y-%m-%dT10:30:00", "%Y-%m-%d 23:59:59+05:00"]
            )
        )
        cells = {
            "store_id": pad + store + pad,
            "item_id": item + pad,
            "date": day.strftime(fmt),
            "units": draw(
                st.sampled_from(
                    [repr(units), str(int(units)) if units.is_integer() else repr(units)]
                )
            ),
            "sell_price": "" if price is None else repr(price),
            "snap": {
                None: draw(st.sampled_from(["", "NA"])),
                True: draw(st.sampled_from(["true", "1", "Y"])),
                False: draw(st.sampled_from(["false", "0", "no"])),
            }[snap],
        }
    expect = {
        "store_id": store,
        "item_id": item,
        "date": day,
        "units": units,
        "sell_price": price,
        "snap": snap,
    }
    return {"cells": cells, "expect": expect, "cls": None}


MISSING = ["", "  ", "NA", "null", None]


@st.composite
def bad_rows(draw: st.DrawFn, typed: bool) -> dict[str, Any]:
    row = draw(good_rows(typed))
    cells = dict(row["cells"])
    cls = draw(st.sampled_from([c for c in REASON_CLASSES if c != "duplicate_in_job"]))
    if cls == "missing_key":
        if draw(st.booleans()):
            cells[draw(st.sampled_from(["store_id", "item_id", "date"]))] = draw(
                st.sampled_from(MISSING)
            )
        elif draw(st.booleans()):
            cells["item_id"] = draw(st.sampled_from(["SKU1", "foods", "FOODS-3-090", "123"]))
        else:
            cells["store_id"] = draw(st.sampled_from(["1", "CA1", "store"]))
    elif cls == "bad_date":
        cells["date"] = draw(
            st.sampled_from(
                [
                    "2016-13-01",
                    "2016-02-30",
                    "2015-02-29",
                    "01/02/2016",
                    "yesterday",
                    "2016-1",
                    "16-01-01",
                    "99999999",
                ]
            )
        )
    elif cls == "future_date":
        day = TODAY + timedelta(days=MAX_FUTURE + draw(st.integers(1, 3000)))
        cells["date"] = day if typed else day.isoformat()
    elif cls == "bad_quantity":
        cells["units"] = draw(
            st.sampled_from(
                [
                    -1.0,
                    -0.5,
                    math.inf,
                    -math.inf,
                    math.nan,
                    None,
                    "-3",
                    "abc",
                    "1,5",
                    "inf",
                    "",
                    "NaN",
                    "1e400",
                ]
                if typed
                else [
                    "-1",
                    "-0.5",
                    "inf",
                    "-Infinity",
                    "abc",
                    "1,5",
                    "",
                    "NaN",
                    "NA",
                    "12 units",
                    "1e400",
                ]
            )
        )
    elif cls == "bad_price":
        cells["sell_price"] = draw(st.sampled_from(["-1", "-0.01", "abc", "inf", "$3", "1e400"]))
    elif cls == "bad_flag":
        cells["snap"] = draw(st.sampled_from(["maybe", "2", "yes please", "-1"]))
    return {"cells": cells, "expect": None, "cls": cls}


@st.composite
def jobs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], bool]:
    typed = draw(st.booleans())
    rows = draw(st.lists(st.one_of(good_rows(typed), bad_rows(typed)), min_size=0, max_size=30))
    # Duplicates: copies of earlier rows (same key, other quantity), inserted later in the job.
    for _ in range(draw(st.integers(0, 4))):
        if not rows:
            break
        src = rows[draw(st.integers(0, len(rows) - 1))]
        copy = {"cells": dict(src["cells"]), "expect": src["expect"], "cls": "copy"}
        if src["cls"] is None:  # a broken row's copy stays broken the same way
            copy["cells"]["units"] = 7.0 if typed else "7"
        rows.insert(draw(st.integers(rows.index(src) + 1, len(rows))), copy)
    return rows, typed


def oracle(rows: list[dict[str, Any]]) -> list[str | None]:
    """Expected class per row: the broken class, or duplicate for a later copy of a valid key."""
    seen: set[tuple[str, str, date]] = set()
    out: list[str | None] = []
    for row in rows:
        if row["cls"] not in (None, "copy") or row["expect"] is None:
            out.append(row["cls"] if row["cls"] != "copy" else "copy_of_bad")
            continue
        e = row["expect"]
        key = (e["store_id"], e["item_id"], e["date"])
        out.append("duplicate_in_job" if key in seen else None)
        seen.add(key)
    return out


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["store_id", "item_id", "date", "units", "sell_price", "snap"]
    return pd.DataFrame([r["cells"] for r in rows], columns=cols)


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs())
def test_partition_reasons_and_survivors(job: tuple[list[dict[str, Any]], bool]) -> None:
    rows, _ = job
    raw = frame_of(rows)
    result = run(raw)
    good, rejected = result.good, result.rejected

    # Exact partition of row positions, nothing dropped or duplicated.
    assert len(good) + len(rejected) == len(raw)
    assert sorted([*good["row_num"], *rejected["row_num"]]) == list(range(len(raw)))
    assert list(good.columns) == SALES.column_names
    assert list(rejected.columns) == REJECTED_SALES.column_names

    expected = oracle(rows)
    reasons = dict(zip(rejected["row_num"], rejected["reason"], strict=True))
    for pos, want in enumerate(expected):
        got = reasons.get(pos)
        if want == "copy_of_bad":  # a copy of a broken row is broken the same way
            assert got is not None, (pos, rows[pos])
            continue
        if want is None:
            assert got is None, (pos, rows[pos], got)
        else:
            assert got is not None and got.split(":", 1)[0] == want, (pos, rows[pos], got)
            assert len(got) > len(want) + 2  # there is a detail after the class

    # Valid rows arrive with their values.
    for rec in good.itertuples(index=False):
        e = rows[rec.row_num]["expect"]
        assert rec.store_id == e["store_id"] and rec.item_id == e["item_id"]
        assert rec.series_id == f"{e['store_id']}/{e['item_id']}"
        assert rec.date == pd.Timestamp(e["date"])
        assert rec.units == pytest.approx(e["units"], rel=1e-12)
        if e["sell_price"] is None:
            assert math.isnan(rec.sell_price)
        else:
            assert rec.sell_price == pytest.approx(e["sell_price"], rel=1e-12)
        assert (rec.snap is pd.NA) if e["snap"] is None else (rec.snap == e["snap"])
        assert rec.dept_id == e["item_id"].rsplit("_", 1)[0]
        assert rec.cat_id == e["item_id"].split("_", 1)[0]
        assert rec.state_id == e["store_id"].split("_", 1)[0]

    # The raw JSON is the row as received.
    for rec in rejected.itertuples(index=False):
        original = json.loads(rec.raw)
        assert set(original) == set(raw.columns)
        cell = raw.iloc[rec.row_num]["store_id"]
        assert original["store_id"] == (
            None if cell is None or (isinstance(cell, float) and math.isnan(cell)) else cell
        )


@settings(max_examples=200, deadline=None)
@given(jobs())
def test_good_output_revalidates_unchanged(job: tuple[list[dict[str, Any]], bool]) -> None:
    """Validation is idempotent: feeding the good rows back in rejects nothing and changes nothing."""
    rows, _ = job
    first = run(frame_of(rows)).good
    again = run(first.drop(columns=["job_id", "row_num", "series_id", "inserted_at"])).good
    assert again["row_num"].tolist() == list(range(len(first)))
    cols = [c for c in SALES.column_names if c != "row_num"]
    pd.testing.assert_frame_equal(
        first[cols].reset_index(drop=True), again[cols].reset_index(drop=True), check_dtype=True
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(good_rows(typed=False), min_size=1, max_size=20), st.permutations(range(20)))
def test_row_order_does_not_change_the_good_set(
    rows: list[dict[str, Any]], perm: list[int]
) -> None:
    order = [p for p in perm if p < len(rows)]
    a = run(frame_of(rows)).good
    b = run(frame_of([rows[i] for i in order])).good
    # Without duplicates, the same series-days survive whatever the order.
    if a["series_id"].str.cat(a["date"].astype(str)).is_unique and len(a) == len(rows):
        key = ["series_id", "date", "units"]
        pd.testing.assert_frame_equal(
            a[key].sort_values(key).reset_index(drop=True),
            b[key].sort_values(key).reset_index(drop=True),
        )


# --- examples ------------------------------------------------------------------------------


def test_dtypes_and_timestamps() -> None:
    raw = pd.DataFrame(
        {
            "store_id": ["CA_1"],
            "item_id": ["FOODS_3_090"],
            "date": ["2016-05-01"],
            "units": ["3"],
            "event_name": ["SuperBowl"],
        }
    )
    good = run(raw).good
    assert good.dtypes.astype(str).to_dict() == {
        "job_id": "object",
        "row_num": "int64",
        "series_id": "object",
        "store_id": "object",
        "item_id": "object",
        "dept_id": "object",
        "cat_id": "object",
        "state_id": "object",
        "date": "datetime64[ns]",
        "units": "float64",
        "sell_price": "float64",
        "snap": "boolean",
        "event_name": "object",
        "inserted_at": "datetime64[ns, UTC]",
    }
    assert good.loc[0, "inserted_at"] == pd.Timestamp(NOW)
    assert good.loc[0, "event_name"] == "SuperBowl"
    empty = run(raw.iloc[:0])
    assert list(empty.good.columns) == SALES.column_names and empty.good.empty
    assert str(empty.good["date"].dtype) == "datetime64[ns]"
    assert list(empty.rejected.columns) == REJECTED_SALES.column_names


def test_reason_texts_and_first_kept() -> None:
    raw = pd.DataFrame(
        {
            "store_id": ["CA_1", "CA_1", "", "CA_1", "CA_1", "CA_1", "TX_1"],
            "item_id": [
                "FOODS_3_090",
                "FOODS_3_090",
                "FOODS_3_090",
                "FOODS_3_090",
                "FOODS_3_090",
                "SKU-9",
                "HOBBIES_1_001",
            ],
            "date": [
                "2016-01-01",
                "2016-01-01",
                "2016-01-02",
                "2016-02-31",
                "2016-06-04",
                "2016-01-01",
                "2016-01-03",
            ],
            "units": ["1", "2", "3", "4", "5", "6", "-2"],
            "sell_price": ["1.5", "1.5", "1", "1", "1", "1", "1"],
        }
    )
    result = run(raw)
    assert result.good["row_num"].tolist() == [0]
    assert result.good["units"].tolist() == [1.0]
    reasons = dict(zip(result.rejected["row_num"], result.rejected["reason"], strict=True))
    assert reasons == {
        1: "duplicate_in_job: CA_1/FOODS_3_090 2016-01-01 already at row 0",
        2: "missing_key: store_id missing",
        3: "bad_date: '2016-02-31' is not a calendar date (YYYY-MM-DD)",
        4: "future_date: 2016-06-04 is after 2016-06-01 + 2 day(s)",
        5: "missing_key: dept_id missing and item_id 'SKU-9' is not like FOODS_3_090 to derive it from",
        6: "bad_quantity: units '-2' is negative",
    }
    assert result.reason_counts == {
        "bad_date": 1,
        "bad_quantity": 1,
        "duplicate_in_job": 1,
        "future_date": 1,
        "missing_key": 2,
    }
    assert json.loads(result.rejected.iloc[0]["raw"]) == {
        "store_id": "CA_1",
        "item_id": "FOODS_3_090",
        "date": "2016-01-01",
        "units": "2",
        "sell_price": "1.5",
    }


def test_given_hierarchy_columns_win_and_non_m5_ids_work() -> None:
    raw = pd.DataFrame(
        {
            "store_id": ["berlin-1", "CA_1"],
            "item_id": ["sku-17", "FOODS_3_090"],
            "dept_id": ["dairy", ""],
            "cat_id": ["food", None],
            "state_id": ["BE", ""],
            "date": ["2016-01-01", "2016-01-01"],
            "units": ["1", "1"],
        }
    )
    good = run(raw).good
    assert good[["dept_id", "cat_id", "state_id"]].values.tolist() == [
        ["dairy", "food", "BE"],
        ["FOODS_3", "FOODS", "CA"],
    ]


def test_typed_inputs_parquet_like() -> None:
    raw = pd.DataFrame(
        {
            "store_id": pd.Categorical(["CA_1", "CA_2", "CA_3"]),
            "item_id": ["FOODS_3_090"] * 3,
            "date": pd.to_datetime(pd.Series(["2016-01-01 13:00", "2016-01-02 00:00", None])),
            "units": pd.array([1, 2, 3], dtype="Int64"),
            "sell_price": [1.0, np.nan, 2.0],
            "snap": [True, False, True],
        }
    )
    result = run(raw)
    assert result.good["date"].tolist() == [pd.Timestamp("2016-01-01"), pd.Timestamp("2016-01-02")]
    assert result.good["snap"].tolist() == [True, False]
    assert result.rejected["reason"].tolist() == ["missing_key: date missing"]
    assert json.loads(result.rejected["raw"][0])["date"] is None


def test_millisecond_dates_from_parquet_including_out_of_range() -> None:
    dates = np.array(["2016-01-01T10:00", "1000-01-01", "NaT"], dtype="datetime64[ms]")
    raw = pd.DataFrame(
        {"store_id": "CA_1", "item_id": "FOODS_3_090", "date": dates, "units": [1, 2, 3]}
    )
    result = run(raw)
    assert result.good["date"].tolist() == [pd.Timestamp("2016-01-01")]
    assert [r.split(":")[0] for r in result.rejected["reason"]] == ["bad_date", "missing_key"]


def test_integral_float_ids_match_csv_ids() -> None:
    raw = pd.DataFrame(
        {
            "store_id": [1.0, 2.0],
            "item_id": [17.0, 17.5],
            "dept_id": "d",
            "cat_id": "c",
            "state_id": "s",
            "date": ["2016-01-01"] * 2,
            "units": [1, 2],
        }
    )
    assert run(raw).good["series_id"].tolist() == ["1/17", "2/17.5"]


def test_tz_aware_dates_keep_their_calendar_day() -> None:
    raw = pd.DataFrame(
        {
            "store_id": ["CA_1"],
            "item_id": ["FOODS_3_090"],
            "date": pd.to_datetime(["2016-01-01 23:30"]).tz_localize("US/Pacific"),
            "units": [1],
        }
    )
    assert run(raw).good["date"].tolist() == [pd.Timestamp("2016-01-01")]


def test_weekly_frequency_moves_dates_to_monday() -> None:
    raw = pd.DataFrame(
        {
            "store_id": ["CA_1"] * 3,
            "item_id": ["FOODS_3_090"] * 3,
            "date": ["2016-01-08", "2016-01-10", "2016-01-11"],  # Fri, Sun (same week), Mon
            "units": ["1", "2", "3"],
        }
    )
    result = run(raw, freq="W")
    assert result.good["date"].tolist() == [pd.Timestamp("2016-01-04"), pd.Timestamp("2016-01-11")]
    assert (
        result.rejected["reason"]
        .str.startswith("duplicate_in_job: CA_1/FOODS_3_090 2016-01-04")
        .all()
    )
    monthly = period_start(np.array(["2016-02-29", "2016-03-01"], dtype="datetime64[ns]"), "MS")
    assert (
        monthly.tolist() == np.array(["2016-02-01", "2016-03-01"], dtype="datetime64[ns]").tolist()
    )
    with pytest.raises(ValueError, match="frequency"):
        run(raw, freq="H")


def test_missing_required_column_is_an_error_not_a_rejection() -> None:
    with pytest.raises(ValidationError, match="missing units"):
        run(pd.DataFrame({"store_id": ["CA_1"], "item_id": ["x"], "date": ["2016-01-01"]}))
    with pytest.raises(ValueError, match="timezone"):
        validate_sales(
            pd.DataFrame({"store_id": [], "item_id": [], "date": [], "units": []}),
            "j",
            today=TODAY,
            max_future_days=2,
            inserted_at=datetime(2016, 1, 1),
        )


def _big(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.date_range("2014-01-01", periods=n // 100 + 1).strftime("%Y-%m-%d").to_numpy()
    raw = pd.DataFrame(
        {
            "store_id": np.array(STORES * 25, dtype=object)[np.arange(n) % 100],
            "item_id": np.array([f"FOODS_3_{i:03d}" for i in range(100)], dtype=object)[
                np.arange(n) % 100
            ],
            "date": days[np.arange(n) // 100],
            "units": rng.poisson(2, n).astype(str),
            "sell_price": np.round(rng.uniform(1, 9, n), 2).astype(str),
        }
    )
    raw.loc[rng.choice(n, n // 100, replace=False), "units"] = "-1"
    return raw


def test_ten_thousand_rows_well_under_100ms() -> None:
    raw = _big(10_000)
    run(raw)  # warm-up (imports, regex compilation)
    best = min(_cpu(lambda: run(raw)) for _ in range(3))
    assert best < 0.1, f"{best * 1000:.0f} ms CPU"


@pytest.mark.slow
def test_a_million_rows_in_seconds() -> None:
    raw = _big(1_000_000)
    cpu = _cpu(lambda: run(raw))
    assert cpu < 10, f"{cpu:.1f} s CPU"


def _cpu(fn: Any) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0
