"""The monitoring queries on DuckDB, checked against an independent pandas computation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from salesloop import sql
from salesloop.warehouse import Merge
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.monitoring.conftest import SERIES, START, T0, days, forecast_frame, sales_frame

WINDOW = (date(2016, 2, 20), date(2016, 3, 5))


def _load(wh: DuckDBWarehouse) -> tuple[pd.DataFrame, pd.DataFrame]:
    """70 days of sales for 4 series, a correction job, forecasts of v1 (2 origins) and v2."""
    rng = np.random.default_rng(11)
    dates = days(START, 70)  # 2016-01-01 .. 2016-03-10
    sales = []
    for i, s in enumerate(SERIES):
        units = rng.poisson(3 + 2 * i, len(dates)).astype(float)
        if i == 3:
            units[:] = 5.0  # constant history: scale 0, left out of MASE
        sales.append(sales_frame(f"j{i}", s, dates, units))
    wh.insert_job({"sales": pd.concat(sales)}, job_id="base")
    # A later job corrects two days of the first series: the latest insert must win.
    fix = sales_frame(
        "fix",
        SERIES[0],
        [date(2016, 2, 22), date(2016, 1, 20)],
        [40.0, 0.0],
        inserted_at=T0 + timedelta(days=90),
    )
    wh.insert_job({"sales": fix}, job_id="fix")
    fcs = []
    for i, s in enumerate(SERIES):
        for origin in (date(2016, 2, 18), date(2016, 2, 25), date(2016, 3, 8)):
            fcs.append(forecast_frame(s, origin, rng.uniform(1, 10, 7), width80=2 + i))
        fcs.append(forecast_frame(s, date(2016, 2, 25), np.full(7, 100.0), version="v2"))
    wh.apply([Merge("forecasts", pd.concat(fcs))])
    return wh.query("SELECT * FROM {{ sales }}"), wh.query("SELECT * FROM {{ forecasts }}")


def _expected(sales: pd.DataFrame, fc: pd.DataFrame, season: int, scale_days: int) -> pd.DataFrame:
    latest = (
        sales.sort_values(["inserted_at", "job_id"])
        .groupby(["series_id", "date"], as_index=False)
        .last()
    )
    latest["date"] = pd.to_datetime(latest["date"])
    f = fc[
        (fc["model_version"] == "v1")
        & (fc["target_date"] >= pd.Timestamp(WINDOW[0]))
        & (fc["target_date"] <= pd.Timestamp(WINDOW[1]))
    ].copy()
    f["target_date"] = pd.to_datetime(f["target_date"])
    j = f.merge(
        latest[["series_id", "date", "units"]],
        left_on=["series_id", "target_date"],
        right_on=["series_id", "date"],
    )
    scales = {}
    for sid, first in f.groupby("series_id")["forecast_origin"].min().items():
        h = latest[
            (latest["series_id"] == sid)
            & (latest["date"] <= pd.Timestamp(first))
            & (latest["date"] > pd.Timestamp(first) - pd.Timedelta(days=scale_days))
        ].set_index("date")["units"]
        lagged = h.shift(season, freq="D").reindex(h.index)
        scales[sid] = (h - lagged).abs().mean()
    rows = []
    for scope, part in [("overall", j)] + [
        (f"{kind}:{k}", g)
        for kind, col in (("cat", "cat_id"), ("store", "store_id"))
        for k, g in j.groupby(col)
    ]:
        y, yh = part["units"], part["yhat"]
        per = [
            (g["units"] - g["yhat"]).abs().mean() / scales[sid]
            for sid, g in part.groupby("series_id")
            if scales[sid] > 0
        ]
        signed = [
            (g["yhat"] - g["units"]).mean() / scales[sid]
            for sid, g in part.groupby("series_id")
            if scales[sid] > 0
        ]
        rows.append(
            {
                "scope": scope,
                "n_forecasts": len(part),
                "wape": (y - yh).abs().sum() / y.abs().sum(),
                "bias": (yh - y).sum() / y.sum(),
                "coverage_80": ((y >= part["lo_80"]) & (y <= part["hi_80"])).mean(),
                "coverage_95": ((y >= part["lo_95"]) & (y <= part["hi_95"])).mean(),
                "mase": np.mean(per) if per else np.nan,
                "scaled_bias": np.mean(signed) if signed else np.nan,
                "n_series_mase": len(per),
            }
        )
    return pd.DataFrame(rows).sort_values("scope").reset_index(drop=True)


@pytest.mark.parametrize("scale_days", [28, 364])
def test_accuracy_matches_pandas(wh: DuckDBWarehouse, scale_days: int) -> None:
    sales, fc = _load(wh)
    got = wh.query(
        sql.load("monitoring_accuracy"),
        {
            "model_version": "v1",
            "window_start": WINDOW[0],
            "window_end": WINDOW[1],
            "season_days": 7,
            "scale_days": scale_days,
        },
    )
    want = _expected(sales, fc, 7, scale_days)
    assert (
        got["scope"].tolist()
        == want["scope"].tolist()
        == ["cat:FOODS", "cat:HOBBIES", "overall", "store:CA_1", "store:TX_1"]
    )
    for col in ("n_forecasts", "n_series_mase"):
        assert got[col].astype(int).tolist() == want[col].tolist(), col
    for col in ("wape", "bias", "coverage_80", "coverage_95", "mase", "scaled_bias"):
        np.testing.assert_allclose(
            got[col].astype(float), want[col].astype(float), rtol=1e-9, err_msg=col
        )
    # The window: origins 02-18 (targets 19..25: 19 is outside), 02-25 (26..03-03); 03-08 → no actuals.
    assert int(got.set_index("scope").loc["overall", "n_forecasts"]) == 4 * (6 + 7)


def test_correction_changes_the_actual_used(wh: DuckDBWarehouse) -> None:
    _load(wh)
    params = {
        "model_version": "v1",
        "window_start": date(2016, 2, 22),
        "window_end": date(2016, 2, 22),
        "season_days": 7,
        "scale_days": 28,
    }
    got = wh.query(sql.load("monitoring_accuracy"), params).set_index("scope")
    assert float(got.loc["store:CA_1", "actual_units"]) > 40.0  # the corrected 40, not the original


def test_no_forecasts_gives_no_rows(wh: DuckDBWarehouse) -> None:
    _load(wh)
    got = wh.query(
        sql.load("monitoring_accuracy"),
        {
            "model_version": "nope",
            "window_start": WINDOW[0],
            "window_end": WINDOW[1],
            "season_days": 7,
            "scale_days": 28,
        },
    )
    assert got.empty


def test_feature_values_are_weighted_counts(wh: DuckDBWarehouse) -> None:
    d = days(START, 4)
    wh.insert_job(
        {
            "sales": sales_frame(
                "a",
                SERIES[0],
                d,
                [0, 0, 1, 3],
                price=[1.0, 1.0, 1.004, 2.0],
                snap=[True, False, False, False],
            )
        },
        job_id="a",
    )
    # Correction of day 4: units 3 → 0, snap → True.
    wh.insert_job(
        {
            "sales": sales_frame(
                "b", SERIES[0], d[3:], [0], inserted_at=T0 + timedelta(days=9), price=2.0, snap=True
            )
        },
        job_id="b",
    )
    got = wh.query(sql.load("monitoring_feature_values"), {"start_date": d[0], "end_date": d[-1]})
    units = got[got["feature"] == "units"].set_index("num_value")["n"].to_dict()
    assert units == {0.0: 3, 1.0: 1}
    price = got[got["feature"] == "sell_price"].set_index("num_value")["n"].to_dict()
    assert price == {1.0: 3, 2.0: 1}
    snap = got[got["feature"] == "snap"].set_index("cat_value")["n"].to_dict()
    assert snap == {"true": 2, "false": 2}


def test_prediction_values_and_current_version(wh: DuckDBWarehouse) -> None:
    wh.apply(
        [
            Merge(
                "forecasts", forecast_frame(SERIES[0], date(2016, 2, 1), [1.0] * 7, version="old")
            ),
            Merge(
                "forecasts",
                forecast_frame(
                    SERIES[0],
                    date(2016, 2, 2),
                    [1.0, 1.0, 2.004, 2, 2, 2, 2],
                    version="new",
                    created_at=datetime(2016, 2, 3, tzinfo=UTC),
                ),
            ),
        ]
    )
    cur = wh.query(sql.load("monitoring_current_version"))
    assert cur["model_version"].tolist() == ["new"]
    got = wh.query(
        sql.load("monitoring_prediction_values"),
        {"model_version": "new", "start_date": date(2016, 2, 1), "end_date": date(2016, 2, 2)},
    )
    assert got.set_index("num_value")["n"].to_dict() == {1.0: 2, 2.0: 5}


def test_replay_jobs_lists_whole_jobs_touching_the_period(wh: DuckDBWarehouse) -> None:
    wh.insert_job({"sales": sales_frame("x", SERIES[0], days(START, 5), [1] * 5)}, job_id="x")
    wh.insert_job(
        {
            "sales": sales_frame(
                "y",
                SERIES[1],
                days(START + timedelta(days=10), 2),
                [1, 2],
                inserted_at=T0 + timedelta(days=12),
            )
        },
        job_id="y",
    )
    got = wh.query(
        sql.load("monitoring_replay_jobs"),
        {"date_from": START + timedelta(days=4), "date_to": START + timedelta(days=10)},
    )
    assert got["job_id"].tolist() == ["x", "y"]
    assert got["inserted_rows"].tolist() == [5, 2]


@pytest.mark.parametrize(
    "name",
    [
        "monitoring_history",
        "monitoring_model_versions",
        "monitoring_alerts_sent",
        "monitoring_last_retrain",
        "monitoring_model_version",
    ],
)
def test_listing_queries_run(wh: DuckDBWarehouse, name: str) -> None:
    params = {
        "monitoring_history": {"since": datetime(2016, 1, 1, tzinfo=UTC)},
        "monitoring_model_versions": {},
        "monitoring_alerts_sent": {"since": datetime(2016, 1, 1, tzinfo=UTC)},
        "monitoring_last_retrain": {"since": datetime(2016, 1, 1, tzinfo=UTC)},
        "monitoring_model_version": {"version": "v1"},
    }[name]
    assert wh.query(sql.load(name), params).empty
