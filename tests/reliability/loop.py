"""A local loop on real processes, for fault injection: jobs in, tables and mailbox out.

Every test works on a private copy of one prepared run folder (history + deployed model), starts
the parts it needs through :class:`~salesloop.local.stack.LocalStack`, inserts the same
deterministic jobs, and compares what the loop left behind (tables, mailbox, delivery state).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from salesloop.config import Settings, load_settings
from salesloop.data.ingest import ingest_frame
from salesloop.local.dispatcher import DeliveryStore
from salesloop.local.mailbox import read_messages
from salesloop.local.prepare import PreparedRun
from salesloop.local.stack import PARTS, LocalStack
from salesloop.mail.render import alert_message_id
from salesloop.warehouse.http import HttpWarehouse

FORECAST_KEY = ["series_id", "forecast_origin", "horizon_day", "model_version"]
# Tight retries so outages resolve in seconds; overridden per test where the policy is the subject.
FAST_EVENTS = {
    "max_attempts": 100,
    "initial_backoff_s": 0.02,
    "max_backoff_s": 0.25,
    "multiplier": 2.0,
    "delivery_timeout_s": 30.0,
}


def bad_rows(day: Any) -> pd.DataFrame:
    """Three invalid rows (quantity, date, key): they must end in rejected_sales, not vanish."""
    base = {"store_id": "CA_1", "item_id": "FOODS_3_001", "sell_price": 2.5, "snap": False}
    iso = pd.Timestamp(day).date().isoformat()
    return pd.DataFrame(
        [
            {**base, "date": iso, "units": "-3"},
            {**base, "date": "2016-13-45", "units": "4"},
            {**base, "item_id": None, "date": iso, "units": "1"},
        ]
    )


def live_jobs(
    prepared: PreparedRun, *, days: int, jobs_per_day: int = 2, with_bad_rows: bool = True
) -> list[tuple[str, pd.DataFrame]]:
    """The first ``days`` live days as ``jobs_per_day`` insert jobs each (stores split in groups).

    Job ids are fixed, so two runs of the same jobs are comparable row for row.
    """
    live = prepared.live()
    live_day = pd.to_datetime(live["date"])
    stores = sorted(live["store_id"].unique())
    groups = np.array_split(np.array(stores), jobs_per_day)
    jobs = []
    for day in prepared.live_days()[:days]:
        rows = live[live_day == pd.Timestamp(day)]
        for g, group in enumerate(groups):
            job = rows[rows["store_id"].isin(list(group))].astype(object)
            if with_bad_rows and g == 0:
                job = pd.concat([job, bad_rows(day)], ignore_index=True)
            jobs.append((f"rel_{day:%Y%m%d}_{g}", job.reset_index(drop=True)))
    return jobs


@dataclass
class Loop:
    """One run folder with its parts; a context manager that always stops them."""

    prepared: PreparedRun
    dispatcher_args: list[str] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=lambda: dict(FAST_EVENTS))
    extra_overlay: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    # The plain-HTTP Vertex client: these scenarios are about delivery, not the client, and a
    # fresh function process then starts in ~2 s instead of importing the SDK (~9 s of CPU) on
    # its first event. The SDK client has its own tests (tests/predictor, tests/e2e).
    predictor_client: str = "http"

    def __post_init__(self) -> None:
        overlay = {"events": self.events, **self.extra_overlay}
        self.stack = LocalStack(
            self.prepared.run_dir,
            dispatcher_args=self.dispatcher_args,
            extra_overlay=overlay,
            ports=dict(self.ports),
            predictor_client=self.predictor_client,
        )
        self.settings: Settings = load_settings("local", extra_overlay=self.stack.overlay_path)
        self.store = DeliveryStore(self.stack.dispatcher_state)
        # The history loaded while preparing is before the loop's time: it fires no event.
        self.base_seq = self.store.cursor()
        self._wh: HttpWarehouse | None = None

    # -- parts ---------------------------------------------------------------------------------
    def start(self, *parts: str) -> Loop:
        """Start the parts side by side (each pays its imports), then wait until all are ready."""
        self.stack.start_all(parts or PARTS, timeout_s=120)
        return self

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._wh is not None:
            self._wh.close()
        self.store.close()
        self.stack.stop_all()

    @property
    def wh(self) -> HttpWarehouse:
        if self._wh is None:
            self._wh = HttpWarehouse(self.stack.warehouse_url, timeout_s=30)
        return self._wh

    # -- input ---------------------------------------------------------------------------------
    def insert(self, jobs: Iterable[tuple[str, pd.DataFrame]]) -> int:
        n = 0
        for job_id, frame in jobs:
            ingest_frame(self.wh, frame, job_id=job_id, settings=self.settings)
            n += 1
        return n

    # -- waiting -------------------------------------------------------------------------------
    def audit(self) -> pd.DataFrame:
        """The audit entries of the jobs inserted by this run (one event each)."""
        return self.wh.audit_entries(self.base_seq, limit=1_000_000)

    def audit_count(self) -> int:
        return len(self.audit())

    def wait_until(
        self, cond: Callable[[], bool], timeout_s: float, what: str, *, check_parts: bool = True
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return
            if check_parts:
                for part, proc in self.stack.procs.items():
                    if proc.poll() is not None:
                        raise AssertionError(
                            f"{part} died (exit {proc.returncode}): {self.log(part)[-2000:]}"
                        )
            time.sleep(0.05)
        raise AssertionError(
            f"timed out after {timeout_s:.0f}s waiting for {what}: {self.store.counts()}"
        )

    def wait_enqueued(self, timeout_s: float = 60.0) -> None:
        """Until the dispatcher has taken every audit entry into its queue."""
        expected = self.audit_count()
        self.wait_until(
            lambda: sum(self.store.counts().values()) >= expected,
            timeout_s,
            f"{expected} events enqueued",
        )

    def wait_drained(self, timeout_s: float = 120.0, *, check_parts: bool = True) -> None:
        """Every audit entry enqueued and no delivery pending (delivered or dead)."""
        expected = self.audit_count()

        def drained() -> bool:
            c = self.store.counts()
            return c["pending"] == 0 and c["delivered"] + c["dead"] >= expected

        self.wait_until(drained, timeout_s, f"{expected} events drained", check_parts=check_parts)

    # -- output --------------------------------------------------------------------------------
    def table(self, name: str, order: str | None = None) -> pd.DataFrame:
        sql = f"SELECT * FROM {{{{ {name} }}}}" + (f" ORDER BY {order}" if order else "")
        return self.wh.query(sql)

    def log(self, part: str) -> str:
        return self.stack.log_text(part)

    def log_events(self, part: str) -> list[dict[str, Any]]:
        return self.stack.log_events(part)

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in read_messages(self.stack.maildir)]


# -- checks shared by the scenarios ------------------------------------------------------------


def assert_exactly_once(loop: Loop) -> dict[str, Any]:
    """No lost event, no duplicate forecast, one email per alert and recipient; returns tables."""
    audit = loop.audit()
    ledger = loop.table("processed_events")
    missing = set(audit["event_id"]) - set(ledger["event_id"])
    assert not missing, f"events never processed: {sorted(missing)[:5]}"
    assert len(ledger) == len(audit), "the ledger holds an event twice or one that was never sent"
    forecasts = loop.table("forecasts", order=", ".join(FORECAST_KEY))
    dup = forecasts.duplicated(FORECAST_KEY)
    assert not dup.any(), f"duplicate forecast rows: {forecasts.loc[dup, FORECAST_KEY].head()}"
    alerts = loop.table("alerts", order="alert_key")
    assert alerts["alert_key"].is_unique
    assert (alerts["status"] == "sent").all(), alerts.loc[alerts["status"] != "sent", "alert_key"]
    ids = loop.message_ids()
    assert len(ids) == len(set(ids)), "the same email was stored twice"
    assert set(ids) == expected_message_ids(alerts), "mailbox differs from the alerts' emails"
    return {"audit": audit, "ledger": ledger, "forecasts": forecasts, "alerts": alerts}


def expected_message_ids(alerts: pd.DataFrame) -> set[str]:
    """One email per raising event and recipient, covering that recipient's alerts of the event."""
    out: set[str] = set()
    for _, group in alerts.groupby("event_id"):
        by_recipient: dict[str, list[str]] = {}
        for key, recipients in zip(group["alert_key"], group["recipients"], strict=True):
            for r in str(recipients).split(","):
                if r.strip():
                    by_recipient.setdefault(r.strip(), []).append(str(key))
        out |= {alert_message_id(r, keys) for r, keys in by_recipient.items()}
    return out


def alert_pairs(alerts: pd.DataFrame) -> set[tuple[str, str]]:
    """(alert key, recipient): what "one email per alert and recipient" is about."""
    return {
        (str(k), r.strip())
        for k, rs in zip(alerts["alert_key"], alerts["recipients"], strict=True)
        for r in str(rs).split(",")
        if r.strip()
    }


def comparable_forecasts(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Forecast rows without what legitimately differs between runs (who wrote them, when)."""
    drop = [c for c in ("event_id", "job_id", "created_at") if c in forecasts.columns]
    return forecasts.drop(columns=drop).sort_values(FORECAST_KEY).reset_index(drop=True)


_ABORTED = re.compile(r"Connection aborted|RemoteDisconnected|Connection reset|ChunkedEncoding")


def aborted_deliveries(loop: Loop) -> int:
    """Deliveries cut off by the function dying mid-request (not refused connections)."""
    return sum(
        1
        for e in loop.log_events("dispatcher")
        if e.get("event") == "delivery_failed" and _ABORTED.search(str(e.get("error", "")))
    )
