"""Daily sales rows → weekly or monthly rows, for testing and benchmarking other frequencies.

Real weekly or monthly feeds arrive already aggregated; this turns the daily generator's output
into such a feed so the whole pipeline can be exercised at ``freq: W`` or ``MS`` without a second
generator. A period's row carries the period start as ``date`` (as the warehouse schema expects),
the sum of units, the mean price, and whether any day of it was a SNAP day or had an event.
"""

from __future__ import annotations

import pandas as pd

_KEYS = ("store_id", "item_id", "dept_id", "cat_id", "state_id")


def period_starts(dates: pd.Series, freq: str) -> pd.Series:
    """Monday-based weeks for ``W``; first of the month for ``MS`` / ``M``."""
    d = pd.to_datetime(dates).dt.normalize()
    if freq.startswith("W"):
        return d - pd.to_timedelta(d.dt.dayofweek, unit="D")
    if freq in ("MS", "M", "ME"):
        return d.dt.to_period("M").dt.start_time
    if freq == "D":
        return d
    raise ValueError(f"unsupported frequency {freq!r}")


def aggregate_sales(daily: pd.DataFrame, freq: str, *, complete_only: bool = True) -> pd.DataFrame:
    """One row per series and period; incomplete first/last periods are dropped by default
    (a half week would look like a sales drop)."""
    df = daily.copy()
    df["period"] = period_starts(df["date"], freq)
    keys = [k for k in _KEYS if k in df.columns]
    agg: dict[str, tuple[str, str]] = {"units": ("units", "sum"), "days": ("date", "nunique")}
    if "sell_price" in df.columns:
        agg["sell_price"] = ("sell_price", "mean")
    if "snap" in df.columns:
        df["snap"] = df["snap"].fillna(False).astype(bool)
        agg["snap"] = ("snap", "max")
    if "event_name" in df.columns:
        agg["event_name"] = ("event_name", "first")
    out = df.groupby([*keys, "period"], observed=True, sort=True).agg(**agg).reset_index()
    if complete_only:
        full = out["days"] >= (7 if freq.startswith("W") else out["period"].dt.days_in_month)
        out = out[full]
    out = out.drop(columns="days").rename(columns={"period": "date"})
    if "series_id" in daily.columns or {"store_id", "item_id"} <= set(out.columns):
        out["series_id"] = out["store_id"].astype(str) + "/" + out["item_id"].astype(str)
    return out.reset_index(drop=True)
