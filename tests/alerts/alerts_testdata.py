"""Small, explicit builders for alert-rule inputs, and a loop-based oracle of the rule.

The oracle is written the slow, obvious way (dicts and loops, no pandas group-bys) so the tests
compare two independent readings of the rule rather than the implementation with itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from salesloop.config import AlertSettings

ORIGIN = date(2016, 5, 22)
HORIZON = 7


def cfg_of(**overrides: object) -> AlertSettings:
    """AlertSettings through validation (mypy sees pydantic defaults only via model_validate)."""
    return AlertSettings.model_validate(overrides)


@dataclass(frozen=True)
class SeriesSpec:
    series_id: str
    store_id: str
    cat_id: str
    trailing: tuple[float, ...]  # 7 daily actuals ending at the origin
    forecast: tuple[float, ...]  # 7 daily yhat
    width: float = 0.1  # interval half-width, relative to yhat
    last_year: tuple[float, ...] | None = None  # 7 daily actuals on target - 364 (None: absent)
    history_days: int = 28  # how many days of actuals up to the origin
    hi_missing: bool = False


def frames(specs: list[SeriesSpec], origin: date = ORIGIN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(forecasts, history) for the given series."""
    f_rows: list[dict[str, object]] = []
    h_rows: list[dict[str, object]] = []
    for s in specs:
        for k in range(HORIZON):
            yhat = s.forecast[k]
            f_rows.append(
                {
                    "series_id": s.series_id,
                    "store_id": s.store_id,
                    "cat_id": s.cat_id,
                    "forecast_origin": origin,
                    "horizon_day": k + 1,
                    "target_date": origin + timedelta(days=k + 1),
                    "model_version": "v1",
                    "yhat": yhat,
                    "lo_80": max(0.0, yhat * (1 - s.width)),
                    "hi_80": None if s.hi_missing else yhat * (1 + s.width),
                    "lo_95": max(0.0, yhat * (1 - 2 * s.width)),
                    "hi_95": None if s.hi_missing else yhat * (1 + 2 * s.width),
                }
            )
        for back in range(s.history_days):
            day = origin - timedelta(days=back)
            units = s.trailing[HORIZON - 1 - back] if back < HORIZON else s.trailing[back % HORIZON]
            h_rows.append(_hist(s, day, units))
        if s.last_year is not None:
            for k in range(HORIZON):
                day = origin + timedelta(days=k + 1 - 364)
                h_rows.append(_hist(s, day, s.last_year[k]))
    forecasts = pd.DataFrame(f_rows)
    history = pd.DataFrame(h_rows).drop_duplicates(["series_id", "date"], keep="last")
    return forecasts, history.reset_index(drop=True)


def _hist(s: SeriesSpec, day: date, units: float) -> dict[str, object]:
    return {
        "series_id": s.series_id,
        "store_id": s.store_id,
        "cat_id": s.cat_id,
        "date": day,
        "units": units,
    }


@dataclass(frozen=True)
class _Totals:
    store: str
    cat: str
    fc: float
    hi: float
    base: float
    ly: float | None


def oracle(
    specs: list[SeriesSpec],
    *,
    threshold: float,
    min_baseline: float,
) -> set[str]:
    """Subjects (``scope:subject_id``) the rule should alert on, computed with plain loops.

    Each subject is compared with one baseline: last year's week when it exists (for an aggregate:
    the series that have it, with their own forecasts), else the trailing week. A series' 7-day
    upper bound is the sum of its daily ones; an aggregate's is its forecast plus the root of the
    summed squared half-widths of its series.
    """
    totals: dict[str, _Totals] = {}
    for s in specs:
        present = s.trailing[HORIZON - min(s.history_days, HORIZON) :]
        totals[s.series_id] = _Totals(
            store=s.store_id,
            cat=s.cat_id,
            fc=sum(s.forecast),
            hi=math.nan if s.hi_missing else sum(y * (1 + s.width) for y in s.forecast),
            base=sum(present),
            ly=sum(s.last_year) if s.last_year is not None else None,
        )
    out: set[str] = set()
    for sid, t in totals.items():
        base = t.base if t.ly is None else t.ly
        if _fires(t.fc, t.hi, base, threshold, min_baseline):
            out.add(f"series:{sid}")
    groups: dict[tuple[str, str], list[_Totals]] = {}
    for t in totals.values():
        groups.setdefault((t.store, t.cat), []).append(t)
    for (store, cat), members in groups.items():
        if len(members) < 2:
            continue
        with_ly = [m for m in members if m.ly is not None]
        compared = with_ly or members
        fc = sum(m.fc for m in compared)
        hi = fc + math.sqrt(sum((m.hi - m.fc) ** 2 for m in compared))
        base = (
            sum(m.ly for m in with_ly if m.ly is not None)
            if with_ly
            else sum(m.base for m in members)
        )
        if _fires(fc, hi, base, threshold, min_baseline):
            out.add(f"store_category:{store}/{cat}")
    return out


def _fires(fc: float, hi: float, base: float, threshold: float, min_baseline: float) -> bool:
    if not (base > 0 and base >= min_baseline):
        return False
    return not math.isnan(hi) and 1 - fc / base > threshold and hi < base
