from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesloop.config import Settings, load_settings
from salesloop.evaluation.periods import aggregate_sales
from salesloop.pipeline.frame import (
    FrameValidationError,
    extract_frame,
    training_query,
    validate_frame,
)
from salesloop.training_settings import TrainingSettings, training_settings
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.training.helpers import as_sales_rows, daily_sales, write_overlay


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(tmp_path_factory.mktemp("wh") / "w.duckdb")
    df = daily_sales(30, 120)
    wh.insert_job({"sales": as_sales_rows(df, "j1")}, job_id="j1")
    # a later job corrects one series-day: the latest insert must win
    fix = df[(df["series_id"] == df["series_id"].iloc[0]) & (df["date"] == df["date"].max())]
    fix = as_sales_rows(fix.assign(units=999.0), "j2")
    fix["inserted_at"] = pd.Timestamp("2021-01-01", tz="UTC")
    wh.insert_job({"sales": fix}, job_id="j2")
    return wh


def _settings(tmp_path: Path, **training: object) -> tuple[Settings, TrainingSettings]:
    settings = load_settings(
        "local", extra_overlay=write_overlay(tmp_path / "o.yaml", dict(training))
    )
    return settings, training_settings(settings)


def test_extract_pushes_window_filter_and_corrections_down(warehouse: DuckDBWarehouse) -> None:
    rows = extract_frame(warehouse, history_days=30)
    assert rows.attrs["end_date"] == str(rows["date"].max().date())
    assert rows["date"].nunique() == 30
    assert rows.duplicated(["series_id", "date"]).sum() == 0
    assert (rows["units"] == 999.0).sum() == 1
    ca1 = extract_frame(warehouse, history_days=30, series_filter="CA_1/%")
    assert set(ca1["store_id"]) == {"CA_1"} and len(ca1) == 30 * ca1["series_id"].nunique()
    upto = extract_frame(warehouse, history_days=10, end_date=date(2014, 2, 1))
    assert upto["date"].max() == pd.Timestamp("2014-02-01") and upto["date"].nunique() == 10
    with pytest.raises(ValueError, match="LIKE pattern"):
        extract_frame(warehouse, history_days=30, series_filter="x'; DROP TABLE sales")
    assert "@series_like" in training_query("CA_%") and "@series_like" not in training_query()


def test_a_good_frame_passes_with_stats(tmp_path: Path) -> None:
    settings, train = _settings(tmp_path)
    frame, report = validate_frame(daily_sales(10, 120), settings, train)
    assert report.ok and report.stats["series"] == 10 and report.stats["periods"] == 120
    assert set(frame.columns) >= {"unique_id", "ds", "y", "cat_id", "sell_price"}


def test_a_bad_frame_stops_with_every_problem(tmp_path: Path) -> None:
    settings, train = _settings(tmp_path)
    raw = daily_sales(10, 120)
    raw.loc[3, "units"] = -2.0
    raw.loc[4, "units"] = np.inf
    raw["date"] = raw["date"].where(raw.index != 5, raw["date"].iloc[6])  # duplicate series-day
    with pytest.raises(FrameValidationError) as info:
        validate_frame(raw, settings, train)
    text = str(info.value)
    assert "units: greater_than_or_equal_to(0.0) failed on 1 rows" in text
    assert "units: finite failed on 1 rows (e.g. inf)" in text
    assert "duplicate series-day rows: 2 rows" in text
    assert not info.value.report.ok and len(info.value.report.problems) == 3


def test_gaps_short_history_and_staleness_are_reported(tmp_path: Path) -> None:
    settings, train = _settings(tmp_path)
    raw = daily_sales(10, 60)
    sparse = raw[raw["date"].dt.dayofweek < 2]  # 5 of 7 days missing
    with pytest.raises(FrameValidationError) as info:
        validate_frame(sparse, settings, train, end_date=date(2014, 4, 30))
    problems = "\n".join(info.value.report.problems)
    assert "have no row (gaps)" in problems
    assert "periods before the end date 2014-04-30" in problems
    short = raw[raw["date"] < raw["date"].min() + pd.Timedelta(days=30)]
    with pytest.raises(FrameValidationError, match="30 periods of history, 57 needed"):
        validate_frame(short, settings, train)


def test_weekly_rows_must_be_aligned(tmp_path: Path) -> None:
    settings = load_settings(
        "local",
        extra_overlay=write_overlay(
            tmp_path / "w.yaml",
            {"backtest": {"min_train_periods": 20}},
            forecast={"freq": "W", "horizon": 4, "season_length": 4},
        ),
    )
    train = training_settings(settings)
    weekly = aggregate_sales(daily_sales(10, 280), "W")
    frame, report = validate_frame(weekly, settings, train)
    assert report.stats["freq"] == "W-MON" and frame["ds"].dt.dayofweek.eq(0).all()
    shifted = weekly.copy()
    shifted.loc[shifted.index[:5], "date"] += pd.Timedelta(days=2)
    with pytest.raises(FrameValidationError, match="not aligned"):
        validate_frame(shifted, settings, train)
