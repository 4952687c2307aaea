"""A small warehouse with known sales and forecasts, shared by the monitoring tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from salesloop.warehouse.duckdb import DuckDBWarehouse

SERIES = (
    ("CA_1", "FOODS_1_001"),
    ("CA_1", "HOBBIES_1_001"),
    ("TX_1", "FOODS_1_001"),
    ("TX_1", "HOBBIES_1_002"),
)
START = date(2016, 1, 1)
T0 = datetime(2016, 1, 1, tzinfo=UTC)


def sales_frame(
    job_id: str,
    series: tuple[str, str],
    dates: list[date],
    units: list[float] | np.ndarray,
    *,
    inserted_at: datetime = T0,
    price: float | list[float] = 2.0,
    snap: bool | list[bool] = False,
) -> pd.DataFrame:
    store, item = series
    n = len(dates)
    return pd.DataFrame(
        {
            "job_id": job_id,
            "row_num": range(n),
            "series_id": f"{store}/{item}",
            "store_id": store,
            "item_id": item,
            "dept_id": item.rsplit("_", 1)[0],
            "cat_id": item.split("_")[0],
            "state_id": store.split("_")[0],
            "date": pd.to_datetime(dates),
            "units": np.asarray(units, dtype=float),
            "sell_price": price,
            "snap": snap,
            "event_name": None,
            "inserted_at": pd.Timestamp(inserted_at),
        }
    )


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def forecast_frame(
    series: tuple[str, str],
    origin: date,
    yhat: list[float] | np.ndarray,
    *,
    version: str = "v1",
    width80: float = 2.0,
    width95: float = 4.0,
    created_at: datetime | None = None,
) -> pd.DataFrame:
    store, item = series
    y = np.asarray(yhat, dtype=float)
    h = np.arange(1, len(y) + 1)
    return pd.DataFrame(
        {
            "series_id": f"{store}/{item}",
            "store_id": store,
            "cat_id": item.split("_")[0],
            "forecast_origin": pd.Timestamp(origin),
            "horizon_day": h,
            "target_date": [pd.Timestamp(origin + timedelta(days=int(k))) for k in h],
            "model_version": version,
            "yhat": y,
            "lo_80": np.maximum(y - width80, 0),
            "hi_80": y + width80,
            "lo_95": np.maximum(y - width95, 0),
            "hi_95": y + width95,
            "event_id": f"e-{origin}",
            "job_id": f"j-{origin}",
            "created_at": pd.Timestamp(
                created_at or datetime.combine(origin, datetime.min.time(), UTC)
            ),
        }
    )


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(":memory:")
    yield w
    w.close()
