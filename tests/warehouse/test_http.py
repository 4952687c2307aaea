"""The served warehouse: the real HTTP service on loopback, used through the client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from salesloop import sql
from salesloop.warehouse import Exec, Merge, Warehouse, WarehouseError
from salesloop.warehouse.duckdb import DuckDBWarehouse
from salesloop.warehouse.http import HttpWarehouse, decode_params, encode_params
from tests.warehouse.conftest import sales_rows
from tests.warehouse.served import served_warehouse


@pytest.fixture
def served(tmp_path: Path) -> Iterator[HttpWarehouse]:
    with served_warehouse(DuckDBWarehouse(tmp_path / "w.duckdb")) as client:
        yield client


def test_params_survive_the_wire() -> None:
    params = {
        "d": date(2016, 1, 1),
        "t": datetime(2016, 1, 1, 5, tzinfo=UTC),
        "xs": ["a", "b"],
        "n": 3,
        "f": 0.5,
    }
    assert decode_params(encode_params(params)) == params


def test_client_implements_the_port(served: HttpWarehouse) -> None:
    assert isinstance(served, Warehouse)
    res = served.insert_job(
        {"sales": sales_rows("j1", pd.date_range("2016-01-01", "2016-01-10"), 2.0)}, job_id="j1"
    )
    assert res.inserted == {"sales": 10} and res.committed_at.tzinfo is not None
    h = served.query(
        sql.load("job_history"),
        {"job_id": "j1", "recent_days": 7, "horizon": 7, "event_id": "", "job_name": ""},
    )
    assert len(h) == 7 and h["units"].sum() == 14.0
    assert served.audit_entries()["inserted_rows"].tolist() == [10]
    ledger = pd.DataFrame(
        [
            {
                "event_id": "e",
                "job_name": "projects/p/jobs/j1",
                "rows_read": 10,
                "series_forecast": 1,
                "alerts_raised": 0,
                "model_version": "v1",
                "job_committed_at": res.committed_at,
                "processed_at": datetime.now(UTC),
            }
        ]
    )
    served.apply([Merge("processed_events", ledger), Merge("processed_events", ledger)])
    assert (
        len(served.query("SELECT * FROM {{ processed_events }} WHERE event_id = @e", {"e": "e"}))
        == 1
    )


def test_errors_come_back_as_warehouse_errors(served: HttpWarehouse) -> None:
    with pytest.raises(WarehouseError, match="failed"):
        served.query("SELECT nope FROM {{ sales }}")
    with pytest.raises(WarehouseError):
        served.apply([Exec("UPDATE {{ alerts }} SET bogus = 1")])


def test_unreachable_service_is_a_clear_error() -> None:
    with pytest.raises(WarehouseError, match="unreachable"):
        HttpWarehouse("http://127.0.0.1:9", timeout_s=1).query("SELECT 1")
