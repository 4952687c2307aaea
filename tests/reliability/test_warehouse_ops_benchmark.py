"""benchmarks/warehouse_ops.py end to end on a tiny history: every operation timed, both ways."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "warehouse_ops.py"
OPS = {"insert_job_1_row", "job_history_1_series", "apply_forecasts_and_ledger", "select_1"}


def test_times_each_operation_in_process_and_served(tmp_path: Path) -> None:
    args = ["--series", "4", "--events", "3", "--warmup", "1", "--workdir", str(tmp_path)]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout)
    for way in ("in_process_ms", "served_ms"):
        assert set(result[way]) == OPS, way
        for op, stats in result[way].items():
            assert stats["n"] == 3, (way, op)
            assert 0 < stats["p50"] <= stats["p90"], (way, op)
    # The history read is real work: never cheaper than the one-statement floor.
    for way in ("in_process_ms", "served_ms"):
        assert result[way]["job_history_1_series"]["p50"] > result[way]["select_1"]["p50"]
    assert result["config"]["sales_rows_before"] == 4 * 400  # the history, before the events


def test_refuses_a_history_too_short_for_the_seasonal_window(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--days", "100", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--days at least 400" in out.stderr
    assert out.stdout == ""
