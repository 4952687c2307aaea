"""Weekly and monthly data through the pipeline steps, configured only through settings; and
"pick the best candidate by backtest" (LightGBM vs AutoETS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from salesloop.evaluation.periods import aggregate_sales
from salesloop.pipeline import steps
from salesloop.registry import LocalRegistry
from tests.training.helpers import FAST_LIGHTGBM_PARAMS, daily_sales, load_warehouse, write_overlay

CANDIDATES = [
    {"name": "lightgbm", "kind": "lightgbm", "params": FAST_LIGHTGBM_PARAMS},
    {"name": "ets", "kind": "auto_ets"},
]


def _run(
    tmp: Path, sales: pd.DataFrame, forecast: dict[str, Any], training: dict[str, Any]
) -> dict[str, Any]:
    wh = load_warehouse(tmp / "wh.duckdb", sales)
    overlay = str(write_overlay(tmp / "overlay.yaml", training, forecast=forecast))
    registry = str(tmp / "registry")
    steps.extract_step(
        "local",
        str(tmp / "raw.parquet"),
        overlay=overlay,
        warehouse_path=str(wh),
        history_days=5000,
    )
    stats = steps.validate_step(
        "local",
        str(tmp / "raw.parquet"),
        str(tmp / "frame.parquet"),
        str(tmp / "v.json"),
        overlay=overlay,
    )
    trained = steps.train_step(
        "local", str(tmp / "frame.parquet"), str(tmp / "cands"), overlay=overlay
    )
    summary = steps.backtest_step(
        "local",
        str(tmp / "frame.parquet"),
        str(tmp / "cands"),
        str(tmp / "bt"),
        overlay=overlay,
        registry_root=registry,
    )
    decision = steps.gate_step(
        "local", str(tmp / "bt" / "backtest.json"), str(tmp / "d.json"), overlay=overlay
    )
    version = steps.register_step(
        "local",
        str(tmp / "cands"),
        str(tmp / "bt" / "backtest.json"),
        str(tmp / "d.json"),
        registry,
        overlay=overlay,
        warehouse_path=str(wh),
    )
    return {
        "stats": stats,
        "trained": trained,
        "summary": summary,
        "decision": decision,
        "version": version,
        "registry": LocalRegistry(registry),
        "forecasts": pd.read_parquet(tmp / "bt" / "forecasts.parquet"),
    }


@pytest.mark.slow
def test_weekly_data_and_best_candidate_by_backtest(tmp_path: Path) -> None:
    weekly = aggregate_sales(daily_sales(20, 1000, seed=5), "W")
    out = _run(
        tmp_path,
        weekly,
        {"freq": "W", "horizon": 4, "season_length": 52},
        {
            "candidates": CANDIDATES,
            "select_best": True,
            "backtest": {"windows": 2, "min_train_periods": 60, "report_series": 1},
            "gate": {"min_improvement_vs_seasonal_naive": 0.0, "max_coverage_gap": None},
        },
    )
    assert out["stats"]["freq"] == "W-MON" and out["stats"]["periods"] == weekly["date"].nunique()
    summary = out["summary"]
    assert summary["plan"]["horizon"] == 4 and summary["plan"]["windows"] == 2
    rmsse = {m: v["rmsse"] for m, v in summary["overall"].items()}
    assert set(rmsse) == {"lightgbm", "ets", "SeasonalNaive", "AutoETS"}
    assert summary["chosen"] == min(["lightgbm", "ets"], key=lambda m: rmsse[m])
    # the AutoETS baseline is the "ets" candidate's recipe: computed once, scored under both names
    assert "same recipe as candidate 'ets'" in summary["notes"]["AutoETS"]
    assert summary["overall"]["AutoETS"] == summary["overall"]["ets"]
    rows = out["forecasts"]
    assert rows["ds"].dt.dayofweek.eq(0).all()
    assert rows.groupby(["model", "cutoff", "unique_id"]).size().eq(4).all()
    assert rows.groupby("model").size().nunique() == 1  # same rows for every model
    meta = out["registry"].get(out["version"]).metadata
    assert meta["candidate"] == summary["chosen"] and meta["freq"] == "W-MON"
    assert meta["model_kind"] == {"lightgbm": "lightgbm", "ets": "auto_ets"}[summary["chosen"]]
    model = out["registry"].load_model(out["version"])
    assert model.metadata.horizon == 4


@pytest.mark.slow
def test_monthly_data(tmp_path: Path) -> None:
    monthly = aggregate_sales(daily_sales(12, 1900, seed=6), "MS")
    out = _run(
        tmp_path,
        monthly,
        {"freq": "MS", "horizon": 3, "season_length": 12},
        {
            "candidates": CANDIDATES[:1],
            "backtest": {"windows": 2, "min_train_periods": 24, "report_series": 0},
            "gate": {"max_coverage_gap": None},
        },
    )
    assert out["stats"]["freq"] == "MS"
    rows = out["forecasts"]
    assert rows["ds"].dt.day.eq(1).all() and rows["cutoff"].dt.day.eq(1).all()
    assert json.loads(json.dumps(out["summary"]["plan"]))["horizon"] == 3
    assert out["decision"].checks["finite"]["passed"]
