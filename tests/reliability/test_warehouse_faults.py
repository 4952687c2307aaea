"""A warehouse write failing in the middle: nothing of it is visible, before or after a crash.

Two kinds of failure. A statement failing inside a multi-statement write (the function's one
transaction, an insert job's sales + rejected rows): DuckDB rolls the whole transaction back and
the client gets an error, so the event is retried and lands once. And the warehouse *process*
SIGKILLed while writers are busy: after the restart DuckDB replays its write-ahead log, and every
job and every forecast write is there entirely (when it was acknowledged, always) or not at all.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from salesloop.config import load_settings
from salesloop.data.ingest import ingest_frame
from salesloop.events import build_insert_event
from salesloop.local.prepare import PreparedRun
from salesloop.local.stack import LocalStack
from salesloop.on_sale import OnSaleHandler
from salesloop.predictor.in_process import InProcessPredictor
from salesloop.warehouse import Exec, Merge, Mutation, WarehouseError
from salesloop.warehouse.duckdb import DuckDBWarehouse
from salesloop.warehouse.http import HttpWarehouse
from tests.reliability.loop import live_jobs
from tests.warehouse.conftest import sales_rows
from tests.warehouse.served import served_warehouse

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("reliability"),
    pytest.mark.filterwarnings("ignore:Found null values in:UserWarning"),
]

EFFECT_TABLES = ("forecasts", "alerts", "processed_events")


class FailingSecondWrite:
    """The warehouse port, except that the next ``apply`` fails after its first mutation ran."""

    def __init__(self, inner: HttpWarehouse) -> None:
        self.inner = inner
        self.armed = True
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, mutations: Sequence[Mutation]) -> None:
        if self.armed and len(mutations) > 1:
            self.armed = False
            self.failed += 1
            poisoned = [
                mutations[0],
                Exec("SELECT ERROR('injected write failure')"),
                *mutations[1:],
            ]
            self.inner.apply(poisoned)
            raise AssertionError("the poisoned transaction was accepted")
        self.inner.apply(mutations)


@pytest.fixture
def served(run_copy: PreparedRun) -> Iterator[HttpWarehouse]:
    backend = DuckDBWarehouse(
        run_copy.run_dir / "warehouse.duckdb", settings=load_settings("local")
    )
    with served_warehouse(backend) as client:
        yield client


def _counts(wh: HttpWarehouse) -> dict[str, int]:
    return {
        t: int(wh.query(f"SELECT COUNT(*) AS n FROM {{{{ {t} }}}}")["n"][0]) for t in EFFECT_TABLES
    }


def test_function_write_failing_midway_leaves_nothing_then_lands_once(
    run_copy: PreparedRun, served: HttpWarehouse
) -> None:
    settings = load_settings("local")
    (job_id, frame), *_ = live_jobs(run_copy, days=1, jobs_per_day=1)
    report = ingest_frame(served, frame, job_id=job_id, settings=settings)
    committed = report.jobs[0].committed_at
    event = build_insert_event(
        event_id=f"{job_id}-insert",
        project=settings.project,
        dataset=settings.warehouse.dataset,
        table=settings.table("sales"),
        job_id=job_id,
        inserted_rows=report.good,
        committed_at=committed,
    )
    faulty = FailingSecondWrite(served)
    sent: list[Any] = []
    handler = OnSaleHandler(
        settings,
        faulty,
        InProcessPredictor(run_copy.run_dir / "registry", "sales-forecast"),
        sent.append,
    )
    before = _counts(served)
    with pytest.raises(WarehouseError, match="injected write failure"):
        handler.handle(event)  # the function raises: HTTP 500, the event is redelivered
    assert faulty.failed == 1
    assert _counts(served) == before, "a failed transaction left part of its writes"
    outcome = handler.handle(event)  # the redelivery
    assert outcome.status == "processed" and outcome.forecast_rows > 0
    after = _counts(served)
    assert after["forecasts"] == before["forecasts"] + outcome.forecast_rows
    assert after["processed_events"] == before["processed_events"] + 1
    assert handler.handle(event).status == "duplicate"
    assert _counts(served) == after


def test_insert_job_failing_midway_commits_no_row_and_no_event(served: HttpWarehouse) -> None:
    audit_before = len(served.audit_entries(0, 1_000_000))
    sales_before = int(served.query("SELECT COUNT(*) AS n FROM {{ sales }}")["n"][0])
    good = sales_rows("half", pd.date_range("2016-01-01", periods=50), 1.0)
    broken = pd.DataFrame({"job_id": ["half"], "row_num": [0]})  # lacks reason, raw, ...
    with pytest.raises(WarehouseError):
        served.insert_job({"sales": good, "rejected_sales": broken}, job_id="half")
    assert int(served.query("SELECT COUNT(*) AS n FROM {{ sales }}")["n"][0]) == sales_before
    assert len(served.audit_entries(0, 1_000_000)) == audit_before, "an event for a rolled-back job"


# -- the warehouse process killed during writes --------------------------------------------------

ROWS_PER_JOB = 3_000
KILLS = 4


class Writers:
    """Insert jobs and function-shaped writes (forecasts + ledger row) against the service."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.jobs: dict[str, bool] = {}  # job id -> acknowledged
        self.applies: dict[str, bool] = {}  # event id -> acknowledged
        self.lock = threading.Lock()

    def _jobs(self) -> None:
        client = HttpWarehouse(self.url, timeout_s=30)
        n = 0
        while not self.stop.is_set():
            job = f"crash_job_{n:04d}"
            n += 1
            rows = sales_rows(
                job,
                pd.date_range("2015-01-01", periods=ROWS_PER_JOB),
                2.0,
                series=f"WI_9/HOBBIES_9_{n:03d}",
            )
            with self.lock:
                self.jobs[job] = False
            try:
                client.insert_job({"sales": rows}, job_id=job)
            except WarehouseError:
                time.sleep(0.05)  # down: try the next job
                client.close()
                client = HttpWarehouse(self.url, timeout_s=30)
                continue
            with self.lock:
                self.jobs[job] = True
        client.close()

    def _applies(self) -> None:
        client = HttpWarehouse(self.url, timeout_s=30)
        n = 0
        while not self.stop.is_set():
            event_id = f"crash_event_{n:04d}"
            n += 1
            forecasts = _forecast_rows(event_id, series=400)
            ledger = pd.DataFrame(
                [
                    {
                        "event_id": event_id,
                        "job_name": f"projects/salesloop-local/jobs/{event_id}",
                        "rows_read": 1,
                        "series_forecast": 400,
                        "alerts_raised": 0,
                        "model_version": "v9",
                        "job_committed_at": datetime.now(UTC),
                        "processed_at": datetime.now(UTC),
                    }
                ]
            )
            with self.lock:
                self.applies[event_id] = False
            try:
                client.apply([Merge("forecasts", forecasts), Merge("processed_events", ledger)])
            except WarehouseError:
                time.sleep(0.05)
                client.close()
                client = HttpWarehouse(self.url, timeout_s=30)
                continue
            with self.lock:
                self.applies[event_id] = True
        client.close()

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=t, daemon=True) for t in (self._jobs, self._applies)]
        for t in threads:
            t.start()
        return threads


def _forecast_rows(event_id: str, series: int) -> pd.DataFrame:
    n = series * 7
    return pd.DataFrame(
        {
            "series_id": [f"{event_id}/S{i // 7:04d}" for i in range(n)],
            "store_id": "CA_1",
            "cat_id": "FOODS",
            "forecast_origin": pd.Timestamp("2016-01-01"),
            "horizon_day": [i % 7 + 1 for i in range(n)],
            "target_date": [
                pd.Timestamp("2016-01-01") + pd.Timedelta(days=i % 7 + 1) for i in range(n)
            ],
            "yhat": 1.0,
            "lo_80": 0.5,
            "hi_80": 1.5,
            "lo_95": 0.2,
            "hi_95": 2.0,
            "model_version": "v9",
            "event_id": event_id,
            "job_id": event_id,
            "created_at": datetime.now(UTC),
        }
    )


def test_warehouse_process_sigkilled_during_writes_recovers_all_or_nothing(
    run_copy: PreparedRun, tmp_path: Path
) -> None:
    rng = random.Random(7)
    stack = LocalStack(run_copy.run_dir)
    try:
        stack.start("warehouse")
        writers = Writers(stack.warehouse_url)
        threads = writers.run()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            stack.kill("warehouse")
            stack.start("warehouse")  # DuckDB replays its WAL on open
        time.sleep(0.5)
        writers.stop.set()
        for t in threads:
            t.join(60)
        wh = HttpWarehouse(stack.warehouse_url)
        per_job = wh.query(
            "SELECT job_id, COUNT(*) AS n FROM {{ sales }} WHERE job_id LIKE 'crash_job_%' GROUP BY job_id"
        )
        audit = wh.audit_entries(0, 1_000_000)
        per_event = wh.query(
            "SELECT event_id, COUNT(*) AS n FROM {{ forecasts }} WHERE event_id LIKE 'crash_event_%'"
            " GROUP BY event_id"
        )
        ledger = set(wh.query("SELECT event_id FROM {{ processed_events }}")["event_id"])
        wh.close()
    finally:
        stack.stop_all()

    rows = dict(zip(per_job["job_id"], per_job["n"], strict=True))
    audited = {e.removesuffix("-insert") for e in audit["event_id"]}
    acked_jobs = {j for j, ok in writers.jobs.items() if ok}
    assert len(acked_jobs) >= 3 and len(writers.jobs) > len(acked_jobs), "no write ever failed"
    for job in writers.jobs:
        assert rows.get(job, 0) in (0, ROWS_PER_JOB), f"{job}: partial job ({rows.get(job)} rows)"
        assert (rows.get(job, 0) > 0) == (job in audited), f"{job}: rows and audit entry disagree"
    assert acked_jobs <= set(rows), "an acknowledged job was lost"
    counts = dict(zip(per_event["event_id"], per_event["n"], strict=True))
    acked_events = {e for e, ok in writers.applies.items() if ok}
    assert acked_events, "no function-shaped write was acknowledged"
    for event_id in writers.applies:
        assert counts.get(event_id, 0) in (0, 400 * 7), f"{event_id}: partial forecast write"
        assert (event_id in counts) == (event_id in ledger), f"{event_id}: forecasts without ledger"
    assert acked_events <= set(counts), "an acknowledged write was lost"
