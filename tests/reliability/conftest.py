"""One prepared run folder and one clean reference run per session, shared by the fault scenarios.

The scenarios all replay the same jobs (``JOB_DAYS`` live days, ``JOBS_PER_DAY`` jobs each, the
first of every day with three invalid rows) into a private copy of the prepared folder, inserted
*before* the function runs: every event then sees the same warehouse, so whatever order, delay or
repetition the faults cause, the correct outcome is exactly the reference run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from salesloop.local.prepare import PreparedRun, prepare_run
from tests.reliability.loop import (
    Loop,
    alert_pairs,
    assert_exactly_once,
    comparable_forecasts,
    live_jobs,
)

JOB_DAYS = 4
JOBS_PER_DAY = 8
DROP_CATEGORY = "FOODS"


@dataclass(frozen=True)
class Reference:
    """What a fault-free run of the jobs leaves behind."""

    events: int
    forecasts: pd.DataFrame
    alert_keys: set[str]
    pairs: set[tuple[str, str]]
    rejected: int
    sales: int


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedRun:
    # 60 series x 400 days, a 30-tree model; FOODS drops to 5 % from the first live day, so the
    # last replayed day raises alerts (and emails).
    return prepare_run(
        tmp_path_factory.mktemp("prepared") / "run",
        series=60,
        days=400,
        replay_days=JOB_DAYS,
        drop_category=DROP_CATEGORY,
        drop_after_days=0,
        drop_factor=0.05,
    )


@pytest.fixture(scope="session")
def jobs(prepared: PreparedRun) -> list[tuple[str, pd.DataFrame]]:
    return live_jobs(prepared, days=JOB_DAYS, jobs_per_day=JOBS_PER_DAY)


@pytest.fixture
def run_copy(prepared: PreparedRun, tmp_path: Path) -> PreparedRun:
    return prepared.copy_to(tmp_path / "run")


@pytest.fixture(scope="session")
def reference(
    prepared: PreparedRun,
    jobs: list[tuple[str, pd.DataFrame]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Reference:
    copy = prepared.copy_to(tmp_path_factory.mktemp("reference") / "run")
    with Loop(copy) as loop:
        loop.start("warehouse", "model_server", "mailbox")
        loop.insert(jobs)
        loop.start("function", "dispatcher")
        loop.wait_drained(timeout_s=180)
        tables = assert_exactly_once(loop)
        rejected = len(loop.table("rejected_sales"))
        sales = len(loop.table("sales"))
    assert len(tables["alerts"]) > 0, "the scripted drop raised no alert: the scenarios need one"
    return Reference(
        events=len(tables["audit"]),
        forecasts=comparable_forecasts(tables["forecasts"]),
        alert_keys=set(tables["alerts"]["alert_key"]),
        pairs=alert_pairs(tables["alerts"]),
        rejected=rejected,
        sales=sales,
    )


def assert_same_as_reference(loop: Loop, reference: Reference) -> dict[str, pd.DataFrame]:
    """Exactly once, and exactly the reference's effects: forecasts, alerts, one email each."""
    tables = assert_exactly_once(loop)
    assert len(tables["audit"]) == reference.events
    pd.testing.assert_frame_equal(comparable_forecasts(tables["forecasts"]), reference.forecasts)
    assert set(tables["alerts"]["alert_key"]) == reference.alert_keys
    assert alert_pairs(tables["alerts"]) == reference.pairs
    assert len(loop.table("rejected_sales")) == reference.rejected
    assert len(loop.table("sales")) == reference.sales
    return tables
