"""Issue 5's loop on real local processes: regime shift → alerts → monitoring → kfp retrain →
canary rollout under live prediction traffic → accuracy measured again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from salesloop.demo import DemoOptions, run_demo
from salesloop.registry import LocalRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("closed_loop")]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    run_dir = tmp_path_factory.mktemp("loop")
    summary = run_demo(
        DemoOptions(
            series=120,
            days=500,
            replay_days=12,
            after_days=6,
            jobs_per_day=2,
            run_dir=run_dir,
            quiet=True,
        )
    )
    return summary, run_dir


def test_monitoring_triggers_a_retrain_that_rolls_out_without_failed_predictions(
    loop: tuple[dict[str, Any], Path],
) -> None:
    summary, run_dir = loop
    assert summary["drift_detected"] is True and summary["monitor_reasons"]
    assert summary["retrains"] == 1
    assert summary["failed_predictions_during_rollout"] == 0
    assert summary["predictions_during_rollout"] > 0
    registry = LocalRegistry(run_dir / "registry")
    assert len(registry.list_versions()) == 2
    actions = [a["action"] for a in registry.audit()]
    assert actions, "every decision is in the registry's audit log"
    if summary["retrain_outcome"] == "promoted":
        assert (
            summary["serving_version_after"]
            == registry.alias("champion")
            != summary["model_version"]
        )
        assert set(summary["versions_seen_during_rollout"]) == {
            summary["model_version"],
            summary["serving_version_after"],
        }
    else:  # gate or canary said no: the champion kept serving
        assert (
            summary["serving_version_after"]
            == summary["model_version"]
            == registry.alias("champion")
        )


def test_accuracy_is_measured_before_and_after(loop: tuple[dict[str, Any], Path]) -> None:
    summary, run_dir = loop
    assert summary["accuracy_before"] is not None and summary["accuracy_before"] > 0
    assert summary["accuracy_after"] is not None and summary["accuracy_after"] > 0
    runs = [p for p in (run_dir / "pipeline").iterdir() if p.is_dir()]
    assert len(runs) == 1, "exactly one kfp pipeline run"
    assert (runs[0] / "rollout-version").is_dir() or summary["retrain_outcome"] == "rejected"
    assert summary["events_processed"] == summary["events_emitted"]
