"""Small, fast datasets and settings overlays shared by the training and evaluation tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from salesloop.data.generate import generate_frame
from salesloop.warehouse.duckdb import DuckDBWarehouse

# A LightGBM small enough to fit in about a second on a few thousand rows.
FAST_LGBM: dict[str, Any] = {
    "objective": "tweedie",
    "tweedie_variance_power": 1.1,
    "n_estimators": 40,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_child_samples": 20,
    "max_bin": 31,
    "seed": 0,
    "n_jobs": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
FAST_LIGHTGBM_PARAMS: dict[str, Any] = {
    "lgbm": FAST_LGBM,
    "calibration_windows": 2,
    "min_per_bin": 20,
}
# A deliberately bad recipe: one tiny boosting step from the mean, i.e. a flat forecast.
BAD_LIGHTGBM_PARAMS: dict[str, Any] = {
    "lgbm": {**FAST_LGBM, "n_estimators": 1, "learning_rate": 0.001},
    "calibration_windows": 2,
    "min_per_bin": 20,
}


@lru_cache(maxsize=8)
def _generated(n_series: int, n_days: int, seed: int) -> pd.DataFrame:
    df = generate_frame(n_series, n_days, start=date(2014, 1, 6), seed=seed)
    df["series_id"] = df["store_id"].astype(str) + "/" + df["item_id"].astype(str)
    return df


def daily_sales(n_series: int = 30, n_days: int = 200, seed: int = 3) -> pd.DataFrame:
    """Generated daily sales (a copy: tests may mutate it)."""
    return _generated(n_series, n_days, seed).copy()


def as_sales_rows(df: pd.DataFrame, job_id: str = "job_train") -> pd.DataFrame:
    rows = df.copy()
    rows["job_id"] = job_id
    rows["row_num"] = range(len(rows))
    rows["inserted_at"] = datetime(2020, 1, 1, tzinfo=UTC)
    return rows


def load_warehouse(path: Path, df: pd.DataFrame) -> Path:
    wh = DuckDBWarehouse(path)
    try:
        wh.insert_job({"sales": as_sales_rows(df)}, job_id="job_train")
    finally:
        wh.close()
    return path


def write_overlay(path: Path, training: dict[str, Any], **other: Any) -> Path:
    """A SALESLOOP_OVERLAY-style YAML file (applied after base.yaml and the env overlay)."""
    path.write_text(yaml.safe_dump({"training": training, **other}, sort_keys=False))
    return path


def fast_training(**overrides: Any) -> dict[str, Any]:
    """The training section of a quick test run: 2 windows, small LightGBM, short stat history."""
    base: dict[str, Any] = {
        "candidates": [{"name": "lightgbm", "kind": "lightgbm", "params": FAST_LIGHTGBM_PARAMS}],
        "backtest": {"windows": 2, "stat_max_history": 120, "report_series": 2},
        "sanity": {"probe_series": 20},
        "canary": {"health_requests": 0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base
