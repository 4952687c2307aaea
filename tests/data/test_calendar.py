"""The calendar table's data tooling: the generator's calendar, M5's calendar.csv, long files,
clear errors, the upsert into the warehouse, ``salesloop data calendar`` and the serving split."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from salesloop.data import cli
from salesloop.data.calendar import (
    CalendarError,
    from_m5,
    generated_calendar,
    load_calendar,
    normalize_calendar,
    read_calendar_file,
    split_job_history,
)
from salesloop.data.generate import generate_frame
from salesloop.warehouse.duckdb import DuckDBWarehouse

NOW = datetime(2016, 6, 1, 9, 0, tzinfo=UTC)

M5_CSV = """date,wm_yr_wk,weekday,wday,month,year,d,event_name_1,event_type_1,event_name_2,event_type_2,snap_CA,snap_TX,snap_WI
2011-01-29,11101,Saturday,1,1,2011,d_1,,,,,0,0,0
2011-02-06,11102,Sunday,2,2,2011,d_9,SuperBowl,Sporting,,,1,1,0
2011-04-24,11113,Sunday,2,4,2011,d_86,OrthodoxEaster,Religious,Easter,Cultural,0,0,1
"""


def test_generated_calendar_is_what_the_generated_sales_carry() -> None:
    start, days = date(2015, 12, 20), 40
    sales = generate_frame(30, days, start=start)
    cal = generated_calendar(start, days + 7)
    assert len(cal) == 3 * (days + 7)
    assert cal.groupby("state_id")["date"].max().eq(pd.Timestamp(start + timedelta(days + 6))).all()
    per_day = sales.drop_duplicates(["state_id", "date"])[
        ["state_id", "date", "snap", "event_name"]
    ]
    merged = per_day.merge(cal, on=["state_id", "date"], suffixes=("_sales", "_cal"))
    assert len(merged) == len(per_day) == 3 * days
    assert (merged["snap_sales"] == merged["snap_cal"]).all()
    assert merged["event_name_sales"].fillna("").eq(merged["event_name_cal"].fillna("")).all()
    assert "Christmas" in set(merged["event_name_cal"].dropna())
    with pytest.raises(CalendarError, match="n_days"):
        generated_calendar(start, 0)


def test_m5_calendar_becomes_one_row_per_state_and_day(tmp_path: Path) -> None:
    path = tmp_path / "calendar.csv"
    path.write_text(M5_CSV)
    cal = read_calendar_file(path)
    assert list(cal.columns) == ["date", "state_id", "snap", "event_name"]
    assert len(cal) == 9 and set(cal["state_id"]) == {"CA", "TX", "WI"}
    day = cal[cal["date"] == pd.Timestamp("2011-02-06")].set_index("state_id")
    assert day["snap"].to_dict() == {"CA": True, "TX": True, "WI": False}
    assert set(day["event_name"]) == {"SuperBowl"}
    two = cal[cal["date"] == pd.Timestamp("2011-04-24")]
    assert set(two["event_name"]) == {"OrthodoxEaster|Easter"}
    assert cal[cal["date"] == pd.Timestamp("2011-01-29")]["event_name"].isna().all()
    with pytest.raises(CalendarError, match="not an M5 calendar"):
        from_m5(pd.DataFrame({"day": ["2011-01-29"], "snap_CA": [0]}))


def test_long_files_csv_and_parquet(tmp_path: Path) -> None:
    long = pd.DataFrame(
        {
            "date": ["2016-01-01", "2016-01-02"],
            "state_id": [" CA", "CA"],
            "snap": ["true", "0"],
            "event_name": ["NewYear", ""],
        }
    )
    long.to_csv(tmp_path / "c.csv", index=False)
    from_csv = read_calendar_file(tmp_path / "c.csv")
    assert from_csv["snap"].tolist() == [True, False]
    assert from_csv["state_id"].tolist() == ["CA", "CA"]
    assert from_csv["event_name"].tolist() == ["NewYear", None]
    typed = long.assign(date=pd.to_datetime(long["date"]), snap=[True, False])
    typed.to_parquet(tmp_path / "c.parquet")
    pd.testing.assert_frame_equal(read_calendar_file(tmp_path / "c.parquet"), from_csv)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"date": ["2016-01-01"], "snap": [1]}), "lacks column.*state_id"),
        (
            pd.DataFrame({"date": ["01/02/2016"], "state_id": ["CA"], "snap": [1]}),
            r"1 row\(s\) where date is not a date \(YYYY-MM-DD\) \(row 0: '01/02/2016'\)",
        ),
        (
            pd.DataFrame({"date": ["2016-01-01"], "state_id": [""], "snap": [1]}),
            "state_id is empty",
        ),
        (
            pd.DataFrame({"date": ["2016-01-01"], "state_id": ["CA"], "snap": ["maybe"]}),
            "snap is not a boolean",
        ),
        (
            pd.DataFrame({"date": ["2016-01-01"] * 2, "state_id": ["CA"] * 2, "snap": [1, 0]}),
            "appears more than once",
        ),
    ],
)
def test_bad_calendars_fail_naming_the_column(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        normalize_calendar(frame)


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="file not found"):
        read_calendar_file(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("date,state_id,snap\n2016-01-01,CA,perhaps\n")
    with pytest.raises(CalendarError, match=r"bad.csv: 1 row\(s\) where snap"):
        read_calendar_file(tmp_path / "bad.csv")


def test_load_upserts_on_day_and_state() -> None:
    wh = DuckDBWarehouse(":memory:")
    try:
        first = generated_calendar(date(2016, 1, 1), 10)
        report = load_calendar(wh, first, now=NOW)
        assert report.rows == 30 and report.states == ("CA", "TX", "WI")
        assert (report.first, report.last) == (date(2016, 1, 1), date(2016, 1, 10))
        assert (
            report.snap_days == int(first["snap"].sum()) and report.event_days == 2
        )  # NewYear, OrthodoxChristmas
        # A corrected day and days further ahead: the day is replaced, the rest added.
        fix = generated_calendar(date(2016, 1, 10), 5)
        fix.loc[fix["state_id"] == "CA", "snap"] = False
        fix.loc[fix["date"] == pd.Timestamp("2016-01-10"), "event_name"] = "Inventory"
        load_calendar(wh, fix, now=NOW + timedelta(days=1))
        rows = wh.query("SELECT * FROM {{ calendar }} ORDER BY state_id, date")
        assert len(rows) == 3 * 14
        tenth = rows[(rows["date"] == pd.Timestamp("2016-01-10")) & (rows["state_id"] == "CA")]
        assert tenth[["snap", "event_name"]].values.tolist() == [[False, "Inventory"]]
        assert tenth["loaded_at"].iloc[0] == pd.Timestamp(NOW + timedelta(days=1))
        ninth = rows[(rows["date"] == pd.Timestamp("2016-01-09")) & (rows["state_id"] == "CA")]
        assert ninth["snap"].tolist() == [True]  # untouched by the second load
    finally:
        wh.close()


def test_cli_loads_the_generated_or_a_file_calendar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import salesloop.warehouse as warehouse

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    closed: list[bool] = []
    monkeypatch.setattr(warehouse, "open_warehouse", lambda settings: wh)
    monkeypatch.setattr(wh, "close", lambda: closed.append(True))
    runner = CliRunner()
    result = runner.invoke(cli.app, ["calendar", "--start", "2016-01-01", "--days", "30"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # 30 days of history and the local environment's 7-day horizon, per state.
    assert (report["rows"], report["first"], report["last"]) == (111, "2016-01-01", "2016-02-06")
    assert closed == [True]
    (tmp_path / "calendar.csv").write_text(M5_CSV)
    result = runner.invoke(cli.app, ["calendar", str(tmp_path / "calendar.csv")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["states"] == ["CA", "TX", "WI"]
    assert len(wh.query("SELECT * FROM {{ calendar }}")) == 111 + 9
    bad = runner.invoke(cli.app, ["calendar", str(tmp_path / "nope.csv")])
    assert bad.exit_code == 2 and "file not found" in bad.output
    ahead = runner.invoke(cli.app, ["calendar", "--ahead", "-1"])
    assert ahead.exit_code == 2
    wh._con.close()


def test_split_job_history_separates_the_horizon_rows() -> None:
    rows = pd.DataFrame(
        {
            "series_id": ["a", "a", "a"],
            "date": pd.to_datetime(["2016-01-01", "2016-01-02", "2016-01-03"]),
            "units": [1.0, 2.0, None],
            "snap": [False, True, True],
            "event_name": [None, None, "Easter"],
            "part": ["history", "history", "calendar"],
        }
    )
    history, future = split_job_history(rows)
    assert history["units"].tolist() == [1.0, 2.0]
    assert future is not None
    assert future.to_dict("list") == {
        "series_id": ["a"],
        "date": [pd.Timestamp("2016-01-03")],
        "snap": [True],
        "event_name": ["Easter"],
    }
    only_history = rows.iloc[:2]
    kept, none = split_job_history(only_history)
    assert kept is only_history and none is None  # no copy when there is nothing to split
    no_marker = rows.drop(columns="part")
    assert split_job_history(no_marker)[1] is None
