"""The service streams query results as Arrow straight from DuckDB: the client must still get
exactly the frame the in-process warehouse returns (values and dtypes), for every table and for
the function's history query."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from salesloop import sql
from salesloop.schemas import TABLES
from salesloop.warehouse import Merge
from salesloop.warehouse.duckdb import DuckDBWarehouse
from salesloop.warehouse.http import HttpWarehouse
from tests.warehouse.conftest import sales_rows
from tests.warehouse.served import served_warehouse


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[DuckDBWarehouse, HttpWarehouse]]:
    backend = DuckDBWarehouse(tmp_path / "w.duckdb")
    backend.insert_job(
        {"sales": sales_rows("j1", pd.date_range("2016-01-01", periods=70), 2.0)}, job_id="j1"
    )
    backend.insert_job(
        {"sales": sales_rows("j2", ["2016-03-10"], 5.0, series="TX_1/HOBBIES_1_001")},
        job_id="j2",
    )
    ledger = pd.DataFrame(
        [
            {
                "event_id": "e1",
                "job_name": "projects/p/jobs/j1",
                "rows_read": 70,
                "series_forecast": 1,
                "alerts_raised": 0,
                "model_version": None,
                "job_committed_at": datetime(2016, 3, 10, 6, tzinfo=UTC),
                "processed_at": datetime(2016, 3, 10, 6, 1, tzinfo=UTC),
            }
        ]
    )
    calendar = pd.DataFrame(
        {
            "date": pd.date_range("2016-03-09", periods=10),
            "state_id": "CA",
            "snap": [True, False] * 5,
            "event_name": [None] * 9 + ["Easter"],
            "loaded_at": datetime(2016, 3, 1, tzinfo=UTC),
        }
    )
    backend.apply([Merge("processed_events", ledger), Merge("calendar", calendar)])
    with served_warehouse(backend) as client:
        yield backend, client


QUERIES = [
    *[(f"SELECT * FROM {{{{ {name} }}}}", None) for name in TABLES],
    # with the horizon's calendar rows (CA) and the ledger's row; without either (TX)
    (
        sql.load("job_history"),
        {
            "job_id": "j1",
            "recent_days": 63,
            "horizon": 7,
            "event_id": "e1",
            "job_name": "projects/p/jobs/j1",
        },
    ),
    (
        sql.load("job_history"),
        {"job_id": "j2", "recent_days": 63, "horizon": 7, "event_id": "e9", "job_name": "x"},
    ),
    ("SELECT * FROM {{ sales }} WHERE job_id = @j", {"j": "nothing"}),
    ("SELECT COUNT(*) AS n, MAX(date) AS last FROM {{ sales }}", None),
    # NULLs in an integer and a boolean column (DuckDB: nullable Int64 / boolean)
    (
        "SELECT rows_read, CAST(NULL AS INT64) AS none, rows_read > 1 AS many FROM {{ processed_events }}"
        " UNION ALL SELECT NULL, 1, NULL",
        None,
    ),
]


@pytest.mark.parametrize(("text", "params"), QUERIES, ids=lambda q: str(q)[:40])
def test_served_frame_equals_the_in_process_frame(
    both: tuple[DuckDBWarehouse, HttpWarehouse], text: str, params: dict[str, object] | None
) -> None:
    backend, client = both
    local, served = backend.query(text, params), client.query(text, params)
    assert served.dtypes.astype(str).to_dict() == local.dtypes.astype(str).to_dict()
    pd.testing.assert_frame_equal(served, local)
