"""The ``model_versions`` transitions the pipeline writes, on DuckDB in-process and through the
local warehouse service (the demo's path: the kfp steps write through ``HttpWarehouse``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from salesloop.monitoring.versions import backtest_summary
from salesloop.pipeline.versions import record_registration, record_rollout
from salesloop.warehouse import Warehouse
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.warehouse.served import served_warehouse

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _meta(version: str, **extra: Any) -> dict[str, Any]:
    return {
        "version": version,
        "model_kind": "lightgbm",
        "train_start": "2015-01-01",
        "train_end": "2016-04-24",
        "registered_at": "2026-12-01T07:00:00.000Z",
        "candidate": "lightgbm",
        "gate": {"checks": {"beats_seasonal_naive": {"passed": True}}},
        "metrics": {
            "backtest": {
                "lightgbm": {"mase": 0.9, "rmsse": 0.72},
                "SeasonalNaive": {"mase": 1.1, "rmsse": 1.0},
            },
            "plan": {"windows": 4},
        },
        **extra,
    }


@pytest.fixture(params=["duckdb", "served"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    backend = DuckDBWarehouse(tmp_path / "w.duckdb")
    if request.param == "duckdb":
        yield backend
        backend.close()
        return
    with served_warehouse(backend) as client:
        yield client


def _rows(wh: Warehouse) -> dict[str, dict[str, Any]]:
    frame = wh.query("SELECT * FROM {{ model_versions }} ORDER BY version")
    return {str(r["version"]): {str(k): v for k, v in r.items()} for r in frame.to_dict("records")}


def test_register_promote_retire_and_roll_back(warehouse: Warehouse) -> None:
    record_registration(warehouse, "v0002", _meta("v0002"), accepted=True, reason="accepted: ok")
    record_registration(
        warehouse, "v0003", _meta("v0003"), accepted=False, reason="rejected: bias", now=T0
    )
    rows = _rows(warehouse)
    assert rows["v0002"]["status"] == "registered" and rows["v0003"]["status"] == "rejected"
    assert pd.Timestamp(rows["v0002"]["created_at"]) == pd.Timestamp("2026-12-01T07:00Z")
    assert pd.Timestamp(rows["v0002"]["train_end"]).date().isoformat() == "2016-04-24"
    assert pd.isna(rows["v0002"]["promoted_at"])
    own = backtest_summary(rows["v0002"]["metrics"])
    assert own["mase"] == 0.9 and own["seasonal_naive_mase"] == 1.1

    # v0001 (the champion, registered outside the pipeline: no row yet) is retired by v0002
    promoted_at = T0 + timedelta(hours=1)
    changed = record_rollout(
        warehouse,
        version="v0002",
        metadata=_meta("v0002"),
        promoted=True,
        rolled_back=False,
        reason="promoted after canary steps [10, 100]",
        previous_champion="v0001",
        previous_metadata=_meta("v0001", model_kind="auto_ets"),
        now=promoted_at,
    )
    assert changed == ["v0002", "v0001"]
    rows = _rows(warehouse)
    assert rows["v0002"]["status"] == "champion"
    assert pd.Timestamp(rows["v0002"]["promoted_at"]) == pd.Timestamp(promoted_at)
    assert rows["v0002"]["reason"] == "promoted after canary steps [10, 100]"
    assert (rows["v0001"]["status"], rows["v0001"]["model_kind"]) == ("retired", "auto_ets")
    assert rows["v0001"]["reason"] == "replaced as champion by v0002"

    # a later rollback of v0002 (e.g. a manual re-run) keeps when it was promoted
    later = promoted_at + timedelta(days=1)
    record_rollout(
        warehouse,
        version="v0002",
        metadata=_meta("v0002"),
        promoted=False,
        rolled_back=True,
        reason="rollback of v0002 at 10%: endpoint_errors: 2/5 requests failed",
        now=later,
    )
    rows = _rows(warehouse)
    assert rows["v0002"]["status"] == "rolled_back"
    assert rows["v0002"]["reason"].startswith("rollback of v0002 at 10%")
    assert pd.Timestamp(rows["v0002"]["promoted_at"]) == pd.Timestamp(promoted_at)
    assert pd.Timestamp(rows["v0002"]["updated_at"]) == pd.Timestamp(later)
    assert set(rows) == {"v0001", "v0002", "v0003"}

    # neither promoted nor rolled back ("already the champion"): nothing is written
    assert (
        record_rollout(
            warehouse,
            version="v0003",
            metadata=_meta("v0003"),
            promoted=False,
            rolled_back=False,
            reason="",
        )
        == []
    )
    assert _rows(warehouse)["v0003"]["status"] == "rejected"
