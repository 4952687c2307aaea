"""Replay: deterministic event ids per tag, idempotent queueing, events the function accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent

from salesloop.config import Settings, load_settings
from salesloop.events import parse_insert_event
from salesloop.local.dispatcher import DeliveryStore
from salesloop.monitoring.replay import replay
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.monitoring import scenario


@pytest.fixture
def settings() -> Settings:
    return load_settings("local")


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(":memory:")
    yield w
    w.close()


def _events(store: DeliveryStore) -> list[CloudEvent]:
    con = store._con()
    rows = con.execute("SELECT attributes, data FROM deliveries ORDER BY event_id").fetchall()
    return [CloudEvent(json.loads(a), json.loads(d)) for a, d in rows]


def test_replay_queues_one_event_per_job_idempotently_per_tag(
    wh: DuckDBWarehouse, settings: Settings, tmp_path: Path
) -> None:
    sc = scenario.build(wh, daily_jobs=7)
    store = DeliveryStore(tmp_path / "dispatcher.sqlite")
    period = (sc.end - timedelta(days=2), sc.end)
    assert replay(wh, store, settings, *period, tag="t1") == 3
    assert replay(wh, store, settings, *period, tag="t1") == 0  # same tag: nothing new
    assert replay(wh, store, settings, *period, tag="t2") == 3  # new tag: a new replay
    ids = sorted(e["id"] for e in _events(store))
    jobs = [f"day_{sc.end - timedelta(days=k):%Y%m%d}" for k in (2, 1, 0)]
    assert ids == sorted(f"{j}-replay-{t}" for j in jobs for t in ("t1", "t2"))
    for e in _events(store):
        parsed = parse_insert_event(
            e, project=settings.project, dataset=settings.warehouse.dataset, table="sales"
        )
        assert parsed.job_id in jobs and parsed.inserted_rows == 20
    # Replayed events do not count as loop latency.
    assert store.latencies_ms() == []
    assert store.counts()["pending"] == 6


def test_replay_of_a_period_inside_a_big_job_sends_the_whole_job(
    wh: DuckDBWarehouse, settings: Settings, tmp_path: Path
) -> None:
    sc = scenario.build(wh, daily_jobs=7)
    store = DeliveryStore(tmp_path / "d.sqlite")
    assert (
        replay(
            wh, store, settings, sc.start + timedelta(days=3), sc.start + timedelta(days=3), tag="x"
        )
        == 1
    )
    (event,) = _events(store)
    assert event["id"] == "history-replay-x"
    assert (
        int(event.get_data()["protoPayload"]["metadata"]["tableDataChange"]["insertedRowsCount"])
        == 20 * 143
    )


def test_bad_arguments(wh: DuckDBWarehouse, settings: Settings, tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "d.sqlite")
    with pytest.raises(ValueError, match="empty period"):
        replay(wh, store, settings, date(2016, 2, 2), date(2016, 2, 1), tag="x")
    with pytest.raises(ValueError, match="tag"):
        replay(wh, store, settings, date(2016, 2, 1), date(2016, 2, 2), tag="a b")
    assert replay(wh, store, settings, date(2016, 2, 1), date(2016, 2, 2), tag="none") == 0
