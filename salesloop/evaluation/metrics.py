"""Forecast accuracy of backtest rows: MASE, RMSSE, WAPE, bias and interval coverage.

Scaled errors (MASE, RMSSE) follow M5: a series' error is divided by the in-sample error of the
one-season-ago forecast over its history before the first evaluated origin (no peeking), then
averaged over series with equal weight, so a slow item counts as much as a bestseller. WAPE and bias
are volume-weighted (sum of errors over sum of actuals): the numbers a planner feels. Reporting both
kinds keeps a model from winning on one family while failing the other.

Input rows are long: ``unique_id, ds, cutoff, model, y, yhat`` plus ``lo_<L>, hi_<L>`` per interval
level and optionally ``cat_id`` for the per-category breakdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL
from salesloop.model.metrics import seasonal_scales

METRICS: tuple[str, ...] = ("mase", "rmsse", "wape", "bias")


def scales_before(frame: pd.DataFrame, cutoff: pd.Timestamp, season_length: int) -> pd.DataFrame:
    """Per series ``mae_scale`` and ``mse_scale`` from the periods up to ``cutoff``."""
    hist = frame.loc[frame[TIME_COL] <= cutoff, [ID_COL, TIME_COL, TARGET_COL]]
    return seasonal_scales(hist, season_length)


def model_metrics(
    rows: pd.DataFrame, scales: pd.DataFrame, levels: Sequence[int]
) -> dict[str, Any]:
    """The metrics of one model's rows (all windows pooled)."""
    y = rows[TARGET_COL].to_numpy(dtype=float)
    yhat = rows["yhat"].to_numpy(dtype=float)
    err = yhat - y
    total = float(np.sum(y))
    per = (
        pd.DataFrame({ID_COL: rows[ID_COL].to_numpy(), "ae": np.abs(err), "se": err**2})
        .groupby(ID_COL, sort=False, observed=True)[["ae", "se"]]
        .mean()
        .join(scales, how="inner")
    )
    per = per[(per["mae_scale"] > 0) & (per["mse_scale"] > 0)]
    out: dict[str, Any] = {
        "mase": _f(float((per["ae"] / per["mae_scale"]).mean())) if len(per) else math.nan,
        "rmsse": _f(float(np.sqrt(per["se"] / per["mse_scale"]).mean())) if len(per) else math.nan,
        "wape": _f(float(np.abs(err).sum()) / total) if total > 0 else math.nan,
        "bias": _f(float(err.sum()) / total) if total > 0 else math.nan,
    }
    for level in levels:
        lo = rows[f"lo_{level}"].to_numpy(dtype=float)
        hi = rows[f"hi_{level}"].to_numpy(dtype=float)
        out[f"coverage_{level}"] = _f(float(np.mean((y >= lo) & (y <= hi)))) if len(y) else math.nan
        out[f"width_{level}"] = _f(float(np.mean(hi - lo))) if len(y) else math.nan
    out["n_series"] = len(per)
    out["n_rows"] = len(rows)
    return out


def evaluate(
    forecasts: pd.DataFrame,
    scales: pd.DataFrame,
    levels: Sequence[int],
    *,
    by: str | None = "cat_id",
) -> dict[str, Any]:
    """``{"overall": {model: metrics}, "by_category": {cat: {model: metrics}}, "by_window": ...}``."""
    models = list(dict.fromkeys(forecasts["model"]))
    overall = {m: model_metrics(forecasts[forecasts["model"] == m], scales, levels) for m in models}
    by_group: dict[str, dict[str, Any]] = {}
    if by is not None and by in forecasts.columns:
        for group, part in forecasts.groupby(by, sort=True, observed=True):
            by_group[str(group)] = {
                m: model_metrics(part[part["model"] == m], scales, levels) for m in models
            }
    by_window: dict[str, dict[str, float]] = {}
    for cutoff, part in forecasts.groupby("cutoff", sort=True):
        key = str(pd.Timestamp(cutoff).date())  # type: ignore[arg-type]
        by_window[key] = {
            m: model_metrics(part[part["model"] == m], scales, levels)["rmsse"] for m in models
        }
    return {"overall": overall, "by_category": by_group, "by_window_rmsse": by_window}


def relative(metrics: dict[str, dict[str, Any]], metric: str, reference: str) -> dict[str, float]:
    """Each model's ``metric`` divided by the reference model's (1.0 = as good)."""
    ref = metrics.get(reference, {}).get(metric, math.nan)
    return {
        m: _f(v[metric] / ref) if ref and math.isfinite(ref) else math.nan
        for m, v in metrics.items()
    }


def _f(x: float) -> float:
    return round(float(x), 5) if math.isfinite(x) else math.nan
