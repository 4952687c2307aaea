"""The audit log's long poll: a committed job reaches a waiting dispatcher at once, not on a timer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from salesloop.warehouse.duckdb import DuckDBWarehouse
from salesloop.warehouse.http import HttpWarehouse
from tests.warehouse.conftest import sales_rows
from tests.warehouse.served import served_warehouse

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[DuckDBWarehouse, HttpWarehouse]]:
    backend = DuckDBWarehouse(tmp_path / "w.duckdb")
    with served_warehouse(backend) as client:
        yield backend, client


def test_waiting_poll_returns_when_a_job_commits(
    served: tuple[DuckDBWarehouse, HttpWarehouse],
) -> None:
    _, client = served
    writer = HttpWarehouse(client.url)
    result: dict[str, object] = {}

    def poll() -> None:
        t0 = time.perf_counter()
        result["frame"] = client.audit_entries(0, 10, wait_s=10.0)
        result["s"] = time.perf_counter() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)  # the poll is now waiting
    committed = time.perf_counter()
    writer.insert_job({"sales": sales_rows("j1", ["2016-01-01"], 1.0)}, job_id="j1")
    t.join(10)
    woke_after = time.perf_counter() - committed
    frame = result["frame"]
    assert isinstance(frame, pd.DataFrame) and list(frame["event_id"]) == ["j1-insert"]
    assert woke_after < 2.0, "the poll slept until its timeout instead of waking on the commit"
    writer.close()


def test_poll_without_news_times_out_empty(served: tuple[DuckDBWarehouse, HttpWarehouse]) -> None:
    _, client = served
    t0 = time.perf_counter()
    assert client.audit_entries(0, 10, wait_s=0.3).empty
    assert 0.25 <= time.perf_counter() - t0 < 5


def test_entries_already_there_are_returned_without_waiting(
    served: tuple[DuckDBWarehouse, HttpWarehouse],
) -> None:
    backend, client = served
    backend.insert_job({"sales": sales_rows("j0", ["2016-01-01"], 1.0)}, job_id="j0")
    t0 = time.perf_counter()
    assert len(client.audit_entries(0, 10, wait_s=10.0)) == 1
    assert time.perf_counter() - t0 < 2.0


def test_fast_deliveries_are_never_sent_twice(
    tmp_path: Path, served: tuple[DuckDBWarehouse, HttpWarehouse]
) -> None:
    """A delivery finishing while the loop picks the next ones must not be picked again."""
    from tests.local.test_dispatcher import _dispatcher, _run_until, _serving

    backend, client = served
    for i in range(60):
        backend.insert_job({"sales": sales_rows(f"f{i}", ["2016-01-01"], 1.0)}, job_id=f"f{i}")
    with _serving() as r:
        disp = _dispatcher(tmp_path, client.url, r.url, workers=4)
        _run_until(disp, lambda: disp.store.counts()["delivered"] == 60, timeout=60)
    assert sorted(r.seen.values()) == [1] * 60, "an event was delivered twice"
