"""benchmarks/load.py's latency breakdown: the dispatcher's times and the function's laps, joined."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.bench import load_benchmark

latency_breakdown = load_benchmark("load.py").latency_breakdown


def delivery(committed: float, queued: float, acked: float | None) -> dict[str, Any]:
    return {"job_committed_at": committed, "enqueued_at": queued, "delivered_at": acked}


def processed(event_id: str, ms: float, **phases: float) -> dict[str, Any]:
    return {"event": "event_processed", "event_id": event_id, "ms": ms, "phase_ms": phases}


def test_parts_are_medians_over_the_chosen_events_only() -> None:
    deliveries = {
        "a": delivery(100.000, 100.004, 100.030),  # 4 ms to the queue, 26 ms to the ack
        "b": delivery(200.000, 200.006, 200.040),  # 6, 34
        "c": delivery(300.000, 300.008, 300.050),  # 8, 42
        "other": delivery(400.000, 401.000, 402.000),  # not a probe event: ignored
    }
    lines = [
        {"event": "dispatcher_started"},
        processed("a", 20.0, read=5.0, predict=8.0, write=7.0),
        {"event": "event_duplicate", "event_id": "b"},
        processed("b", 30.0, read=6.0, predict=12.0, write=12.0),
        processed("c", 34.0, read=9.0, predict=10.0, write=15.0),
        processed("other", 900.0, read=900.0),
    ]
    out = latency_breakdown(deliveries, lines, {"a", "b", "c"})
    assert out == pytest.approx(
        {
            "commit_to_queued": 6.0,
            "queued_to_acked": 34.0,
            "handler": 30.0,
            "delivery": 6.0,  # per event 6, 4, 8
            "read": 6.0,
            "predict": 10.0,
            "write": 12.0,
            "n": 3,
            "n_logged": 3,
        }
    )


def test_an_unacknowledged_or_unlogged_event_counts_only_where_it_has_times() -> None:
    deliveries = {
        "a": delivery(1.0, 1.002, 1.012),
        "lost": delivery(2.0, 2.001, None),
        "quiet": delivery(3.0, 3.004, 3.024),
    }
    out = latency_breakdown(deliveries, [processed("a", 8.0, read=8.0)], {"a", "lost", "quiet"})
    assert out["n"] == 2 and out["n_logged"] == 1
    assert out["commit_to_queued"] == pytest.approx(3.0)
    assert out["queued_to_acked"] == pytest.approx(15.0)
    assert out["handler"] == pytest.approx(8.0) and out["delivery"] == pytest.approx(2.0)
