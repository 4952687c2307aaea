"""Fixtures for the mail tests: free loopback ports, a real local mailbox, sample alerts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from salesloop.alerts import evaluate_alerts
from salesloop.config import Recipients
from salesloop.local.mailbox import MailboxServer
from tests.alerts.alerts_testdata import SeriesSpec, cfg_of, frames

NOW = datetime(2016, 5, 23, 6, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    with MailboxServer(tmp_path / "maildir", port=free_port()) as server:
        yield server


def sample_batch(
    n_extra: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(alerts, history, forecasts): two FOODS series at CA_1 falling (one with last year's week),
    so three alerts (two series, one store x category); ``n_extra`` more falling HOBBIES series
    at TX_1 (each its own alert, plus their aggregate)."""
    specs = [
        SeriesSpec(
            "CA_1/FOODS_1_001",
            "CA_1",
            "FOODS",
            trailing=(10, 12, 9, 11, 10, 14, 15),
            forecast=(5, 5, 4, 5, 6, 7, 7),
            width=0.1,
            last_year=(12,) * 7,
            history_days=70,
        ),
        SeriesSpec("CA_1/FOODS_1_002", "CA_1", "FOODS", (10,) * 7, (6,) * 7, history_days=70),
    ]
    specs += [
        SeriesSpec(f"TX_1/HOBBIES_1_{i:03d}", "TX_1", "HOBBIES", (10,) * 7, (5 - i % 3,) * 7)
        for i in range(n_extra)
    ]
    forecasts, history = frames(specs)
    forecasts["model_version"] = "v20160522"
    cfg = cfg_of(
        recipients=Recipients(
            default=["ops@example.com"],
            by_store={"CA_1": ["ca1@example.com"]},
        )
    )
    alerts = evaluate_alerts(
        forecasts,
        history,
        settings=cfg,
        recent_alerts=pd.DataFrame(),
        model_version="v20160522",
        event_id="evt-1",
        now=NOW,
    )
    return alerts, history, forecasts
