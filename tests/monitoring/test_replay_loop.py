"""Replay through the real function handler: replaying a period twice leaves identical tables.

The handler (``OnSaleHandler``) runs in-process on a DuckDB warehouse with a small deterministic
predictor that speaks the model server's instance/prediction format; events go from the dispatcher's
store to the handler and back as the local dispatcher would move them, without HTTP.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cloudevents.http import CloudEvent

from salesloop.config import Settings, load_settings
from salesloop.local.dispatcher import DeliveryStore
from salesloop.monitoring.replay import replay
from salesloop.schemas import TABLES
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.monitoring import scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

on_sale = pytest.importorskip("salesloop.on_sale", reason="the function handler is not importable")


@dataclass(frozen=True)
class Batch:
    predictions: list[dict[str, Any]]
    model_version: str


class HalvingPredictor:
    """Forecasts the mean of the last 7 days; halves it for store CA_1 so drop alerts fire."""

    version = "stub-v1"

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> Batch:
        out = []
        for inst in instances:
            units = np.asarray(inst["units"], dtype=float)
            origin = date.fromisoformat(inst["start"]) + timedelta(days=len(units) - 1)
            level = float(units[-7:].mean()) * (0.5 if inst["store_id"] == "CA_1" else 1.0)
            yhat = [round(level, 4)] * 7
            out.append(
                {
                    "series_id": inst["series_id"],
                    "forecast_origin": origin.isoformat(),
                    "target_dates": [(origin + timedelta(days=h)).isoformat() for h in range(1, 8)],
                    "yhat": yhat,
                    "lo_80": [round(level * 0.8, 4)] * 7,
                    "hi_80": [round(level * 1.2, 4)] * 7,
                    "lo_95": [round(level * 0.6, 4)] * 7,
                    "hi_95": [round(level * 1.4, 4)] * 7,
                }
            )
        return Batch(out, self.version)


@pytest.fixture
def settings() -> Settings:
    return load_settings("local")


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(":memory:")
    yield w
    w.close()


def deliver_all(store: DeliveryStore, handler: Any, settings: Settings) -> list[str]:
    """What the local dispatcher does, minus HTTP: every due event to the handler, acked."""
    statuses = []
    rng = random.Random(0)
    while rows := store.due(100):
        for row in rows:
            event = CloudEvent(json.loads(row["attributes"]), json.loads(row["data"]))
            outcome = handler.handle(event)
            statuses.append(outcome.status)
            store.record(row["event_id"], True, None, settings.events, rng)
    return statuses


def snapshot(wh: DuckDBWarehouse) -> dict[str, pd.DataFrame]:
    """Every table, fully, in a canonical order."""
    out = {}
    for name, table in TABLES.items():
        frame = wh.query(f"SELECT * FROM {{{{ {name} }}}}")
        out[name] = frame.sort_values(list(table.key) or list(frame.columns)).reset_index(drop=True)
    return out


def assert_same(
    a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], skip: tuple[str, ...] = ()
) -> None:
    for name in a:
        if name not in skip:
            pd.testing.assert_frame_equal(a[name], b[name], check_like=False, obj=name)


def test_replaying_twice_leaves_identical_tables(
    wh: DuckDBWarehouse, settings: Settings, tmp_path: Path
) -> None:
    sc = scenario.build(wh, daily_jobs=7)
    sent: list[EmailMessage] = []
    ticks = iter(datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(10_000))
    handler = on_sale.OnSaleHandler(
        settings, wh, HalvingPredictor(), sent.append, clock=lambda: next(ticks)
    )
    store = DeliveryStore(tmp_path / "dispatcher.sqlite")
    period = (sc.end - timedelta(days=2), sc.end)
    before = snapshot(wh)

    assert replay(wh, store, settings, *period, tag="after-model-change") == 3
    assert deliver_all(store, handler, settings) == ["processed"] * 3
    first = snapshot(wh)
    new_fc = first["forecasts"][first["forecasts"]["model_version"] == "stub-v1"]
    assert len(new_fc) == 20 * 7 and set(new_fc["forecast_origin"]) == {pd.Timestamp(sc.end)}
    assert len(first["alerts"]) > 0 and len(sent) > 0  # CA_1 halves: drop alerts went out
    assert (first["alerts"]["status"] == "sent").all()
    assert len(first["processed_events"]) == len(before["processed_events"]) + 3
    emails = len(sent)

    # The same tag again: nothing is queued, nothing changes.
    assert replay(wh, store, settings, *period, tag="after-model-change") == 0
    assert deliver_all(store, handler, settings) == []
    assert_same(first, snapshot(wh))

    # Even a redelivery of the same events (at-least-once) changes nothing.
    store.redeliver_dead()
    with store._tx() as con:
        con.execute("UPDATE deliveries SET status = 'pending', next_attempt_at = 0")
    assert deliver_all(store, handler, settings) == ["duplicate"] * 3
    assert_same(first, snapshot(wh))

    # A second replay with a new tag is processed again, and every table but the dedup ledger
    # (one row per delivered event id, by design) is identical: forecasts and alerts are MERGEd
    # insert-if-absent, so nothing is duplicated and no email is sent twice.
    assert replay(wh, store, settings, *period, tag="second") == 3
    assert deliver_all(store, handler, settings) == ["processed"] * 3
    second = snapshot(wh)
    assert_same(first, second, skip=("processed_events",))
    ledger = second["processed_events"]
    assert len(ledger) == len(first["processed_events"]) + 3
    assert ledger["event_id"].str.endswith("-replay-second").sum() == 3
    assert len(sent) == emails
