"""The whole kfp pipeline on kfp.local's SubprocessRunner, offline, on a small dataset.

Run 1 goes through ``salesloop pipeline run`` (the CLI): a first version is trained, gated,
registered and rolled out. Run 2 uses a deliberately bad recipe: the gate rejects it, it is still
registered (status and reason), and the ``dsl.If`` branch skips the rollout, so the champion keeps
serving.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from salesloop.pipeline_cli import app
from salesloop.registry import LocalRegistry
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.training.helpers import (
    BAD_LIGHTGBM_PARAMS,
    daily_sales,
    fast_training,
    load_warehouse,
    write_overlay,
)

ENDPOINT = "ep-kfp"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_pipeline_runs_locally_accepts_then_rejects(tmp_path: Path) -> None:
    from training.local import run_local

    wh = load_warehouse(tmp_path / "wh.duckdb", daily_sales(20, 150))
    good = write_overlay(tmp_path / "good.yaml", fast_training())
    registry = tmp_path / "registry"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--run-dir",
            str(tmp_path / "run"),
            "--warehouse",
            str(wh),
            "--registry",
            str(registry),
            "--endpoint-id",
            ENDPOINT,
            "--overlay",
            str(good),
            "--json",
        ],
        env={"SALESLOOP_ENV": "local"},
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    first = json.loads(result.stdout)
    assert first["version"] == "v0001" and first["status"] == "accepted"
    assert first["aliases"] == {"champion": "v0001"}
    reg = LocalRegistry(registry)
    assert [(m.version, m.traffic) for m in reg.deployed(ENDPOINT)] == [("v0001", 100)]
    runs = list((tmp_path / "run" / "pipeline_root").iterdir())
    assert len(runs) == 1
    tasks = {p.name for p in runs[0].iterdir()}
    assert {"extract-frame", "backtest-models", "gate-challenger", "rollout-version"} <= tasks
    report = next((runs[0] / "backtest-models").rglob("report*"))
    assert "SeasonalNaive" in report.read_text()

    bad = write_overlay(
        tmp_path / "bad.yaml",
        fast_training(
            candidates=[{"name": "lightgbm", "kind": "lightgbm", "params": BAD_LIGHTGBM_PARAMS}]
        ),
    )
    second = run_local(
        pipeline_root=tmp_path / "run2",
        registry_root=registry,
        endpoint_id=ENDPOINT,
        overlay=bad,
        warehouse_path=wh,
    )
    assert second == {"version": "v0002", "status": "rejected"}
    meta = reg.get("v0002").metadata
    assert meta["status"] == "rejected" and "SeasonalNaive" in meta["reason"]
    assert reg.aliases() == {"champion": "v0001"}
    assert [(m.version, m.traffic) for m in reg.deployed(ENDPOINT)] == [("v0001", 100)]
    run2 = next((tmp_path / "run2").iterdir())
    assert not (run2 / "rollout-version").exists()
    audit = reg.audit()
    assert audit[-1]["action"] == "register" and audit[-1]["reason"].startswith("rejected:")

    # Both runs left their rows in the warehouse they read: the champion and the rejected one.
    store = DuckDBWarehouse(wh, read_only=True)
    try:
        rows = store.query("SELECT * FROM {{ model_versions }} ORDER BY version")
    finally:
        store.close()
    assert list(rows["version"]) == ["v0001", "v0002"]
    assert list(rows["status"]) == ["champion", "rejected"]
    v1, v2 = rows.iloc[0], rows.iloc[1]
    assert v1["model_kind"] == v2["model_kind"] == "lightgbm"
    assert v1["promoted_at"] >= v1["created_at"] and pd.isna(v2["promoted_at"])
    assert "promoted after canary steps" in v1["reason"]
    assert v2["reason"] == f"rejected: {meta['reason']}"
    assert (
        pd.Timestamp(v1["train_end"]).date().isoformat() == reg.get("v0001").metadata["train_end"]
    )
    assert json.loads(v2["metrics"])["candidate"] == "lightgbm"
