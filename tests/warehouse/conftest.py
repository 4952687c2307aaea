from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from salesloop.warehouse.duckdb import DuckDBWarehouse


def sales_rows(
    job: str,
    dates: list[str] | pd.DatetimeIndex,
    units: float | list[float],
    series: str = "CA_1/FOODS_1_001",
) -> pd.DataFrame:
    store, item = series.split("/")
    n = len(dates)
    return pd.DataFrame(
        {
            "job_id": job,
            "row_num": range(n),
            "series_id": series,
            "store_id": store,
            "item_id": item,
            "dept_id": item.rsplit("_", 1)[0],
            "cat_id": item.split("_")[0],
            "state_id": store.split("_")[0],
            "date": pd.to_datetime(dates),
            "units": units,
            "sell_price": 1.5,
            "snap": False,
            "event_name": None,
            "inserted_at": pd.Timestamp.now(tz="UTC"),
        }
    )


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(":memory:")
    yield w
    w.close()
