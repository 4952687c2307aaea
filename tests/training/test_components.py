"""Each kfp component's function, called directly with kfp artifact objects (no runner).

One chain on one small dataset: extract → validate → train → backtest → gate → register →
rollout, twice (the second run has a champion to compare with and goes through the canary), then a
deliberately bad recipe that the gate rejects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kfp import dsl

from salesloop.monitoring.versions import backtest_summary
from salesloop.registry import LocalRegistry
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.training.helpers import (
    BAD_LIGHTGBM_PARAMS,
    daily_sales,
    fast_training,
    load_warehouse,
    write_overlay,
)
from training.components import FUNCTIONS, build
from training.components.backtest_models import backtest_models
from training.components.extract_frame import extract_frame
from training.components.gate_challenger import gate_challenger
from training.components.register_version import register_version
from training.components.rollout_version import rollout_version
from training.components.train_challenger import train_challenger
from training.components.validate_frame import validate_frame

ENDPOINT = "ep-components"


def _art(cls: type, tmp: Path, name: str) -> Any:
    return cls(name=name, uri=str(tmp / name), metadata={})


def _chain(tmp: Path, overlay: Path, warehouse: Path, registry: Path) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = "local"
    raw = _art(dsl.Dataset, tmp, "raw")
    out = extract_frame(env, str(overlay), str(warehouse), "", 0, "", raw)
    frame = _art(dsl.Dataset, tmp, "frame")
    report = _art(dsl.Artifact, tmp, "validation")
    validate_frame(env, str(overlay), out.end_date, raw, frame, report)
    candidates = _art(dsl.Model, tmp, "candidates")
    train_challenger(env, str(overlay), frame, candidates)
    backtest = _art(dsl.Artifact, tmp, "backtest")
    metrics = _art(dsl.Metrics, tmp, "metrics")
    html = _art(dsl.HTML, tmp, "report")
    chosen = backtest_models(
        env, str(overlay), str(registry), frame, candidates, backtest, metrics, html
    )
    decision = _art(dsl.Artifact, tmp, "decision")
    status = gate_challenger(env, str(overlay), backtest, decision)
    version = register_version(
        env, str(overlay), str(registry), str(warehouse), candidates, backtest, decision
    )
    result: dict[str, Any] = {
        "rows": out.rows,
        "raw": raw,
        "frame": frame,
        "validation": json.loads(Path(report.path).read_text()),
        "candidates": candidates,
        "chosen": chosen,
        "metrics": metrics.metadata,
        "report": Path(html.path).read_text(),
        "status": status,
        "decision": json.loads(Path(decision.path).read_text()),
        "version": version,
    }
    if status == "accepted":
        outcome = _art(dsl.Artifact, tmp, "outcome")
        result["rollout"] = rollout_version(
            env, str(overlay), str(registry), ENDPOINT, str(warehouse), version, frame, outcome
        )
        result["outcome"] = json.loads(Path(outcome.path).read_text())
    return result


def _versions(warehouse: Path) -> dict[str, dict[str, Any]]:
    """The ``model_versions`` rows by version."""
    wh = DuckDBWarehouse(warehouse, read_only=True)
    try:
        rows = wh.query("SELECT * FROM {{ model_versions }} ORDER BY version")
    finally:
        wh.close()
    return {str(r["version"]): {str(k): v for k, v in r.items()} for r in rows.to_dict("records")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("components")
    return {
        "tmp": tmp,
        "warehouse": load_warehouse(tmp / "wh.duckdb", daily_sales(24, 180)),
        "overlay": write_overlay(tmp / "overlay.yaml", fast_training()),
        "registry": tmp / "registry",
    }


@pytest.mark.slow
def test_component_chain_first_then_canary_then_rejection(setup: dict[str, Path]) -> None:
    tmp, wh, registry = setup["tmp"], setup["warehouse"], setup["registry"]
    first = _chain(tmp / "run1", setup["overlay"], wh, registry)
    assert first["rows"] == 24 * 180 and first["raw"].metadata["series"] == 24
    assert first["validation"]["ok"] and first["frame"].metadata["periods"] == 180
    assert first["candidates"].metadata == {"candidates": ["lightgbm"]}
    assert first["chosen"] == "lightgbm"
    assert {"lightgbm.rmsse", "SeasonalNaive.rmsse", "AutoETS.rmsse"} <= set(first["metrics"])
    assert first["metrics"]["lightgbm.rmsse"] < first["metrics"]["SeasonalNaive.rmsse"]
    assert "<table>" in first["report"] and "data:image/png;base64," in first["report"]
    assert first["status"] == "accepted", first["decision"]["reasons"]
    assert first["rollout"] == "promoted"
    reg = LocalRegistry(registry)
    assert reg.alias("champion") == first["version"] == "v0001"
    meta = reg.get("v0001").metadata
    assert meta["status"] == "accepted" and meta["candidate"] == "lightgbm"
    assert set(meta["metrics"]["backtest"]) == {"lightgbm", "SeasonalNaive", "AutoETS"}
    rows = _versions(wh)
    assert rows["v0001"]["status"] == "champion"
    assert rows["v0001"]["promoted_at"] >= rows["v0001"]["created_at"]

    second = _chain(tmp / "run2", setup["overlay"], wh, registry)
    assert "champion.rmsse" in second["metrics"]
    assert second["decision"]["checks"]["not_worse_than_champion"]["passed"]
    assert second["rollout"] == "promoted"
    assert [s["traffic"] for s in second["outcome"]["steps"]] == [0, 10, 100]
    assert reg.alias("champion") == "v0002"
    rows = _versions(wh)
    assert rows["v0001"]["status"] == "retired"
    assert rows["v0001"]["reason"] == "replaced as champion by v0002"
    assert rows["v0002"]["status"] == "champion" and "canary" in rows["v0002"]["reason"]
    # the row's metrics are the version's backtest, as monitoring reads them
    own = backtest_summary(rows["v0002"]["metrics"])
    assert own["rmsse"] == pytest.approx(second["metrics"]["lightgbm.rmsse"])
    assert own["seasonal_naive_mase"] == pytest.approx(second["metrics"]["SeasonalNaive.mase"])

    bad_overlay = write_overlay(
        tmp / "bad.yaml",
        fast_training(
            candidates=[{"name": "lightgbm", "kind": "lightgbm", "params": BAD_LIGHTGBM_PARAMS}]
        ),
    )
    third = _chain(tmp / "run3", bad_overlay, wh, registry)
    assert third["status"] == "rejected"
    checks = third["decision"]["checks"]
    assert not checks["beats_seasonal_naive"]["passed"]
    assert not checks["not_worse_than_champion"]["passed"]
    assert "rollout" not in third
    meta3 = reg.get(third["version"]).metadata
    assert meta3["status"] == "rejected" and "SeasonalNaive" in meta3["reason"]
    assert reg.alias("champion") == "v0002" and reg.alias("challenger") is None
    assert [(m.version, m.traffic) for m in reg.deployed(ENDPOINT)] == [("v0002", 100)]
    rows = _versions(wh)
    assert {v: r["status"] for v, r in rows.items()} == {
        "v0001": "retired",
        "v0002": "champion",
        "v0003": "rejected",
    }
    assert rows["v0003"]["reason"].startswith("rejected:") and pd.isna(rows["v0003"]["promoted_at"])
    # the rollout component refuses a rejected version even when called by hand
    with pytest.raises(ValueError, match="only accepted versions roll out"):
        rollout_version(
            "local",
            str(setup["overlay"]),
            str(registry),
            ENDPOINT,
            str(wh),
            third["version"],
            first["frame"],
            _art(dsl.Artifact, tmp, "outcome3"),
        )


def test_components_are_named_verb_noun_one_per_file(repo: Path) -> None:
    files = sorted(p.stem for p in (repo / "training" / "components").glob("*.py"))
    assert [f for f in files if f != "__init__"] == sorted(FUNCTIONS)
    for name in FUNCTIONS:
        assert len(name.split("_")) == 2
    components = build("example.org/training:1")
    spec = components["extract_frame"].component_spec
    assert spec.implementation.container.image == "example.org/training:1"
    assert "pip install" not in " ".join(spec.implementation.container.command or [])
