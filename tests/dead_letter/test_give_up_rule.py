"""The give-up rule through the real function entry point and the real local event path.

``functions/on_sale/main.py`` is loaded by functions-framework (``create_app``) and served over
HTTP on loopback; events are delivered in binary mode by the local dispatcher's own delivery code;
the handler behind the rule is a stand-in that fails like an outage. Locally the dead letter is the
dispatcher's SQLite store, so both kinds of dead letter (the dispatcher's, after its attempts, and
the function's, for an old event) are counted and replayed by ``salesloop events``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import functions_framework
import pytest
import structlog
from cloudevents.conversion import to_binary
from structlog.testing import capture_logs
from typer.testing import CliRunner
from werkzeug.serving import make_server

from salesloop.cli import app as cli
from salesloop.config import EventSettings, load_settings
from salesloop.dead_letter import (
    DISPATCHER_STATE,
    GiveUpRule,
    LocalDeadLetter,
    PubSubDeadLetter,
    open_dead_letter,
)
from salesloop.local.dispatcher import DeliveryStore, Dispatcher, DispatcherOptions
from tests.dead_letter.conftest import Failing, insert_event

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 23 * 3600
FAST = EventSettings(
    max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.03, multiplier=2.0, delivery_timeout_s=5
)


class Sink:
    """A dead-letter sink that records, or fails like an unreachable topic."""

    kind = "test"

    def __init__(self) -> None:
        self.published: list[tuple[str, str, float]] = []
        self.broken = False

    def publish(self, event: Any, reason: str, age_s: float) -> None:
        if self.broken:
            raise ConnectionError("topic unreachable")
        self.published.append((event["id"], reason, age_s))


@pytest.fixture
def function() -> Iterator[tuple[Any, SimpleNamespace]]:
    """The function as functions-framework serves it, with the runtime's parts injected."""
    app = functions_framework.create_app(
        target="on_sale",
        source=str(REPO / "functions/on_sale/main.py"),
        signature_type="cloudevent",
    )
    module = sys.modules["main"]
    runtime = SimpleNamespace(on_event=None)
    module._runtime = runtime  # type: ignore[attr-defined]
    try:
        yield app, runtime
    finally:
        module._runtime = None  # type: ignore[attr-defined]


def _post(app: Any, event: Any) -> Any:
    headers, body = to_binary(event)
    return app.test_client().post("/", headers=headers, data=body)


def test_young_fails_old_is_dead_lettered_and_acknowledged_publish_failure_fails(
    function: tuple[Any, SimpleNamespace],
) -> None:
    app, runtime = function
    handler, sink = Failing(), Sink()
    runtime.on_event = GiveUpRule(handler, sink, max_age_s=LIMIT_S)

    young = insert_event(timedelta(hours=22, minutes=59), event_id="young")
    assert _post(app, young).status_code == 500
    assert sink.published == []

    old = insert_event(timedelta(hours=23, minutes=1), event_id="old")
    with capture_logs() as logs:
        response = _post(app, old)
    assert response.status_code == 200
    assert [(i, r) for i, r, _ in sink.published] == [
        ("old", "RuntimeError: warehouse unavailable")
    ]
    assert sink.published[0][2] == pytest.approx(23 * 3600 + 60, abs=30)
    (warning,) = [e for e in logs if e["event"] == "event_dead_lettered"]
    assert warning["log_level"] == "warning"
    assert warning["event_id"] == "old" and warning["reason"].startswith("RuntimeError")
    assert warning["max_age_s"] == LIMIT_S and warning["sink"] == "test"
    assert not {"data", "body", "attributes"} & set(warning), "the event itself is not logged"

    sink.broken = True
    with capture_logs() as logs:
        assert _post(app, insert_event(timedelta(days=2), event_id="lost?")).status_code == 500
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["dead_letter_failed"]
    assert len(sink.published) == 1

    sink.broken, handler.fixed = False, True
    assert _post(app, old).status_code == 200  # a fixed handler processes an old event normally
    assert len(sink.published) == 1


@pytest.mark.parametrize(
    "time_value", [None, "", "yesterday", "2026-12-04T10:00:00", "2026-13-45T99:00:00Z", "0" * 200]
)
def test_an_unreadable_time_keeps_the_event_failing(
    function: tuple[Any, SimpleNamespace], time_value: str | None
) -> None:
    app, runtime = function
    sink = Sink()
    runtime.on_event = GiveUpRule(Failing(), sink, max_age_s=1)
    event = insert_event(timedelta(days=30))
    if time_value is None:
        del event._attributes["time"]  # absent: the binding allows it
    else:
        event["time"] = time_value
    assert _post(app, event).status_code == 500
    assert sink.published == []


# -- the local path: dispatcher → function → the dispatcher's dead letter → replay -------------


def _cli(*args: str) -> Any:
    """The ``salesloop`` CLI in-process. Its callback configures structlog to write to the
    runner's captured stderr, closed afterwards: the previous configuration is put back."""
    saved = structlog.get_config()
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        structlog.configure(**saved)


def _deliver_until_settled(disp: Dispatcher, store: DeliveryStore, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while store.counts()["pending"] and time.monotonic() < deadline:
        for row in store.due(10):
            disp.deliver_one(row)
        time.sleep(0.01)
    assert store.counts()["pending"] == 0, store.deliveries()


def test_local_dead_letter_joins_the_dispatchers_and_is_replayed_by_the_cli(
    function: tuple[Any, SimpleNamespace], tmp_path: Path
) -> None:
    app, runtime = function
    state = tmp_path / DISPATCHER_STATE
    handler = Failing()
    runtime.on_event = GiveUpRule(handler, LocalDeadLetter(state), max_age_s=LIMIT_S)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    store = DeliveryStore(state)
    try:
        disp = Dispatcher(
            store,
            DispatcherOptions(f"http://127.0.0.1:{server.server_port}/", "http://127.0.0.1:9"),
            FAST,
            project="salesloop-local",
            dataset="salesloop",
            table="sales",
        )
        now = datetime.now(UTC)
        old = insert_event(timedelta(hours=30), now=now, event_id="old")
        young = insert_event(timedelta(minutes=5), now=now, event_id="young")
        store.enqueue([(None, old, None), (None, young, None)])
        _deliver_until_settled(disp, store)

        rows = store.deliveries()
        # The function gave up on the old event at its first failure and acknowledged it; the
        # dispatcher kept it dead instead of counting the 2xx as delivered.
        assert rows["old"]["status"] == "dead" and rows["old"]["attempts"] == 1
        assert rows["old"]["acks"] == 1
        assert "dead-lettered by the function" in rows["old"]["last_error"]
        assert "RuntimeError: warehouse unavailable" in rows["old"]["last_error"]
        # The young one failed every attempt and was dead-lettered by the dispatcher itself.
        assert rows["young"]["status"] == "dead" and rows["young"]["attempts"] == FAST.max_attempts
        assert rows["young"]["last_error"].startswith("HTTP 500")
        assert handler.calls == 1 + FAST.max_attempts

        status = _cli("events", "status", "--run-dir", str(tmp_path))
        assert status.exit_code == 0 and json.loads(status.stdout)["dead"] == 2

        handler.fixed = True  # the outage is over: replay both kinds of dead letter
        replay = _cli("events", "redeliver-dead", "--run-dir", str(tmp_path))
        assert replay.exit_code == 0 and "requeued 2" in replay.stdout
        _deliver_until_settled(disp, store)
        assert {k: v["status"] for k, v in store.deliveries().items()} == {
            "old": "delivered",
            "young": "delivered",
        }
    finally:
        store.close()
        server.shutdown()


def test_local_dead_letter_stores_an_event_the_dispatcher_never_saw(tmp_path: Path) -> None:
    event = insert_event(timedelta(days=2), event_id="direct")
    LocalDeadLetter(tmp_path / "d.sqlite").publish(event, "RuntimeError: x", 172_800)
    store = DeliveryStore(tmp_path / "d.sqlite")
    assert store.counts()["dead"] == 1
    assert store.redeliver_dead() == 1
    (row,) = store.due(5)
    assert json.loads(row["attributes"]) == dict(event.get_attributes())
    assert json.loads(row["data"]) == event.get_data()


# -- wiring: which sink each environment gets --------------------------------------------------


def test_each_environment_gets_its_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    local = load_settings("local")
    sink = open_dead_letter(local)
    assert isinstance(sink, LocalDeadLetter) and sink.state == local.run_dir / DISPATCHER_STATE
    for env in ("dev", "prod"):
        settings = load_settings(env)
        assert settings.events.dead_letter_after_s == LIMIT_S
        monkeypatch.setenv(
            "DEAD_LETTER_TOPIC", f"projects/salesloop-{env}/topics/on-sale-dead-letter"
        )
        cloud = open_dead_letter(settings)
        assert isinstance(cloud, PubSubDeadLetter)
        assert cloud.topic == f"projects/salesloop-{env}/topics/on-sale-dead-letter"
        monkeypatch.delenv("DEAD_LETTER_TOPIC")
        assert open_dead_letter(settings).topic is None  # type: ignore[attr-defined]
