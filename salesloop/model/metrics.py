"""Scaled errors against the seasonal-naive benchmark (M5 style), for backtests and metadata.

MASE and RMSSE divide a series' forecast error by the in-sample error of the one-season-ago
forecast, so series of very different volumes average meaningfully and 1.0 means "as good as
seasonal naive in-sample". Scales come only from data before the first evaluated origin (no
peeking); series whose scale is 0 (constant history) are left out of the average, as in M5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL


def seasonal_scales(train: pd.DataFrame, season_length: int) -> pd.DataFrame:
    """Per series: mean |y_t - y_{t-m}| and mean (y_t - y_{t-m})² over its training history."""
    df = train.sort_values([ID_COL, TIME_COL])
    diff = df.groupby(ID_COL, sort=False, observed=True)[TARGET_COL].diff(season_length)
    ids = df[ID_COL]
    return pd.DataFrame(
        {
            "mae_scale": diff.abs().groupby(ids, observed=True).mean(),
            "mse_scale": (diff**2).groupby(ids, observed=True).mean(),
        }
    )


def seasonal_naive_values(
    frame: pd.DataFrame, rows: pd.DataFrame, season_length: int, freq: str = "D"
) -> np.ndarray:
    """The seasonal-naive forecast for each (unique_id, ds, cutoff) row: the value one season
    before, stepped back whole seasons until it is at or before the cutoff."""
    offset = pd.tseries.frequencies.to_offset(freq)
    steps = _steps_between(rows["cutoff"], rows[TIME_COL], offset)
    seasons_back = (steps + season_length - 1) // season_length
    back = pd.DatetimeIndex(rows[TIME_COL]) - _offsets(seasons_back * season_length, offset)
    lookup = frame.set_index([ID_COL, TIME_COL])[TARGET_COL]
    idx = pd.MultiIndex.from_arrays([rows[ID_COL].to_numpy(), back])
    return lookup.reindex(idx).to_numpy(dtype=float)


def _steps_between(start: pd.Series, end: pd.Series, offset: Any) -> np.ndarray:
    if offset.freqstr == "D":
        return ((pd.DatetimeIndex(end) - pd.DatetimeIndex(start)).days).to_numpy()
    return np.array(
        [len(pd.date_range(s, e, freq=offset)) - 1 for s, e in zip(start, end, strict=True)]
    )


def _offsets(n: np.ndarray, offset: Any) -> pd.TimedeltaIndex | np.ndarray:
    if offset.freqstr == "D":
        return pd.to_timedelta(n, unit="D")
    if offset.freqstr.startswith("W"):
        return pd.to_timedelta(7 * n, unit="D")
    return np.array([offset * int(k) for k in n], dtype=object)


def scaled_errors(
    rows: pd.DataFrame, forecast_col: str, scales: pd.DataFrame
) -> dict[str, float | int]:
    """MASE and RMSSE averaged over series (rows: unique_id, y, forecast_col)."""
    err = rows[TARGET_COL].to_numpy(dtype=float) - rows[forecast_col].to_numpy(dtype=float)
    ok = ~np.isnan(err)
    per = (
        pd.DataFrame(
            {ID_COL: rows[ID_COL].to_numpy()[ok], "ae": np.abs(err[ok]), "se": err[ok] ** 2}
        )
        .groupby(ID_COL, observed=True)[["ae", "se"]]
        .mean()
        .join(scales, how="inner")
    )
    per = per[(per["mae_scale"] > 0) & (per["mse_scale"] > 0)]
    if per.empty:
        return {"mase": float("nan"), "rmsse": float("nan"), "n_series": 0}
    return {
        "mase": float((per["ae"] / per["mae_scale"]).mean()),
        "rmsse": float(np.sqrt(per["se"] / per["mse_scale"]).mean()),
        "n_series": len(per),
    }


def backtest_metrics(
    frame: pd.DataFrame,
    backtest: pd.DataFrame,
    *,
    season_length: int,
    freq: str = "D",
    forecast_col: str = "yhat",
) -> dict[str, Any]:
    """Metrics of backtest rows (unique_id, ds, cutoff, y, yhat) against seasonal naive on the
    same rows, overall and for the last origin alone (the "last horizon" holdout)."""
    first_cutoff = backtest["cutoff"].min()
    scales = seasonal_scales(frame[frame[TIME_COL] <= first_cutoff], season_length)
    rows = backtest.assign(
        seasonal_naive=seasonal_naive_values(frame, backtest, season_length, freq)
    )

    def block(part: pd.DataFrame) -> dict[str, Any]:
        model = scaled_errors(part, forecast_col, scales)
        naive = scaled_errors(part, "seasonal_naive", scales)
        rel = model["mase"] / naive["mase"] if naive["mase"] else float("nan")
        return {
            "mase": _r(model["mase"]),
            "rmsse": _r(model["rmsse"]),
            "seasonal_naive_mase": _r(naive["mase"]),
            "seasonal_naive_rmsse": _r(naive["rmsse"]),
            "relative_mase": _r(rel),
            "n_series": model["n_series"],
        }

    last = rows[rows["cutoff"] == rows["cutoff"].max()]
    return {
        "backtest": {
            **block(rows),
            "n_windows": int(rows["cutoff"].nunique()),
            "first_cutoff": str(pd.Timestamp(first_cutoff).date()),
            "last_cutoff": str(pd.Timestamp(rows["cutoff"].max()).date()),
        },
        "holdout_last_horizon": {
            **block(last),
            "cutoff": str(pd.Timestamp(rows["cutoff"].max()).date()),
        },
    }


def interval_coverage(rows: pd.DataFrame, levels: list[int]) -> dict[str, float]:
    """Share of actuals inside lo_L..hi_L, per level."""
    y = rows[TARGET_COL].to_numpy(dtype=float)
    return {
        f"coverage_{lv}": _r(
            float(np.mean((y >= rows[f"lo_{lv}"].to_numpy()) & (y <= rows[f"hi_{lv}"].to_numpy())))
        )
        for lv in levels
    }


def _r(x: float) -> float:
    return round(float(x), 4) if np.isfinite(x) else float("nan")
