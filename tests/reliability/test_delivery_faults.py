"""At-least-once delivery misbehaving on real processes: repeats, reordering, dependencies down.

Each scenario replays the session's jobs into a private copy of the prepared run and must end with
exactly the reference run's effects (see conftest): same forecasts, same alerts, one email per
alert and recipient, nothing lost, nothing twice.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from salesloop.local.prepare import PreparedRun
from tests.reliability.conftest import Reference, assert_same_as_reference
from tests.reliability.loop import FAST_EVENTS, Loop

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability")]

Jobs = list[tuple[str, pd.DataFrame]]


def test_every_event_three_times_in_shuffled_order(
    run_copy: PreparedRun, jobs: Jobs, reference: Reference
) -> None:
    with Loop(run_copy, dispatcher_args=["--copies", "3", "--shuffle"]) as loop:
        loop.start("warehouse", "model_server", "mailbox")
        loop.insert(jobs)
        loop.start("function", "dispatcher")
        loop.wait_drained(timeout_s=180)
        assert loop.store.total_acks() == 3 * reference.events, "not every copy was delivered"
        assert_same_as_reference(loop, reference)
        outcomes = [e["event"] for e in loop.log_events("function")]
        assert outcomes.count("event_processed") == reference.events
        assert outcomes.count("event_duplicate") == 2 * reference.events


def test_model_server_outage_retried_or_dead_lettered_by_policy_then_replayed(
    run_copy: PreparedRun, jobs: Jobs, reference: Reference
) -> None:
    n = reference.events
    # A policy the outage outlasts: three quick attempts, then the dead letter.
    short = {"max_attempts": 3, "initial_backoff_s": 0.02, "max_backoff_s": 0.05}
    with Loop(run_copy, events={**FAST_EVENTS, **short}) as loop:
        loop.start("warehouse", "mailbox", "function")
        loop.insert(jobs)
        loop.start("dispatcher")
        loop.wait_until(lambda: loop.store.counts()["dead"] == n, 60, "all events dead-lettered")
        assert loop.store.total_attempts() == 3 * n, "dead-lettered before the policy ran out"
        assert loop.table("processed_events").empty
        assert loop.table("forecasts").empty, "a failed event left forecasts behind"

        # A policy that outlasts the outage: replayed from the dead letter, retried, none lost.
        loop.stack.stop("dispatcher")
        loop.stack.extra_overlay["events"] = {**loop.events, "max_attempts": 100}
        loop.stack.write_overlay()
        assert loop.store.redeliver_dead() == n
        loop.start("dispatcher")
        before = loop.store.total_attempts()
        loop.wait_until(
            lambda: loop.store.total_attempts() >= before + 2 * n, 30, "retries during the outage"
        )
        time.sleep(1.0)  # the outage goes on a while longer
        assert loop.store.counts()["dead"] == 0
        assert loop.table("processed_events").empty
        loop.start("model_server")
        loop.wait_drained(timeout_s=120)
        assert loop.store.counts() == {"pending": 0, "delivered": n, "dead": 0}
        assert_same_as_reference(loop, reference)


def test_smtp_outage_alerts_retried_and_sent_once(
    run_copy: PreparedRun, jobs: Jobs, reference: Reference
) -> None:
    with Loop(run_copy) as loop:
        loop.start("warehouse", "model_server", "function")
        loop.insert(jobs)
        loop.start("dispatcher")
        # Forecasts and alerts commit; the emails cannot leave: those events stay undelivered.
        loop.wait_until(
            lambda: set(loop.table("alerts")["alert_key"]) == reference.alert_keys,
            120,
            "the alerts to be committed",
        )

        def retries() -> list[dict[str, object]]:
            return [e for e in loop.log_events("function") if e.get("event") == "mail.retry"]

        loop.wait_until(lambda: len(retries()) >= 2, 60, "the function to retry SMTP")
        alerts = loop.table("alerts")
        assert (alerts["status"] == "pending").all(), "an alert marked sent while SMTP was down"
        deliveries = loop.store.deliveries()
        assert all(deliveries[e]["status"] == "pending" for e in alerts["event_id"]), (
            "an event whose emails could not leave was acknowledged"
        )
        assert loop.store.counts()["dead"] == 0
        loop.start("mailbox")
        loop.wait_drained(timeout_s=120)
        tables = assert_same_as_reference(loop, reference)
        assert (tables["alerts"]["status"] == "sent").all()
