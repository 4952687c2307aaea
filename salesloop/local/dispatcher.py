"""The local event dispatcher: Eventarc's part in the local environment.

It tails the warehouse's audit log, turns each committed insert job into the audit-log CloudEvent
Eventarc would send, and delivers it in binary mode over HTTP to the function, at-least-once:
non-2xx or a timeout is retried with exponential backoff and jitter; after ``max_attempts`` the
event is dead-lettered (and can be replayed). All delivery state lives in a SQLite file, updated
in the same transaction as the audit-log cursor, so a restart of the dispatcher or of the function
loses nothing; an event may then be delivered again, which the function must (and does) tolerate.

Run: ``python -m salesloop.local.dispatcher --state F --warehouse-url U --function-url U``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import requests
import structlog
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from salesloop.config import EventSettings, load_settings
from salesloop.events import build_insert_event
from salesloop.logging import configure
from salesloop.stop_signals import StopSignals

log = structlog.get_logger("dispatcher")

SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
  event_id TEXT PRIMARY KEY,
  seq INTEGER,
  attributes TEXT NOT NULL,
  data TEXT NOT NULL,
  job_committed_at REAL,
  status TEXT NOT NULL DEFAULT 'pending',      -- pending | delivered | dead
  attempts INTEGER NOT NULL DEFAULT 0,
  acks INTEGER NOT NULL DEFAULT 0,              -- 2xx responses (more than 1 = redelivered)
  copies_left INTEGER NOT NULL DEFAULT 1,       -- >1 only in at-least-once stress tests
  next_attempt_at REAL NOT NULL,
  last_error TEXT,
  enqueued_at REAL NOT NULL,
  delivered_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
"""


def backoff_s(policy: EventSettings, attempts: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter, capped; ``attempts`` already made (≥ 1)."""
    cap = min(
        policy.max_backoff_s, policy.initial_backoff_s * policy.multiplier ** max(0, attempts - 1)
    )
    return rng.uniform(cap / 2, cap)


class DeliveryStore:
    """The dispatcher's durable state; also read by the demo and tests to know what happened."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._con().executescript(
            SCHEMA
        )  # executescript commits by itself: no explicit transaction

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection (checkpoints the WAL, so the file can be copied)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def cursor(self) -> int:
        row = self._con().execute("SELECT seq FROM cursor WHERE name = 'audit'").fetchone()
        return int(row[0]) if row else 0

    def enqueue(
        self,
        events: list[tuple[int | None, CloudEvent, float | None]],
        *,
        new_cursor: int | None = None,
        copies: int = 1,
    ) -> int:
        """Add events (idempotent on event id) and advance the audit cursor in one transaction."""
        now = time.time()
        added = 0
        with self._tx() as con:
            for seq, event, committed in events:
                cur = con.execute(
                    "INSERT OR IGNORE INTO deliveries (event_id, seq, attributes, data, job_committed_at, copies_left,"
                    " next_attempt_at, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event["id"],
                        seq,
                        json.dumps(dict(event.get_attributes())),
                        json.dumps(event.get_data()),
                        committed,
                        copies,
                        now,
                        now,
                    ),
                )
                added += cur.rowcount
            if new_cursor is not None:
                con.execute(
                    "INSERT INTO cursor (name, seq) VALUES ('audit', ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                    (new_cursor,),
                )
        return added

    def due(self, limit: int, shuffle: bool = False) -> list[sqlite3.Row]:
        con = self._con()
        con.row_factory = sqlite3.Row
        order = "RANDOM()" if shuffle else "next_attempt_at, seq"
        return list(
            con.execute(
                f"SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY {order} LIMIT ?",
                (time.time(), limit),
            )
        )

    def record(
        self, event_id: str, ok: bool, error: str | None, policy: EventSettings, rng: random.Random
    ) -> str:
        now = time.time()
        with self._tx() as con:
            row = con.execute(
                "SELECT attempts, copies_left, status FROM deliveries WHERE event_id = ?",
                (event_id,),
            ).fetchone()
            attempts, copies_left = int(row[0]) + 1, int(row[1])
            if ok:
                copies_left -= 1
                status = "delivered" if copies_left <= 0 else "pending"
                if row[2] == "dead":  # the function gave up on it and said so (dead_letter below)
                    status = "dead"
                con.execute(
                    "UPDATE deliveries SET attempts = ?, acks = acks + 1, copies_left = ?, status = ?,"
                    " delivered_at = CASE WHEN status = 'dead' THEN delivered_at"
                    " ELSE COALESCE(delivered_at, ?) END,"
                    " last_error = CASE WHEN status = 'dead' THEN last_error END,"
                    " next_attempt_at = ? WHERE event_id = ?",
                    (attempts, copies_left, status, now, now, event_id),
                )
                return status
            status = "dead" if attempts >= policy.max_attempts else "pending"
            con.execute(
                "UPDATE deliveries SET attempts = ?, status = ?, last_error = ?, next_attempt_at = ? WHERE event_id = ?",
                (
                    attempts,
                    status,
                    (error or "")[:500],
                    now + backoff_s(policy, attempts, rng),
                    event_id,
                ),
            )
            return status

    def dead_letter(self, attributes: dict[str, Any], data: Any, reason: str) -> None:
        """The function gave up on this event (:mod:`salesloop.dead_letter`): mark it dead here,
        with the event as delivered, so that ``redeliver_dead`` replays it like the others."""
        now = time.time()
        with self._tx() as con:
            con.execute(
                "INSERT INTO deliveries (event_id, attributes, data, status, last_error,"
                " next_attempt_at, enqueued_at) VALUES (?, ?, ?, 'dead', ?, ?, ?)"
                " ON CONFLICT(event_id) DO UPDATE SET status = 'dead', last_error = excluded.last_error",
                (
                    str(attributes["id"]),
                    json.dumps(attributes),
                    json.dumps(data),
                    reason[:500],
                    now,
                    now,
                ),
            )

    def _requeue(self, status: str, copies: int) -> int:
        """Every event in ``status`` back to pending, due now, with a fresh attempt budget."""
        with self._tx() as con:
            return con.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, copies_left = ?,"
                " next_attempt_at = ? WHERE status = ?",
                (copies, time.time(), status),
            ).rowcount

    def redeliver_dead(self) -> int:
        """Replay dead-lettered events: back to pending with a fresh attempt budget."""
        return self._requeue("dead", 1)

    def replay_delivered(self, copies: int = 1) -> int:
        """Deliver every acknowledged event ``copies`` more times, each with a fresh attempt
        budget (Pub/Sub's seek to an earlier time does the same to a subscription): the function
        must find each in its ledger and do nothing twice. Stress tests use it to keep events in
        flight for as long as they need."""
        if copies < 1:
            raise ValueError("copies must be at least 1")
        return self._requeue("delivered", copies)

    def counts(self) -> dict[str, int]:
        rows = (
            self._con()
            .execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
            .fetchall()
        )
        out = {"pending": 0, "delivered": 0, "dead": 0}
        out.update({str(s): int(n) for s, n in rows})
        return out

    def latencies_ms(self, since: float | None = None) -> list[float]:
        """Insert-job commit → function acknowledged (forecast committed), per delivered event.

        ``since`` (epoch seconds) keeps jobs committed from then on: a backfill loaded before the
        function was started would otherwise count its wait for the function as latency.
        """
        rows = (
            self._con()
            .execute(
                "SELECT (delivered_at - job_committed_at) * 1000 FROM deliveries"
                " WHERE status = 'delivered' AND job_committed_at IS NOT NULL AND job_committed_at >= ?",
                (since if since is not None else 0.0,),
            )
            .fetchall()
        )
        return [float(r[0]) for r in rows]

    def deliveries(self) -> dict[str, dict[str, Any]]:
        """Per event id: status, attempts, acks, last error and times (for status commands, tests
        and the load benchmark's latency breakdown)."""
        rows = self._con().execute(
            "SELECT event_id, status, attempts, acks, last_error, job_committed_at, enqueued_at,"
            " delivered_at FROM deliveries"
        )
        cols = (
            "status",
            "attempts",
            "acks",
            "last_error",
            "job_committed_at",
            "enqueued_at",
            "delivered_at",
        )
        return {str(r[0]): dict(zip(cols, r[1:], strict=True)) for r in rows}

    def total_acks(self) -> int:
        return int(
            self._con().execute("SELECT COALESCE(SUM(acks), 0) FROM deliveries").fetchone()[0]
        )

    def total_attempts(self) -> int:
        return int(
            self._con().execute("SELECT COALESCE(SUM(attempts), 0) FROM deliveries").fetchone()[0]
        )


@dataclass
class DispatcherOptions:
    function_url: str
    warehouse_url: str
    workers: int = 2
    # Upper bound on how long a due retry waits to be noticed; new events wake the loop at once.
    poll_interval_s: float = 0.02
    copies: int = 1
    shuffle: bool = False
    # The audit poll is a long poll: the warehouse answers as soon as a job commits (or after this).
    audit_wait_s: float = 1.0


class Dispatcher:
    """Two loops: one tails the audit log (long poll) into the store, one delivers due events.

    Why two: a long poll that blocks until the next commit is what makes insert → delivery take
    about a millisecond instead of half a poll interval, and it must not hold up retries.
    """

    def __init__(
        self,
        store: DeliveryStore,
        options: DispatcherOptions,
        policy: EventSettings,
        *,
        project: str,
        dataset: str,
        table: str,
        seed: int = 0,
    ):
        from salesloop.warehouse.http import HttpWarehouse

        self.store = store
        self.options = options
        self.policy = policy
        self.project, self.dataset, self.table = project, dataset, table
        self.warehouse = HttpWarehouse(options.warehouse_url, timeout_s=10)
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sessions = threading.local()
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _session(self) -> requests.Session:
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
        return session

    def poll_audit_log(self, wait_s: float = 0.0) -> int:
        entries = self.warehouse.audit_entries(self.store.cursor(), limit=500, wait_s=wait_s)
        if entries.empty:
            return 0
        events: list[tuple[int | None, CloudEvent, float | None]] = []
        for seq, event_id, job_name, rows, committed_at in zip(
            entries["seq"].tolist(),
            entries["event_id"].tolist(),
            entries["job_name"].tolist(),
            entries["inserted_rows"].tolist(),
            entries["committed_at"].tolist(),
            strict=True,
        ):
            committed: datetime = pd.Timestamp(committed_at).to_pydatetime()
            ev = build_insert_event(
                event_id=str(event_id),
                project=self.project,
                dataset=self.dataset,
                table=self.table,
                job_id=str(job_name).rsplit("/", 1)[-1],
                inserted_rows=int(rows),
                committed_at=committed,
            )
            events.append((int(seq), ev, committed.timestamp()))
        added = self.store.enqueue(
            events, new_cursor=int(entries["seq"].max()), copies=self.options.copies
        )
        self._wake.set()
        return added

    def deliver_one(self, row: Any) -> None:
        event = CloudEvent(json.loads(row["attributes"]), json.loads(row["data"]))
        headers, body = to_binary(event)
        ok, error = False, None
        try:
            resp = self._session().post(
                self.options.function_url,
                headers=headers,
                data=body,
                timeout=self.policy.delivery_timeout_s,
            )
            ok = 200 <= resp.status_code < 300
            if not ok:
                error = f"HTTP {resp.status_code}: {resp.text[:200]}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        status = self.store.record(row["event_id"], ok, error, self.policy, self._rng)
        if not ok:
            log.warning(
                "delivery_failed",
                event_id=row["event_id"],
                attempt=row["attempts"] + 1,
                status=status,
                error=error,
            )
        if status == "dead":
            log.error("event_dead_lettered", event_id=row["event_id"], attempts=row["attempts"] + 1)

    def _tail_audit_log(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_audit_log(wait_s=self.options.audit_wait_s)
            except Exception as exc:  # the warehouse may be restarting: keep going
                log.warning("audit_poll_failed", error=str(exc)[:200])
                self._stop.wait(min(1.0, 10 * self.options.poll_interval_s))

    def run(self) -> None:
        log.info("dispatcher_started", function_url=self.options.function_url)
        tail = threading.Thread(target=self._tail_audit_log, name="audit-tail", daemon=True)
        tail.start()
        with ThreadPoolExecutor(max_workers=self.options.workers) as pool:
            while not self._stop.is_set():
                self._wake.clear()
                # Under the lock from the query to the claim: a delivery finishing in between
                # would otherwise leave the in-flight set while the query still saw it pending,
                # and be sent twice.
                with self._lock:
                    free = self.options.workers - len(self._in_flight)
                    rows = []
                    if free > 0:
                        rows = [
                            r
                            for r in self.store.due(free * 2, self.options.shuffle)
                            if r["event_id"] not in self._in_flight
                        ][:free]
                    self._in_flight.update(r["event_id"] for r in rows)
                for row in rows:
                    pool.submit(self._deliver_tracked, row)
                if not rows:
                    # New events and finished deliveries set _wake; retries become due by time.
                    self._wake.wait(self.options.poll_interval_s)
        tail.join(self.options.audit_wait_s + 15)
        log.info("dispatcher_stopped")

    def _deliver_tracked(self, row: Any) -> None:
        try:
            self.deliver_one(row)
        except Exception:
            log.exception("delivery_crashed", event_id=row["event_id"])
        finally:
            with self._lock:
                self._in_flight.discard(row["event_id"])
            self._wake.set()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--warehouse-url", required=True)
    p.add_argument("--function-url", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--copies", type=int, default=1, help="deliver each event this many times (stress tests)"
    )
    p.add_argument("--shuffle", action="store_true", help="deliver due events in random order")
    p.add_argument("--env", default=None)
    args = p.parse_args(argv)
    configure(os.environ.get("SALESLOOP_LOG_LEVEL", "INFO"))
    settings = load_settings(args.env)
    store = DeliveryStore(args.state)
    disp = Dispatcher(
        store,
        DispatcherOptions(
            args.function_url,
            args.warehouse_url,
            args.workers,
            copies=args.copies,
            shuffle=args.shuffle,
        ),
        settings.events,
        project=settings.project,
        dataset=settings.warehouse.dataset,
        table=settings.table("sales"),
    )
    StopSignals().install().on_stop(disp.stop)
    disp.run()


if __name__ == "__main__":
    main()
