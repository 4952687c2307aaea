"""What happens when sales land: one insert event → forecasts, alerts and emails, exactly once.

The steps, each idempotent so that at-least-once delivery is harmless:

1. parse and validate the audit-log event (malformed → logged and acknowledged, never retried);
2. one query (``job_history.sql``) for the affected series' recent history, their horizon's
   known calendar (SNAP, events: sent as the instances' ``future``) and the dedup ledger's entry
   for this delivery: an event already in ``processed_events`` only gets its unsent emails
   flushed;
3. the predictor in chunks under the payload limit;
4. forecasts, new alerts and the ledger row are MERGEd in **one** transaction keyed on their
   natural keys: a crash before the commit leaves nothing, a redelivery after it changes nothing;
5. pending alerts are emailed (one email per recipient, deterministic Message-ID) and marked
   sent. A failure here raises, the event is redelivered, step 2 sends what is still pending.

The ``event_processed`` log line carries the event's milliseconds per step (``phase_ms``), so the
logs alone say where a slow event's time went.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import structlog

from salesloop import sql
from salesloop.alerts import evaluate_alerts
from salesloop.config import Settings
from salesloop.data.calendar import already_processed, split_job_history
from salesloop.events import InsertEvent, InvalidEvent, parse_insert_event
from salesloop.mail import build_alert_email
from salesloop.predictor.codec import instances_from_history, predictions_to_frame
from salesloop.warehouse import Exec, Merge, Warehouse

log = structlog.get_logger("on_sale")

# Days of history sent to the model and used for the trailing baseline and email charts.
RECENT_DAYS = 63


@dataclass(frozen=True)
class Outcome:
    status: Literal["processed", "duplicate", "rejected", "empty"]
    event_id: str | None = None
    series: int = 0
    forecast_rows: int = 0
    alerts: int = 0
    emails: int = 0
    model_version: str | None = None
    reason: str | None = None
    # Milliseconds per step (PhaseClock): where one event's time went, in its log line.
    phase_ms: dict[str, float] = field(default_factory=dict)


class PhaseClock:
    """Laps of one event's steps, summed per phase name.

    Why: the insert → forecast latency is a sum of a few round trips and some framing; the log line
    of every event says which of them it paid for (read, predict, write, ...), so a slow event can
    be explained from the logs alone, in the cloud as locally.
    """

    def __init__(self, timer: Callable[[], float] = time.perf_counter) -> None:
        self.ms: dict[str, float] = {}
        self._timer = timer
        self._last = timer()

    def lap(self, phase: str) -> None:
        now = self._timer()
        self.ms[phase] = round(self.ms.get(phase, 0.0) + (now - self._last) * 1000, 2)
        self._last = now


class OnSaleHandler:
    """The function's logic, with its ports injected (warehouse, predictor, mailer)."""

    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse,
        predictor: Any,
        send_email: Callable[[Any], None],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.settings = settings
        self.warehouse = warehouse
        self.predictor = predictor
        self.send_email = send_email
        self.clock = clock

    # -- entry point -----------------------------------------------------------------------
    def handle(self, cloud_event: Any) -> Outcome:
        started = time.perf_counter()
        try:
            event = parse_insert_event(
                cloud_event,
                project=None if self.settings.env == "local" else self.settings.project,
                dataset=self.settings.warehouse.dataset,
                table=self.settings.table("sales"),
            )
        except InvalidEvent as exc:
            log.warning("event_rejected", reason=str(exc))
            return Outcome("rejected", reason=str(exc))
        clock = PhaseClock()
        rows = self._job_history_rows(event)
        history, calendar = split_job_history(rows)
        clock.lap("read")
        if already_processed(rows):
            emails = self._send_pending(event, history, None)
            clock.lap("email")
            log.info(
                "event_duplicate",
                event_id=event.event_id,
                job=event.job_id,
                emails=emails,
                phase_ms=clock.ms,
            )
            return Outcome("duplicate", event.event_id, emails=emails, phase_ms=clock.ms)
        outcome = self._process(event, history, calendar, clock)
        log.info(
            "event_processed",
            event_id=event.event_id,
            job=event.job_id,
            series=outcome.series,
            forecast_rows=outcome.forecast_rows,
            alerts=outcome.alerts,
            emails=outcome.emails,
            model_version=outcome.model_version,
            ms=round((time.perf_counter() - started) * 1000, 2),
            phase_ms=outcome.phase_ms,
        )
        return outcome

    # -- steps -----------------------------------------------------------------------------
    def _process(
        self,
        event: InsertEvent,
        history: pd.DataFrame,
        calendar: pd.DataFrame | None,
        clock: PhaseClock,
    ) -> Outcome:
        now = self.clock()
        if history.empty:
            self.warehouse.apply([Merge("processed_events", ledger_row(event, now, 0, 0, None))])
            clock.lap("write")
            return Outcome("empty", event.event_id, phase_ms=clock.ms)
        instances = instances_from_history(history, recent_days=RECENT_DAYS, future=calendar)
        clock.lap("instances")
        batch = self.predictor.predict(instances)
        clock.lap("predict")
        forecasts = predictions_to_frame(batch.predictions, history)
        # During a canary the endpoint splits one batch across versions: each row keeps the
        # version that produced it (part of the forecasts' key); the batch's majority fills gaps.
        version = (
            forecasts["model_version"].fillna(batch.model_version)
            if "model_version" in forecasts.columns
            else batch.model_version
        )
        forecasts = forecasts.assign(
            model_version=version,
            event_id=event.event_id,
            job_id=event.job_id,
            created_at=now,
        )
        clock.lap("decode")
        alerts = self._evaluate_alerts(forecasts, history, batch.model_version, event, now)
        clock.lap("alerts")
        ledger = ledger_row(
            event, now, forecasts["series_id"].nunique(), len(alerts), batch.model_version
        )
        self.warehouse.apply(
            [
                Merge("forecasts", forecasts),
                *([Merge("alerts", alerts)] if len(alerts) else []),
                Merge("processed_events", ledger),
            ]
        )
        clock.lap("write")
        emails = 0
        if len(alerts):
            emails = self._send_pending(event, history, forecasts)
            clock.lap("email")
        return Outcome(
            "processed",
            event.event_id,
            series=int(forecasts["series_id"].nunique()),
            forecast_rows=len(forecasts),
            alerts=len(alerts),
            emails=emails,
            model_version=batch.model_version,
            phase_ms=clock.ms,
        )

    def _evaluate_alerts(
        self,
        forecasts: pd.DataFrame,
        history: pd.DataFrame,
        version: str,
        event: InsertEvent,
        now: datetime,
    ) -> pd.DataFrame:
        since = now - timedelta(days=max(self.settings.alerts.cooldown_days, 1))

        def recent() -> pd.DataFrame:
            return self.warehouse.query(sql.load("recent_alerts"), {"since": since})

        return evaluate_alerts(
            forecasts,
            history,
            settings=self.settings.alerts,
            recent_alerts=recent,
            model_version=version,
            event_id=event.event_id,
            now=now,
        )

    def _send_pending(
        self, event: InsertEvent, history: pd.DataFrame, forecasts: pd.DataFrame | None
    ) -> int:
        """Email every alert of this event not yet sent; one email per recipient."""
        pending = self.warehouse.query(sql.load("pending_alerts"), {"event_id": event.event_id})
        if pending.empty:
            return 0
        if forecasts is None:
            forecasts = self.warehouse.query(sql.load("event_forecasts"), {"job_id": event.job_id})
        by_recipient: dict[str, list[int]] = {}
        for i, recipients in enumerate(pending["recipients"]):
            for r in str(recipients).split(","):
                if r.strip():
                    by_recipient.setdefault(r.strip(), []).append(i)
        message_ids = []
        for recipient, rows in sorted(by_recipient.items()):
            msg = build_alert_email(
                recipient,
                pending.iloc[rows],
                history,
                forecasts,
                sender=self.settings.alerts.sender,
                env=self.settings.env,
                interval_level=self.settings.alerts.interval_level,
            )
            self.send_email(msg)
            message_ids.append(str(msg["Message-ID"]))
        self.warehouse.apply(
            [
                Exec(
                    sql.load("mark_alerts_sent"),
                    {
                        "message_id": ",".join(message_ids)[:1000],
                        "sent_at": self.clock(),
                        "alert_keys": [str(k) for k in pending["alert_key"]],
                    },
                )
            ]
        )
        return len(message_ids)

    def _job_history_rows(self, event: InsertEvent) -> pd.DataFrame:
        """One query for everything the event needs to read: the job's series' history, their
        horizon's calendar rows (none: the model takes SNAP and events as 0) and whether the
        ledger already holds this delivery (``split_job_history``, ``already_processed``)."""
        return self.warehouse.query(
            sql.load("job_history"),
            {
                "job_id": event.job_id,
                "recent_days": RECENT_DAYS,
                "horizon": self.settings.forecast.horizon,
                "event_id": event.event_id,
                "job_name": event.job_name,
            },
        )


def ledger_row(
    event: InsertEvent, now: datetime, series: int, alerts: int, version: str | None
) -> pd.DataFrame:
    """The ``processed_events`` row of one handled event: its presence is what makes a
    redelivery a duplicate, so there is one builder of it."""
    return pd.DataFrame(
        [
            {
                "event_id": event.event_id,
                "job_name": event.job_name,
                "rows_read": event.inserted_rows,
                "series_forecast": int(series),
                "alerts_raised": int(alerts),
                "model_version": version,
                "job_committed_at": event.committed_at,
                "processed_at": now,
            }
        ]
    )
