"""A small, fully known world for monitor/report/replay tests: sales of 20 series loaded as daily
insert jobs, forecasts of a model that knows the true rates, and optionally a store that closes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from salesloop.warehouse import Merge, Warehouse

STORES = ("CA_1", "TX_1")
ITEMS = tuple(f"FOODS_1_{i:03d}" for i in range(1, 6)) + tuple(
    f"HOBBIES_1_{i:03d}" for i in range(1, 6)
)
DOW = np.array([0.9, 0.85, 0.85, 0.9, 1.0, 1.25, 1.25])


@dataclass(frozen=True)
class Scenario:
    start: date
    end: date  # last sales date
    now: datetime  # the monitor's instant: the day after `end`
    rates: dict[str, float]


def _rate(series: str, rates: dict[str, float], d: date) -> float:
    return rates[series] * float(DOW[d.weekday()])


def build(
    wh: Warehouse,
    *,
    days: int = 150,
    start: date = date(2016, 1, 1),
    daily_jobs: int = 35,
    forecast_days: int = 35,
    closed_store: str | None = None,
    closed_days: int = 21,
    version: str = "v1",
    backtest_mase: float | None = 0.8,
    seed: int = 5,
) -> Scenario:
    rng = np.random.default_rng(seed)
    series = [(s, i) for s in STORES for i in ITEMS]
    rates = {f"{s}/{i}": float(rng.uniform(3, 9)) for s, i in series}
    dates = [start + timedelta(days=k) for k in range(days)]
    end = dates[-1]
    closed_from = end - timedelta(days=closed_days - 1)
    rows = []
    for store, item in series:
        sid = f"{store}/{item}"
        lam = np.array([_rate(sid, rates, d) for d in dates])
        units = rng.poisson(lam).astype(float)
        if closed_store == store:
            units[[d >= closed_from for d in dates]] = 0.0
        rows.append(
            pd.DataFrame(
                {
                    "series_id": sid,
                    "store_id": store,
                    "item_id": item,
                    "dept_id": item.rsplit("_", 1)[0],
                    "cat_id": item.split("_")[0],
                    "state_id": store.split("_")[0],
                    "date": pd.to_datetime(dates),
                    "units": units,
                    "sell_price": np.round(2.0 + 0.1 * ITEMS.index(item), 2),
                    "snap": [d.day <= 10 for d in dates],
                    "event_name": None,
                }
            )
        )
    sales = pd.concat(rows, ignore_index=True)
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    first_daily = dates[-daily_jobs]
    hist = sales[sales["date"] < pd.Timestamp(first_daily)]
    wh.insert_job(
        {"sales": _job(hist, "history", t0 + timedelta(days=days - daily_jobs))}, "history"
    )
    for d in dates[-daily_jobs:]:
        job = f"day_{d:%Y%m%d}"
        part = sales[sales["date"] == pd.Timestamp(d)]
        wh.insert_job({"sales": _job(part, job, _at(d) + timedelta(hours=1))}, job)
    # Every origin of the last `forecast_days` days x series x horizon, vectorised.
    origins = [end - timedelta(days=k) for k in range(forecast_days, 0, -1)]
    grid = pd.MultiIndex.from_product(
        [pd.to_datetime(origins), sorted(rates), range(1, 8)],
        names=["forecast_origin", "series_id", "horizon_day"],
    ).to_frame(index=False)
    grid["target_date"] = grid["forecast_origin"] + pd.to_timedelta(grid["horizon_day"], unit="D")
    yhat = grid["series_id"].map(rates).to_numpy() * DOW[grid["target_date"].dt.weekday.to_numpy()]
    sd = np.sqrt(yhat)
    job = "day_" + grid["forecast_origin"].dt.strftime("%Y%m%d")
    forecasts = grid.assign(
        store_id=grid["series_id"].str.split("/").str[0],
        cat_id=grid["series_id"].str.split("/").str[1].str.split("_").str[0],
        model_version=version,
        yhat=yhat,
        lo_80=np.maximum(yhat - 1.2816 * sd, 0),
        hi_80=yhat + 1.2816 * sd,
        lo_95=np.maximum(yhat - 1.96 * sd, 0),
        hi_95=yhat + 1.96 * sd,
        event_id=job + "-insert",
        job_id=job,
        created_at=grid["forecast_origin"].dt.tz_localize("UTC") + pd.Timedelta(hours=2),
    )
    mv = pd.DataFrame(
        [
            {
                "version": version,
                "status": "champion",
                "model_kind": "oracle",
                "train_start": pd.Timestamp(start),
                "train_end": pd.Timestamp(first_daily - timedelta(days=1)),
                "metrics": json.dumps({"backtest": {"mase": backtest_mase}})
                if backtest_mase
                else None,
                "reason": "test fixture",
                "created_at": t0,
            }
        ]
    )
    wh.apply([Merge("forecasts", forecasts), Merge("model_versions", mv)])
    return Scenario(start, end, _at(end + timedelta(days=1)) + timedelta(hours=6), rates)


def _at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _job(frame: pd.DataFrame, job_id: str, at: datetime) -> pd.DataFrame:
    return frame.assign(job_id=job_id, row_num=range(len(frame)), inserted_at=pd.Timestamp(at))
