"""The drop-alert rule: decide which forecasts are worth an email to a human.

The rule is deliberately pure (no I/O, no clock, no randomness) and vectorized over every series of
an event, so the function can run it on the whole batch in milliseconds and a test can run it
thousands of times. Everything it needs arrives as data: the forecasts, the history, the alerts
already raised, the settings and ``now``.

Why each condition is there (a page that turns out to be nothing costs trust, so every condition
leans towards silence). Each subject is compared with **one** baseline, chosen per subject: the
same week last year when the series existed then (every one of the 364-day-earlier days is in the
history; for an aggregate, at least one of its series), else the trailing 7 days.

* **Why last year first.** It carries the seasonality: a dip that also happened last year is not
  news, and it stays high while a sustained drop is under way. The trailing week cannot do that: a
  global model reacts to a sustained drop only gradually, so by the time it predicts a lower week
  the trailing days are already low too, and a drop "versus the trailing week" never shows (on the
  demo's data a real 80 % category drop was never reported that way). The trailing week is only
  the fallback for series too young to have last year's week.
* **Drop beyond the threshold vs the chosen baseline** (``drop_pct > drop_threshold``), with the
  forecast that is comparable to it: for an aggregate compared with last year, the forecast of the
  series that existed last year.
* **The whole prediction interval is below the chosen baseline** (``hi < baseline``). A point
  forecast that drops is not enough when the model itself says the usual level is still plausible.
* **Noise floor** on the chosen baseline (``min_baseline_units``, and above zero). A 50 % drop from
  4 units to 2 is noise at M5's intermittent bottom level.

Interval of a 7-day total of one series: the sum of the per-day bounds. Days of one series are
positively dependent (a level error persists through the week), and the sum is exact for perfectly
dependent errors; for weaker dependence the true quantile lies closer to the mean, so the summed
upper bound is too high, which can only suppress an alert (``hi < baseline``), never create one.

Interval of a multi-series total (store x category): ``hi = forecast + sqrt(sum_i (hi_i -
forecast_i)^2)`` and ``lo = max(0, forecast - sqrt(sum_i (forecast_i - lo_i)^2))`` over the
series' 7-day totals. Forecast errors of different items are close to independent, and the
root-sum-square of the per-series half-widths is the independence approximation (exact for
independent normal errors). Summing the bounds instead assumes every item misses on the same side
at once: for the 14 intermittent series of a demo store x category it put the upper bound at about
twice the point forecast, so ``hi < baseline`` could never hold for an aggregate. The
approximation can err the other way: positive correlation across series (a common shock to the
whole store or category) widens the true interval beyond the root-sum-square, which is why the
rule still requires the drop beyond the threshold and not only the interval below the baseline.
Missing bounds on any day of any series make the total's interval unknown, and an unknown ``hi``
never alerts.

Aggregates sum the series *in this batch*, and their baselines sum the history of the same series,
so a store whose event touched only part of its catalogue is compared like with like. Against last
year an aggregate uses only the series that existed last year, with their own forecasts and
interval (``ly_forecast``, ``ly_lo``, ``ly_hi``). An aggregate of a single series is not reported:
it would be the series alert again.

The rule assumes daily data: the trailing window is as many days as there are forecast days (the
horizon, 7 everywhere), and last year is the target dates minus 364 days (same weekday).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from typing import Final

import numpy as np
import pandas as pd

from salesloop.config import AlertSettings
from salesloop.schemas import ALERTS

RULE_FORECAST_DROP: Final = "forecast_drop"
SCOPE_SERIES: Final = "series"
SCOPE_STORE_CATEGORY: Final = "store_category"
BASELINE_TRAILING: Final = "trailing_7d"
BASELINE_LAST_YEAR: Final = "same_week_last_year"
LAST_YEAR_OFFSET_DAYS: Final = 364  # 52 weeks: the same weekday, which dominates daily retail

_FORECAST_COLUMNS: Final = (
    "series_id",
    "store_id",
    "cat_id",
    "forecast_origin",
    "horizon_day",
    "target_date",
    "yhat",
)
_HISTORY_COLUMNS: Final = ("series_id", "date", "units")
_RECENT_COLUMNS: Final = ("alert_key", "scope", "subject_id", "rule", "created_at")

STATS_COLUMNS: Final = (
    "scope",
    "subject_id",
    "store_id",
    "cat_id",
    "forecast_origin",
    "week_start",
    "week_end",
    "n_days",
    "n_series",
    "forecast",
    "lo",
    "hi",
    "baseline",
    "drop_pct",
    "ly_available",
    "ly_n_series",
    "ly_baseline",
    "ly_forecast",
    "ly_lo",
    "ly_hi",
    "ly_drop_pct",
)


def alert_key(scope: str, subject_id: str, week_start: date, rule: str) -> str:
    """One alert per subject, forecast week and rule: the idempotency key of the alerts table."""
    return f"{scope}:{subject_id}|{week_start.isoformat()}|{rule}"


@lru_cache(maxsize=1)
def _empty_alerts_template() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in ALERTS.column_names})


def empty_alerts() -> pd.DataFrame:
    """A fresh empty alerts frame (a copy: building one costs ~1 ms, most events raise none)."""
    return _empty_alerts_template().copy()


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")


def _as_day(values: pd.Series) -> pd.Series:
    """Dates arrive as ``date`` objects, strings or timestamps depending on the warehouse."""
    if values.dtype.kind == "M" and getattr(values.dtype, "tz", None) is None:
        # Already naive timestamps (what the warehouse returns): truncate to the day directly;
        # to_datetime + normalize cost milliseconds per call on the function's hot path.
        days = values.to_numpy(dtype="datetime64[D]").astype("datetime64[ns]")
        return pd.Series(days, index=values.index, name=values.name)
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert(None)
    return out.dt.normalize().astype("datetime64[ns]")


def _as_utc(values: pd.Series) -> pd.Series:
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is None:
        return out.dt.tz_localize("UTC")
    return out.dt.tz_convert("UTC")


def _utc_now(now: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(now)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _prepare_forecasts(forecasts: pd.DataFrame, interval_level: int | None) -> pd.DataFrame:
    cols = list(_FORECAST_COLUMNS)
    if interval_level is not None:
        bounds = (f"lo_{interval_level}", f"hi_{interval_level}")
        _require(forecasts, bounds, f"forecasts (interval level {interval_level})")
        cols += bounds
    f = forecasts[cols].copy()
    if interval_level is None:
        f["lo"] = np.nan
        f["hi"] = np.nan
    else:
        f = f.rename(columns={f"lo_{interval_level}": "lo", f"hi_{interval_level}": "hi"})
    f["forecast_origin"] = _as_day(f["forecast_origin"])
    f["target_date"] = _as_day(f["target_date"])
    for col in ("yhat", "lo", "hi"):
        f[col] = pd.to_numeric(f[col], errors="coerce").astype("float64")
    f["horizon_day"] = f["horizon_day"].astype("int64")
    dup = f.duplicated(["series_id", "forecast_origin", "horizon_day"])
    if dup.any():
        row = f.loc[dup].iloc[0]
        raise ValueError(
            f"forecasts has duplicate rows for series {row['series_id']!r}, origin "
            f"{row['forecast_origin'].date()}, horizon day {row['horizon_day']}"
        )
    # A canonical row order makes the float sums, hence the output, independent of input order;
    # it also makes each (series, store, category, origin) group a run of rows (_series_stats).
    return f.sort_values(
        ["series_id", "store_id", "cat_id", "forecast_origin", "horizon_day"], ignore_index=True
    )


def _prepare_history(history: pd.DataFrame) -> pd.DataFrame:
    h = history[list(_HISTORY_COLUMNS)].copy()
    h["date"] = _as_day(h["date"])
    h["units"] = pd.to_numeric(h["units"], errors="coerce").astype("float64").fillna(0.0)
    dup = h.duplicated(["series_id", "date"])
    if dup.any():
        row = h.loc[dup].iloc[0]
        raise ValueError(
            f"history has several rows for series {row['series_id']!r} on {row['date'].date()}; "
            "resolve corrections (latest insert wins) before evaluating alerts"
        )
    return h.sort_values(["series_id", "date"], ignore_index=True)


def _series_stats(f: pd.DataFrame, h: pd.DataFrame) -> pd.DataFrame:
    # ``f`` is sorted by these keys (_prepare_forecasts), so each group is a run of rows and the
    # sums are reduceat calls: a pandas group-by costs ~10 ms per event even for one series.
    keys = ["series_id", "store_id", "cat_id", "forecast_origin"]
    n = len(f)
    new_group = np.zeros(n, dtype=bool)
    if n:
        new_group[0] = True
        for k in keys:
            col = f[k].to_numpy()
            new_group[1:] |= col[1:] != col[:-1]
    first = np.flatnonzero(new_group)
    sizes = np.diff(np.append(first, n))
    group = np.repeat(np.arange(len(first)), sizes)
    lo_v = f["lo"].to_numpy(dtype=np.float64)
    hi_v = f["hi"].to_numpy(dtype=np.float64)
    target = f["target_date"].to_numpy(dtype="datetime64[ns]")
    missing = (
        np.logical_or.reduceat(np.isnan(lo_v) | np.isnan(hi_v), first)
        if n
        else np.zeros(0, dtype=bool)
    )

    def total(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.nan_to_num(values, nan=0.0), first) if n else np.zeros(0)

    forecast = total(f["yhat"].to_numpy(dtype=np.float64))
    lo = np.where(missing, np.nan, total(lo_v))
    hi = np.where(missing, np.nan, total(hi_v))
    n_days = sizes.astype(np.int64)
    key_values = {k: f[k].to_numpy()[first] for k in keys}
    trailing, ly_baseline, ly_days = _history_windows(
        f, group, key_values["series_id"], key_values["forecast_origin"], n_days, h
    )
    # Same week last year: only when every target day minus 364 days is in the history, since a
    # partial week is not the same week. Trailing baseline: the n_days up to and including the
    # origin; a day absent from the history counts as zero, which lowers the baseline and so can
    # only make an alert less likely.
    ly = ly_days == n_days
    columns = {
        **key_values,
        "forecast": forecast,
        "lo": lo,
        "hi": hi,
        "week_start": np.minimum.reduceat(target, first) if n else target[:0],
        "week_end": np.maximum.reduceat(target, first) if n else target[:0],
        "n_days": n_days,
        "baseline": trailing,
        "ly_baseline": np.where(ly, ly_baseline, np.nan),
        "ly_available": ly,
        "ly_forecast": np.where(ly, forecast, np.nan),
        "ly_lo": np.where(ly, lo, np.nan),
        "ly_hi": np.where(ly, hi, np.nan),
        "n_series": np.ones(len(first), dtype=np.int64),
        "ly_n_series": ly.astype(np.int64),
        "scope": np.full(len(first), SCOPE_SERIES, dtype=object),
        "subject_id": key_values["series_id"],
    }
    return pd.DataFrame(columns)


def _history_windows(
    f: pd.DataFrame,
    group: np.ndarray,
    series_id: np.ndarray,
    forecast_origin: np.ndarray,
    n_days: np.ndarray,
    h: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per series subject (arrays of its ``series_id``, origin and day count): units of its series over the trailing window, and over the target days
    minus 364 (with how many of those days the history has).

    Array lookups instead of two frame merges and group-bys: the rule runs on every event, and on
    a one-series event the merges were most of its time. Both windows are looked up in the
    history sorted by (series, day); ``group`` is each forecast row's row of ``s``.
    """
    codes, _ = pd.factorize(
        np.concatenate([h["series_id"].to_numpy(dtype=object), series_id.astype(object)])
    )
    h_code, s_code = codes[: len(h)], codes[len(h) :]
    h_day = h["date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    origin = forecast_origin.astype("datetime64[D]").astype(np.int64)
    ly_day = (f["target_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)) - (
        LAST_YEAR_OFFSET_DAYS
    )
    days = [h_day, origin - n_days + 1, origin, ly_day]
    lo_day = min(int(d.min()) for d in days if d.size)
    span = max(int(d.max()) for d in days if d.size) - lo_day + 1
    order = np.lexsort((h_day, h_code))
    key = h_code[order].astype(np.int64) * span + (h_day[order] - lo_day)
    units = np.append(h["units"].to_numpy(dtype=np.float64)[order], 0.0)

    start = np.searchsorted(key, s_code * span + (origin - n_days + 1 - lo_day), side="left")
    stop = np.searchsorted(key, s_code * span + (origin - lo_day), side="right")
    pairs = np.column_stack([start, stop]).ravel()
    sums = (
        np.add.reduceat(units, np.minimum(pairs, len(units) - 1))[::2]
        if len(series_id)
        else np.zeros(0)
    )
    trailing = np.where(stop > start, sums, 0.0)

    wanted = s_code[group] * span + (ly_day - lo_day)
    pos = np.minimum(np.searchsorted(key, wanted, side="left"), max(len(key) - 1, 0))
    found = (key[pos] == wanted) if len(key) else np.zeros(len(wanted), dtype=bool)
    ly_units = np.where(found, units[pos] if len(key) else 0.0, 0.0)
    ly_baseline = np.bincount(group, weights=ly_units, minlength=len(series_id))
    ly_days = np.bincount(group, weights=found.astype(np.float64), minlength=len(series_id))
    return trailing, ly_baseline, ly_days.astype(np.int64)


def _aggregate_stats(s: pd.DataFrame) -> pd.DataFrame:
    keys = ["store_id", "cat_id", "forecast_origin"]
    avail = s["ly_available"]
    missing = s["hi"].isna() | s["lo"].isna()
    # Squared half-widths of each series' 7-day interval: their sums give the root-sum-square
    # interval of the total (module docstring).
    up_sq = (s["hi"] - s["forecast"]) ** 2
    down_sq = (s["forecast"] - s["lo"]) ** 2
    parts = s.assign(
        bound_missing=missing,
        up_sq=up_sq,
        down_sq=down_sq,
        ly_baseline_part=s["ly_baseline"].where(avail, 0.0),
        ly_forecast_part=s["forecast"].where(avail, 0.0),
        ly_up_sq=up_sq.where(avail, 0.0),
        ly_down_sq=down_sq.where(avail, 0.0),
        ly_bound_missing=avail & missing,
    )
    g = parts.groupby(keys, sort=True)
    summed = g[
        [
            "forecast",
            "baseline",
            "up_sq",
            "down_sq",
            "ly_baseline_part",
            "ly_forecast_part",
            "ly_up_sq",
            "ly_down_sq",
        ]
    ].sum()
    a = pd.concat(
        [
            summed.rename(columns=lambda c: c.removesuffix("_part")),
            g[["bound_missing", "ly_bound_missing"]].any(),
            g["week_start"].min(),
            g["week_end"].max(),
            g["n_days"].max(),
            g.size().rename("n_series"),
            g["ly_available"].sum().rename("ly_n_series"),
        ],
        axis=1,
    ).reset_index()
    a = a.loc[a["n_series"] >= 2].copy()
    a["hi"], a["lo"] = _rss_interval(a["forecast"], a["up_sq"], a["down_sq"], a["bound_missing"])
    a["ly_hi"], a["ly_lo"] = _rss_interval(
        a["ly_forecast"], a["ly_up_sq"], a["ly_down_sq"], a["ly_bound_missing"]
    )
    a["ly_available"] = a["ly_n_series"] > 0
    for col in ("ly_baseline", "ly_forecast", "ly_lo", "ly_hi"):
        a[col] = a[col].where(a["ly_available"])
    a["scope"] = SCOPE_STORE_CATEGORY
    a["subject_id"] = a["store_id"].astype(str) + "/" + a["cat_id"].astype(str)
    return a.drop(
        columns=[
            "bound_missing",
            "ly_bound_missing",
            "up_sq",
            "down_sq",
            "ly_up_sq",
            "ly_down_sq",
        ]
    )


def _rss_interval(
    forecast: pd.Series, up_sq: pd.Series, down_sq: pd.Series, missing: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """(hi, lo) of a total of independent series from their summed squared half-widths."""
    hi = (forecast + np.sqrt(up_sq)).where(~missing)
    lo = (forecast - np.sqrt(down_sq)).clip(lower=0.0).where(~missing)
    return hi, lo


def _drop(forecast: pd.Series, baseline: pd.Series) -> pd.Series:
    """1 - forecast/baseline; a baseline of zero (or less) means there is nothing to drop from."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 1.0 - forecast / baseline
    return ratio.where(baseline > 0, -np.inf).where(baseline.notna())


def subject_stats(
    forecasts: pd.DataFrame, history: pd.DataFrame, *, interval_level: int | None
) -> pd.DataFrame:
    """Every number the rule (and the email) looks at, per subject and forecast origin.

    Public so the email shows exactly the numbers the rule used (both baselines, the last-year
    drop), without a second implementation of the windows. ``interval_level=None`` skips the
    bounds (``lo``/``hi`` are NaN) for callers that only need baselines.
    """
    _require(forecasts, _FORECAST_COLUMNS, "forecasts")
    _require(history, _HISTORY_COLUMNS, "history")
    if forecasts.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in STATS_COLUMNS})
    f = _prepare_forecasts(forecasts, interval_level)
    h = _prepare_history(history)
    series = _series_stats(f, h)
    if series[["store_id", "cat_id", "forecast_origin"]].duplicated().any():
        stats = pd.concat([series, _aggregate_stats(series)], ignore_index=True)
    else:  # no store x category with two series in this batch: no aggregate subject
        stats = series
    stats["drop_pct"] = _drop(stats["forecast"], stats["baseline"])
    stats["ly_drop_pct"] = _drop(stats["ly_forecast"], stats["ly_baseline"]).where(
        stats["ly_available"]
    )
    stats["ly_available"] = stats["ly_available"].astype(bool)
    stats["n_series"] = stats["n_series"].astype("int64")
    stats["ly_n_series"] = stats["ly_n_series"].astype("int64")
    stats["n_days"] = stats["n_days"].astype("int64")
    return (
        stats[list(STATS_COLUMNS)]
        .sort_values(["scope", "subject_id", "forecast_origin"], ignore_index=True)
        .reset_index(drop=True)
    )


def _chosen_baseline(stats: pd.DataFrame) -> pd.DataFrame:
    """The numbers the rule compares, per row of :func:`subject_stats`: the chosen baseline
    (last year when available, else trailing), its kind, its drop, and the forecast and interval
    comparable to it (for an aggregate against last year: those of the series that existed then).
    """
    use_ly = stats["ly_available"].astype(bool)
    return pd.DataFrame(
        {
            "baseline": stats["ly_baseline"].where(use_ly, stats["baseline"]).astype("float64"),
            "baseline_kind": np.where(use_ly, BASELINE_LAST_YEAR, BASELINE_TRAILING),
            "forecast": stats["ly_forecast"].where(use_ly, stats["forecast"]).astype("float64"),
            "lo": stats["ly_lo"].where(use_ly, stats["lo"]).astype("float64"),
            "hi": stats["ly_hi"].where(use_ly, stats["hi"]).astype("float64"),
            "drop_pct": stats["ly_drop_pct"].where(use_ly, stats["drop_pct"]).astype("float64"),
        },
        index=stats.index,
    )


def _alerting(chosen: pd.DataFrame, settings: AlertSettings) -> pd.Series:
    """Only the chosen baseline counts (see the module docstring for why each condition)."""
    base = chosen["baseline"]
    fires = (
        (base > 0)
        & (base >= settings.min_baseline_units)
        & (chosen["drop_pct"] > settings.drop_threshold)
        & (chosen["hi"] < base)
    )
    return fires.fillna(False).astype(bool)


def _suppressed(
    candidates: pd.DataFrame,
    recent_alerts: pd.DataFrame | None,
    *,
    cooldown_days: int,
    now: pd.Timestamp,
) -> pd.Series:
    """Existing keys (redelivered event) and subjects still in their cooldown stay silent."""
    if recent_alerts is None or recent_alerts.empty:
        return pd.Series(False, index=candidates.index)
    _require(recent_alerts, _RECENT_COLUMNS, "recent_alerts")
    seen = candidates["alert_key"].isin(set(recent_alerts["alert_key"].astype(str)))
    if cooldown_days <= 0:
        return seen
    created = _as_utc(recent_alerts["created_at"])
    # Anything created after now - cooldown counts, including "future" rows from a skewed clock.
    cooling = recent_alerts.loc[created >= now - pd.Timedelta(days=cooldown_days)]
    subject_rule = (
        cooling["scope"].astype(str)
        + ":"
        + cooling["subject_id"].astype(str)
        + "|"
        + cooling["rule"].astype(str)
    )
    cand = candidates["scope"] + ":" + candidates["subject_id"] + "|" + candidates["rule"]
    return seen | cand.isin(set(subject_rule))


def evaluate_alerts(
    forecasts: pd.DataFrame,
    history: pd.DataFrame,
    *,
    settings: AlertSettings,
    recent_alerts: pd.DataFrame | Callable[[], pd.DataFrame] | None,
    model_version: str,
    event_id: str,
    now: datetime,
) -> pd.DataFrame:
    """New alerts for this batch, as rows of the ``alerts`` table (status ``pending``).

    ``recent_alerts`` is what the alerts table holds for the cooldown window (any row with the
    same key, or the same subject and rule created within ``cooldown_days`` of ``now``,
    suppresses a candidate); a callable is only called when some subject is a candidate, which
    spares the event function a warehouse query on the events that raise nothing (most). Within one batch a subject gets at most one alert per rule while a
    cooldown applies: the latest forecast week wins. The output is sorted by scope, subject and
    week, so the same inputs give the same frame.
    """
    if forecasts.empty or _cannot_fire(forecasts, history, settings):
        return empty_alerts()
    return _evaluate_full(
        forecasts,
        history,
        settings=settings,
        recent_alerts=recent_alerts,
        model_version=model_version,
        event_id=event_id,
        now=now,
    )


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Days since the epoch of naive dates (``date`` objects, ISO strings, naive timestamps)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        raise TypeError("time-zone-aware dates")
    return np.asarray(values.to_numpy(), dtype="datetime64[D]").astype(np.int64)


def _codes(*columns: np.ndarray) -> np.ndarray:
    """One int64 code per distinct combination of the columns (each column factorized)."""
    combined = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column)
        combined = combined * (len(uniques) + 1) + codes
    return combined


def _n_distinct(values: np.ndarray) -> int:
    return len(np.unique(values))


def _cannot_fire(forecasts: pd.DataFrame, history: pd.DataFrame, settings: AlertSettings) -> bool:
    """True only when no subject of the batch can possibly fire: a screen on plain arrays.

    Why: the full rule is a dozen pandas steps costing ~9 ms even for a one-series event, most of
    the event path's budget, and nearly every event raises nothing. The screen bounds each
    series' chosen baseline from above by the larger of its trailing sum (exact) and the sum of its
    history over the last-year date range (at least the last-year sum, units being non-negative);
    a subject can fire only if that bound clears the noise floor, the drop threshold and the
    week's upper interval bound. Whatever it does not cover answers False and the full rule
    decides: a possible aggregate (two series in one store x category), several origins for one
    series, negative units, duplicate rows (the full rule refuses them), a missing column,
    unparseable values. So it may send a quiet batch on to the full rule, but never silences an
    alert (property-tested against the full rule).
    """
    threshold, floor = settings.drop_threshold, settings.min_baseline_units
    if not 0.0 <= threshold <= 1.0:
        return False
    try:
        _require(forecasts, _FORECAST_COLUMNS, "forecasts")
        _require(history, _HISTORY_COLUMNS, "history")
        sid = forecasts["series_id"].to_numpy(dtype=object)
        codes, uniques = pd.factorize(
            np.concatenate([sid, history["series_id"].to_numpy(dtype=object)])
        )
        f_code, h_code = codes[: len(sid)], codes[len(sid) :]
        origin = _day_numbers(forecasts["forecast_origin"])
        target = _day_numbers(forecasts["target_date"])
        horizon = forecasts["horizon_day"].to_numpy(dtype=np.int64)
        yhat = np.nan_to_num(forecasts["yhat"].to_numpy(dtype=np.float64), nan=0.0)
        hi_col = f"hi_{settings.interval_level}"
        if settings.interval_level is None or hi_col not in forecasts.columns:
            return False
        hi = forecasts[hi_col].to_numpy(dtype=np.float64)
        h_day = _day_numbers(history["date"])
        units = np.nan_to_num(history["units"].to_numpy(dtype=np.float64), nan=0.0)
        subject = _codes(
            forecasts["store_id"].to_numpy(dtype=object),
            forecasts["cat_id"].to_numpy(dtype=object),
            origin,
        )
    except (TypeError, ValueError, KeyError, OverflowError):
        return False
    n_series = len(uniques)
    # Each series in one (store, category, origin) and no two series sharing one: no aggregate.
    if not _n_distinct(_codes(f_code, subject)) == _n_distinct(f_code) == _n_distinct(subject):
        return False
    if _n_distinct(_codes(f_code, horizon)) != len(horizon):
        return False  # duplicate forecast rows: the full rule says which
    if len(h_day) and ((units < 0).any() or _n_distinct(_codes(h_code, h_day)) != len(h_day)):
        return False

    n_days = np.bincount(f_code, minlength=n_series)
    forecast = np.bincount(f_code, weights=yhat, minlength=n_series)
    # A day without an upper bound makes the week's unknown: +inf, so that series cannot fire.
    hi_week = np.bincount(f_code, weights=np.nan_to_num(hi, nan=np.inf), minlength=n_series)
    s_origin = np.zeros(n_series, dtype=np.int64)
    s_origin[f_code] = origin
    ly_first = np.full(n_series, np.iinfo(np.int64).max)
    ly_last = np.full(n_series, np.iinfo(np.int64).min)
    np.minimum.at(ly_first, f_code, target - LAST_YEAR_OFFSET_DAYS)
    np.maximum.at(ly_last, f_code, target - LAST_YEAR_OFFSET_DAYS)
    row_origin = s_origin[h_code]
    in_trailing = (h_day > row_origin - n_days[h_code]) & (h_day <= row_origin)
    in_last_year = (h_day >= ly_first[h_code]) & (h_day <= ly_last[h_code])
    trailing = np.bincount(h_code, weights=units * in_trailing, minlength=n_series)
    last_year = np.bincount(h_code, weights=units * in_last_year, minlength=n_series)
    forecasted = n_days > 0
    bound = np.maximum(trailing, last_year)[forecasted]
    forecast, hi_week = forecast[forecasted], hi_week[forecasted]
    slack = 1e-9 * (1.0 + np.abs(bound))  # the full rule sums in another order
    may_fire = (
        (bound > 0)
        & (bound + slack >= floor)
        & (forecast < (1.0 - threshold) * bound + slack)
        & (hi_week < bound + slack)
    )
    return not bool(may_fire.any())


def _evaluate_full(
    forecasts: pd.DataFrame,
    history: pd.DataFrame,
    *,
    settings: AlertSettings,
    recent_alerts: pd.DataFrame | Callable[[], pd.DataFrame] | None,
    model_version: str,
    event_id: str,
    now: datetime,
) -> pd.DataFrame:
    """The rule itself (:func:`evaluate_alerts` without the screen)."""
    stats = subject_stats(forecasts, history, interval_level=settings.interval_level)
    chosen = _chosen_baseline(stats)
    # The row carries the numbers of the chosen baseline only; subject_stats keeps both baselines
    # for the email.
    subject = stats[["scope", "subject_id", "store_id", "cat_id", "week_start", "forecast_origin"]]
    cand = subject.join(chosen).loc[_alerting(chosen, settings)].copy()
    if cand.empty:
        return empty_alerts()
    cand["rule"] = RULE_FORECAST_DROP
    cand["week_start"] = [ts.date() for ts in cand["week_start"]]
    cand["forecast_origin"] = [ts.date() for ts in cand["forecast_origin"]]
    cand["alert_key"] = [
        alert_key(scope, subject, week, rule)
        for scope, subject, week, rule in zip(
            cand["scope"], cand["subject_id"], cand["week_start"], cand["rule"], strict=True
        )
    ]
    now_ts = _utc_now(now)
    if callable(recent_alerts):
        recent_alerts = recent_alerts()
    cand = cand.loc[
        ~_suppressed(cand, recent_alerts, cooldown_days=settings.cooldown_days, now=now_ts)
    ]
    if settings.cooldown_days > 0:
        cand = cand.sort_values(["scope", "subject_id", "rule", "week_start"]).drop_duplicates(
            ["scope", "subject_id", "rule"], keep="last"
        )
    if cand.empty:
        return empty_alerts()

    pairs = set(zip(cand["store_id"], cand["cat_id"], strict=True))
    recipients = {
        (store, cat): ",".join(settings.recipients.for_subject(store, cat)) for store, cat in pairs
    }
    out = pd.DataFrame(
        {
            "alert_key": cand["alert_key"],
            "scope": cand["scope"],
            "subject_id": cand["subject_id"],
            "store_id": cand["store_id"],
            "cat_id": cand["cat_id"],
            "rule": cand["rule"],
            "week_start": cand["week_start"],
            "forecast_origin": cand["forecast_origin"],
            "baseline": cand["baseline"].astype("float64"),
            "baseline_kind": cand["baseline_kind"],
            "forecast": cand["forecast"].astype("float64"),
            "lo": cand["lo"].astype("float64"),
            "hi": cand["hi"].astype("float64"),
            "drop_pct": cand["drop_pct"].astype("float64"),
            "model_version": model_version,
            "recipients": [
                recipients[(s, c)] for s, c in zip(cand["store_id"], cand["cat_id"], strict=True)
            ],
            "event_id": event_id,
            "status": "pending",
            "message_id": None,
            "created_at": now_ts,
            "sent_at": None,
        }
    )
    out["sent_at"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    out["message_id"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    return out[ALERTS.column_names].sort_values(
        ["scope", "subject_id", "week_start"], ignore_index=True
    )


__all__ = [
    "BASELINE_LAST_YEAR",
    "BASELINE_TRAILING",
    "LAST_YEAR_OFFSET_DAYS",
    "RULE_FORECAST_DROP",
    "SCOPE_SERIES",
    "SCOPE_STORE_CATEGORY",
    "STATS_COLUMNS",
    "alert_key",
    "empty_alerts",
    "evaluate_alerts",
    "subject_stats",
]
