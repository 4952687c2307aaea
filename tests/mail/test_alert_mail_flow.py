"""Alerts through the warehouse and the mail path: rule → alerts table → email → mailbox, twice.

The function's own handler is tested elsewhere; this checks that the pieces of the "tell" side fit
the warehouse's types (dates, timestamps, NULLs come back as DuckDB returns them) and that a
redelivered event neither raises a new alert nor puts a second email in the recipient's box.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from salesloop import sql
from salesloop.alerts import evaluate_alerts
from salesloop.config import Recipients, SmtpSettings
from salesloop.local.mailbox import MailboxServer, read_messages
from salesloop.mail import build_alert_email, inline_images
from salesloop.mail.smtp import RetryPolicy, SmtpMailer
from salesloop.warehouse import Merge
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.alerts.alerts_testdata import SeriesSpec, cfg_of, frames
from tests.mail.conftest import NOW

pytestmark = pytest.mark.integration


def test_alerts_round_trip_the_warehouse_and_reach_the_mailbox_once(
    tmp_path: Path, mailbox: MailboxServer
) -> None:
    specs = [
        SeriesSpec("CA_1/FOODS_1_001", "CA_1", "FOODS", (10,) * 7, (5,) * 7, last_year=(11,) * 7),
        SeriesSpec("CA_1/FOODS_1_002", "CA_1", "FOODS", (12,) * 7, (6,) * 7),
    ]
    forecasts, history = frames(specs)
    forecasts["model_version"] = "v1"
    cfg = cfg_of(recipients=Recipients(by_store={"CA_1": ["ca1@example.com"]}))
    mailer = SmtpMailer(
        SmtpSettings.model_validate({"port": mailbox.port}), None, retry=RetryPolicy(max_attempts=2)
    )

    with DuckDBWarehouse(tmp_path / "wh.duckdb") as wh:

        def deliver(event_id: str, now: pd.Timestamp) -> tuple[int, list[str]]:
            """What the function does per event: evaluate, record, email the pending ones."""
            since = now - timedelta(days=cfg.cooldown_days)
            recent = wh.query(sql.load("recent_alerts"), {"since": since.to_pydatetime()})
            new = evaluate_alerts(
                forecasts,
                history,
                settings=cfg,
                recent_alerts=recent,
                model_version="v1",
                event_id=event_id,
                now=now.to_pydatetime(),
            )
            wh.apply([Merge("alerts", new)])
            pending = wh.query(sql.load("pending_alerts"), {"event_id": event_id})
            ids = []
            for recipient in sorted({r for c in pending["recipients"] for r in c.split(",")}):
                msg = build_alert_email(
                    recipient, pending, history, forecasts, sender="s@example.com", env="local"
                )
                mailer.send(msg)
                ids.append(str(msg["Message-ID"]))
            return len(new), ids

        first_new, first_ids = deliver("evt-1", pd.Timestamp(NOW))
        assert first_new == 3  # two series and their store x category
        # The event is redelivered before the alerts were marked sent (a crash in between): the
        # rule raises nothing new, the same email goes out again with the same Message-ID...
        again_new, again_ids = deliver("evt-1", pd.Timestamp(NOW) + timedelta(minutes=3))
        assert again_new == 0
        assert again_ids == first_ids
        # ...and a later event inside the cooldown raises nothing either.
        later_new, _ = deliver("evt-2", pd.Timestamp(NOW) + timedelta(days=2))
        assert later_new == 0
        stored = wh.query("SELECT * FROM {{ alerts }} ORDER BY alert_key")

    assert len(stored) == 3
    assert set(stored["status"]) == {"pending"}
    assert set(stored["recipients"]) == {"ca1@example.com"}
    # ...and the recipient's box holds it once.
    messages = read_messages(mailbox.store.path)
    assert [m["Message-ID"] for m in messages] == first_ids
    assert messages[0]["X-Salesloop-Alerts"] == "3"
    # Dates and numbers read back from DuckDB still find their forecasts: charts and week ends.
    assert len(inline_images(messages[0])) == 3
    body = messages[0].get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    assert "2016-05-23 to 2016-05-29" in text
    assert "77.0" in text  # last year's week of FOODS_1_001
