"""The whole loop on real local processes: a small demo, then its summary checked against the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from salesloop.demo import DROP_CATEGORY, DemoOptions, run_demo
from salesloop.local.mailbox import read_messages
from salesloop.warehouse.duckdb import DuckDBWarehouse

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REPLAY_DAYS = 12


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    run_dir = tmp_path_factory.mktemp("demo")
    summary = run_demo(
        DemoOptions(
            series=300,
            days=1000,
            replay_days=REPLAY_DAYS,
            jobs_per_day=2,
            run_dir=run_dir,
            quiet=True,
            closed_loop=False,  # the retrain/rollout loop has its own test
            drop_after_days=2,
        )
    )
    return summary, run_dir


def test_every_emitted_event_is_processed_once(demo: tuple[dict[str, Any], Path]) -> None:
    summary, run_dir = demo
    assert summary["events_emitted"] > REPLAY_DAYS
    assert summary["events_processed"] == summary["events_emitted"]
    assert summary["events_dead_lettered"] == 0
    assert (run_dir / "demo-summary.json").exists()
    assert summary["insert_to_forecast_ms"]["p50"] is not None


def test_forecasts_for_every_affected_series(demo: tuple[dict[str, Any], Path]) -> None:
    summary, run_dir = demo
    with DuckDBWarehouse(run_dir / "warehouse.duckdb", read_only=True) as wh:
        latest = wh.query(
            "SELECT series_id, MAX(date) AS last_day FROM {{ sales }} GROUP BY series_id"
        )
        fc = wh.query(
            "SELECT series_id, forecast_origin, COUNT(*) AS n FROM {{ forecasts }} GROUP BY 1, 2"
        )
        dup = wh.query(
            "SELECT COUNT(*) AS n FROM (SELECT series_id, forecast_origin, horizon_day, model_version, COUNT(*) AS c"
            " FROM {{ forecasts }} GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1)"
        )
        rejected = wh.query("SELECT reason FROM {{ rejected_sales }}")
    merged = latest.merge(
        fc, left_on=["series_id", "last_day"], right_on=["series_id", "forecast_origin"], how="left"
    )
    assert merged["n"].notna().all(), "a series without a forecast at its latest day"
    assert (merged["n"] == 7).all()
    assert int(dup["n"].iloc[0]) == 0
    assert summary["forecast_rows"] == int(fc["n"].sum())
    # three bad rows per replayed day, each with its reason; the good rows of those jobs were kept
    assert summary["rejected_rows"] == 3 * REPLAY_DAYS
    assert {r.split(":")[0] for r in rejected["reason"]} >= {
        "bad_quantity",
        "bad_date",
        "missing_key",
    }


def test_scripted_drop_is_emailed_exactly_once(demo: tuple[dict[str, Any], Path]) -> None:
    summary, run_dir = demo
    with DuckDBWarehouse(run_dir / "warehouse.duckdb", read_only=True) as wh:
        alerts = wh.query("SELECT * FROM {{ alerts }}")
    assert len(alerts) > 0, "the scripted drop raised no alert"
    assert (alerts["status"] == "sent").all()
    assert DROP_CATEGORY in set(alerts["cat_id"].dropna())
    messages = read_messages(run_dir / "mailbox")
    ids = [m["Message-ID"] for m in messages]
    assert len(ids) == len(set(ids)) == summary["emails_in_mailbox"]
    # each alert went out in exactly one message per recipient
    sent_ids = {mid for cell in alerts["message_id"] for mid in str(cell).split(",")}
    assert sent_ids == set(ids)
    body = messages[0].get_body(preferencelist=("plain",))
    assert body is not None and "%" in body.get_content()


def test_summary_fields(demo: tuple[dict[str, Any], Path]) -> None:
    summary, _ = demo
    for key in (
        "events_emitted",
        "events_processed",
        "duplicates_ignored",
        "forecast_rows",
        "alerts_sent",
        "emails_in_mailbox",
        "rejected_rows",
        "insert_to_forecast_ms",
        "model_version",
        "wall_s",
    ):
        assert key in summary
    assert summary["duplicates_ignored"] >= 0
    assert summary["alerts_sent"] <= summary["alerts_raised"]
