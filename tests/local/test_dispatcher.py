"""The local dispatcher against a real HTTP receiver: at-least-once, backoff, dead letter, restarts."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cloudevents.http import from_http

from salesloop.config import EventSettings
from salesloop.events import parse_insert_event
from salesloop.local.dispatcher import DeliveryStore, Dispatcher, DispatcherOptions, backoff_s
from salesloop.local.warehouse_server import WarehouseHTTPServer
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.warehouse.conftest import sales_rows

FAST = EventSettings(
    max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05, multiplier=2.0, delivery_timeout_s=2
)


class Receiver(ThreadingHTTPServer):
    """A CloudEvent receiver that fails the first ``fail_first`` requests of each event."""

    daemon_threads = True

    def __init__(self, fail_first: int = 0, always_fail: bool = False):
        self.fail_first, self.always_fail = fail_first, always_fail
        self.seen: dict[str, int] = {}
        self.ok: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ev = from_http(dict(self.headers), body)
                parse_insert_event(ev, project=None, dataset="salesloop", table="sales")
                with receiver.lock:
                    n = receiver.seen[ev["id"]] = receiver.seen.get(ev["id"], 0) + 1
                    fail = receiver.always_fail or n <= receiver.fail_first
                    if not fail:
                        receiver.ok.append(ev["id"])
                self.send_response(500 if fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(("127.0.0.1", 0), H)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[tuple[DuckDBWarehouse, str]]:
    backend = DuckDBWarehouse(tmp_path / "w.duckdb")
    server = WarehouseHTTPServer(("127.0.0.1", 0), backend)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield backend, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    backend.close()


@contextlib.contextmanager
def _serving(**options: Any) -> Iterator[Receiver]:
    """A started Receiver, shut down and its port closed even when the test fails."""
    r = Receiver(**options)
    threading.Thread(target=r.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield r
    finally:
        r.shutdown()
        r.server_close()


def _run_until(disp: Dispatcher, cond: Any, timeout: float = 20) -> None:
    t = threading.Thread(target=disp.run, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.02)
    disp.stop()
    t.join(10)
    assert cond(), "condition not reached in time"


def _jobs(backend: DuckDBWarehouse, n: int) -> None:
    for i in range(n):
        backend.insert_job(
            {"sales": sales_rows(f"j{i}", pd.date_range("2016-01-01", periods=3), 1.0)},
            job_id=f"j{i}",
        )


def _dispatcher(tmp_path: Path, wh_url: str, fn_url: str, **kw: Any) -> Dispatcher:
    return Dispatcher(
        DeliveryStore(tmp_path / "d.sqlite"),
        DispatcherOptions(fn_url, wh_url, **kw),
        FAST,
        project="salesloop-local",
        dataset="salesloop",
        table="sales",
    )


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(0)
    caps = [max(backoff_s(FAST, n, rng) for _ in range(50)) for n in range(1, 8)]
    assert caps[0] <= 0.01 and caps[-1] <= 0.05 and caps[2] > caps[0]


def test_retries_until_delivered_exactly_once_acked(
    tmp_path: Path, warehouse: tuple[DuckDBWarehouse, str]
) -> None:
    backend, url = warehouse
    _jobs(backend, 5)
    with _serving(fail_first=2) as r:
        disp = _dispatcher(tmp_path, url, r.url)
        _run_until(disp, lambda: disp.store.counts()["delivered"] == 5)
    assert sorted(r.ok) == sorted(f"j{i}-insert" for i in range(5))
    assert all(n == 3 for n in r.seen.values())


def test_dead_letter_then_replay(tmp_path: Path, warehouse: tuple[DuckDBWarehouse, str]) -> None:
    backend, url = warehouse
    _jobs(backend, 2)
    with _serving(always_fail=True) as down:
        disp = _dispatcher(tmp_path, url, down.url)
        _run_until(disp, lambda: disp.store.counts()["dead"] == 2)
    assert all(n == FAST.max_attempts for n in down.seen.values())
    with _serving() as up:
        assert disp.store.redeliver_dead() == 2
        disp2 = _dispatcher(tmp_path, url, up.url)
        _run_until(disp2, lambda: disp2.store.counts()["delivered"] == 2)
    assert sorted(up.ok) == ["j0-insert", "j1-insert"]


def test_pending_deliveries_survive_a_dispatcher_restart(
    tmp_path: Path, warehouse: tuple[DuckDBWarehouse, str]
) -> None:
    backend, url = warehouse
    _jobs(backend, 3)
    disp = _dispatcher(tmp_path, url, "http://127.0.0.1:9/")  # nothing listens: all stay pending
    disp.poll_audit_log()
    assert disp.store.counts()["pending"] == 3
    _jobs_after = 2
    for i in range(3, 3 + _jobs_after):
        backend.insert_job({"sales": sales_rows(f"j{i}", ["2016-02-01"], 1.0)}, job_id=f"j{i}")
    with _serving() as r:
        again = _dispatcher(tmp_path, url, r.url)  # a new process: same state file
        _run_until(again, lambda: again.store.counts()["delivered"] == 5)
    assert len(set(r.ok)) == 5 and again.store.cursor() == 5


def test_copies_mode_delivers_each_event_several_times(
    tmp_path: Path, warehouse: tuple[DuckDBWarehouse, str]
) -> None:
    backend, url = warehouse
    _jobs(backend, 3)
    with _serving() as r:
        disp = _dispatcher(tmp_path, url, r.url, copies=3, shuffle=True)
        _run_until(disp, lambda: disp.store.counts()["delivered"] == 3)
    assert sorted(r.seen.values()) == [3, 3, 3] and disp.store.total_acks() == 9


def test_replaying_delivered_events_delivers_each_again(
    tmp_path: Path, warehouse: tuple[DuckDBWarehouse, str]
) -> None:
    backend, url = warehouse
    _jobs(backend, 3)
    with _serving() as r:
        disp = _dispatcher(tmp_path, url, r.url)
        _run_until(disp, lambda: disp.store.counts()["delivered"] == 3)
        assert disp.store.replay_delivered(copies=2) == 3
        assert disp.store.counts() == {"pending": 3, "delivered": 0, "dead": 0}
        disp2 = _dispatcher(tmp_path, url, r.url)
        _run_until(disp2, lambda: disp2.store.counts()["delivered"] == 3)
    assert sorted(r.seen.values()) == [3, 3, 3] and disp2.store.total_acks() == 9
    with pytest.raises(ValueError, match="at least 1"):
        disp2.store.replay_delivered(copies=0)


def test_event_payload_is_the_audit_shape(
    tmp_path: Path, warehouse: tuple[DuckDBWarehouse, str]
) -> None:
    backend, url = warehouse
    _jobs(backend, 1)
    disp = _dispatcher(tmp_path, url, "http://127.0.0.1:9/")
    disp.poll_audit_log()
    row = disp.store.due(10)[0]
    data = json.loads(row["data"])
    assert data["protoPayload"]["metadata"]["tableDataChange"]["insertedRowsCount"] == "3"
