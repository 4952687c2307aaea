"""Replay and backfill: re-emit the insert events of a period so the function forecasts again.

Use it after a model change (forecast a period with the new version) or to recover from an outage
whose events were lost. It adds nothing new to the loop: the events are the audit-log CloudEvents
of the original insert jobs with new ids, queued in the local dispatcher's durable store and
delivered like any other event; the function's idempotent writes do the rest.

Idempotence, twice over:

* event ids are ``<job_id>-replay-<tag>``: the same tag gives the same ids, and the delivery store
  ignores an id it already holds, so replaying a period twice with one tag queues nothing the
  second time (and the function's dedup ledger would drop a redelivery anyway);
* a different tag is a new replay: the function processes the events again, and its writes are
  MERGEs that insert only what is absent (forecasts keyed on series, origin, horizon day and model
  version; alerts on their key), so the same model leaves forecasts and alerts as they were, and a
  new model version adds its own rows next to the old ones.

Replayed events carry no ``job_committed_at`` in the store: their delivery latency is not the
loop's commit-to-forecast latency and must not skew its statistics.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pandas as pd
import structlog
from cloudevents.http import CloudEvent

from salesloop import sql
from salesloop.config import Settings
from salesloop.events import build_insert_event
from salesloop.local.dispatcher import DeliveryStore
from salesloop.warehouse import Warehouse

log = structlog.get_logger("replay")

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def replay_event_id(job_id: str, tag: str) -> str:
    return f"{job_id}-replay-{tag}"


def default_tag(now: datetime | None = None) -> str:
    """A fresh tag per invocation (UTC to the second): a new replay unless the caller reuses one."""
    return f"{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%dT%H%M%SZ}"


def replay(
    warehouse: Warehouse,
    store: DeliveryStore,
    settings: Settings,
    date_from: date,
    date_to: date,
    *,
    tag: str,
) -> int:
    """Queue one event per insert job that loaded sales dated in [date_from, date_to]; return how
    many were newly queued (0 when this tag already replayed the period)."""
    if date_to < date_from:
        raise ValueError(f"empty period: {date_from} .. {date_to}")
    if not _TAG.match(tag):
        raise ValueError(f"replay tag {tag!r} must match {_TAG.pattern}")
    jobs = warehouse.query(
        sql.load("monitoring_replay_jobs"), {"date_from": date_from, "date_to": date_to}
    )
    events: list[tuple[int | None, CloudEvent, float | None]] = []
    for job in jobs.to_dict("records"):
        committed = pd.Timestamp(str(job["committed_at"]))
        committed = committed.tz_localize(UTC) if committed.tzinfo is None else committed
        event = build_insert_event(
            event_id=replay_event_id(str(job["job_id"]), tag),
            project=settings.project,
            dataset=settings.warehouse.dataset,
            table=settings.table("sales"),
            job_id=str(job["job_id"]),
            inserted_rows=int(str(job["inserted_rows"])),
            committed_at=committed.to_pydatetime(),
        )
        events.append((None, event, None))
    added = store.enqueue(events) if events else 0
    log.info(
        "replay_queued",
        date_from=str(date_from),
        date_to=str(date_to),
        tag=tag,
        jobs=len(events),
        queued=added,
    )
    return added
