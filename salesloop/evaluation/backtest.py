"""Rolling-origin cross-validation of every contender on exactly the same windows and series.

A gate is only as fair as its comparison: the challenger, the champion and the baselines are all
forecast from the same origins (``cutoffs``), over the same horizon, for the same series, with the
same known-future inputs, and :func:`run_backtest` refuses to score a model that returns anything
else (a missing row or a NaN is an error, not a silently smaller denominator).

Contenders come in two forms:

* a *recipe* (a factory returning an unfitted model): fitted on the data up to each origin
  (``refit=True``) or once at the first origin (``refit=False``); this is how candidates are judged;
* a fitted *artifact* (the deployed champion): it forecasts from the history up to each origin
  without refitting; this measures what keeping it would have given, and is only fair when it was
  trained before the first origin (see ``BacktestSettings.champion_mode``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from salesloop.evaluation.metrics import evaluate, scales_before
from salesloop.model.base import ForecastModel
from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL

ModelFactory = Callable[[], ForecastModel]
Role = Literal["candidate", "champion", "baseline"]
SEASONAL_NAIVE = "SeasonalNaive"
AUTO_ETS = "AutoETS"
CHAMPION = "champion"


class BacktestError(ValueError):
    """The data cannot support the configured backtest, or a model broke its contract."""


@dataclass(frozen=True)
class BacktestPlan:
    """Where the windows are and which series they score (shared by every contender)."""

    cutoffs: tuple[pd.Timestamp, ...]
    horizon: int
    season_length: int
    levels: tuple[int, ...]
    series: tuple[str, ...]
    periods: tuple[pd.Timestamp, ...]  # the frame's period grid (all distinct ds)

    def horizon_dates(self, cutoff: pd.Timestamp) -> list[pd.Timestamp]:
        i = self.periods.index(cutoff)
        return list(self.periods[i + 1 : i + 1 + self.horizon])

    def describe(self) -> dict[str, Any]:
        return {
            "windows": len(self.cutoffs),
            "horizon": self.horizon,
            "cutoffs": [str(c.date()) for c in self.cutoffs],
            "series": len(self.series),
            "season_length": self.season_length,
            "levels": list(self.levels),
        }


@dataclass
class Contender:
    name: str
    role: Role
    factory: ModelFactory | None = None
    model: ForecastModel | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if (self.factory is None) == (self.model is None):
            raise ValueError(f"contender {self.name!r} needs exactly one of factory or model")


@dataclass
class BacktestResult:
    plan: BacktestPlan
    forecasts: pd.DataFrame  # long: unique_id, ds, cutoff, model, y, yhat, lo_L, hi_L, cat_id
    metrics: dict[str, Any]
    roles: dict[str, Role]
    wall_s: dict[str, float]
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def overall(self) -> dict[str, dict[str, Any]]:
        return dict(self.metrics["overall"])

    def summary(self) -> dict[str, Any]:
        return {
            "plan": self.plan.describe(),
            "roles": self.roles,
            "wall_s": {k: round(v, 2) for k, v in self.wall_s.items()},
            "notes": self.notes,
            **self.metrics,
        }


def plan_backtest(
    frame: pd.DataFrame,
    *,
    windows: int,
    horizon: int,
    step: int,
    season_length: int,
    levels: Sequence[int],
    min_train_periods: int,
) -> BacktestPlan:
    """Origins on the frame's own period grid, the last one ``horizon`` periods before the end.

    Working on the grid of distinct dates instead of date arithmetic makes daily, weekly (any
    anchor) and monthly data the same code path.
    """
    periods = tuple(pd.DatetimeIndex(np.sort(frame[TIME_COL].unique())))
    last = len(periods) - 1 - horizon
    first = last - (windows - 1) * step
    if first < 1:
        raise BacktestError(
            f"{len(periods)} periods cannot hold {windows} windows of {horizon} (step {step})"
        )
    cutoffs = tuple(periods[first + k * step] for k in range(windows))
    first_cutoff = cutoffs[0]
    upto = frame[frame[TIME_COL] <= first_cutoff]
    counts = upto.groupby(ID_COL, observed=True).size()
    scales = scales_before(frame, first_cutoff, season_length)
    ok = scales[(scales["mae_scale"] > 0) & (scales["mse_scale"] > 0)].index
    eligible = counts[counts >= min_train_periods].index.intersection(ok)
    if len(eligible) == 0:
        raise BacktestError(
            f"no series has {min_train_periods} periods and a non-constant history before the "
            f"first origin {first_cutoff.date()}"
        )
    return BacktestPlan(
        cutoffs=cutoffs,
        horizon=horizon,
        season_length=season_length,
        levels=tuple(sorted(int(x) for x in levels)),
        series=tuple(sorted(str(s) for s in eligible)),
        periods=periods,
    )


def _history_tail(train: pd.DataFrame, model: ForecastModel) -> pd.DataFrame:
    """The last ``min_history`` periods per series: what the server would send."""
    need = int(getattr(model.metadata, "min_history", 0) or 0)
    if need <= 1:
        return train
    return train.groupby(ID_COL, sort=False, observed=True).tail(need)


def _expected_keys(plan: BacktestPlan, cutoff: pd.Timestamp) -> pd.DataFrame:
    dates = plan.horizon_dates(cutoff)
    return pd.DataFrame(
        {
            ID_COL: np.repeat(np.array(plan.series, dtype=object), len(dates)),
            TIME_COL: np.tile(np.array(dates, dtype="datetime64[ns]"), len(plan.series)),
        }
    )


def forecast_window(
    name: str,
    model: ForecastModel,
    frame: pd.DataFrame,
    plan: BacktestPlan,
    cutoff: pd.Timestamp,
    known_future: Sequence[str],
) -> pd.DataFrame:
    """One model's forecasts from one origin, checked against the plan."""
    train = frame[frame[TIME_COL] <= cutoff]
    keys = _expected_keys(plan, cutoff)
    future = None
    cols = [c for c in known_future if c in frame.columns]
    if cols:
        future = keys.merge(frame[[ID_COL, TIME_COL, *cols]], on=[ID_COL, TIME_COL], how="left")
    out = model.predict(_history_tail(train, model), plan.horizon, plan.levels, future)
    out = out.copy()
    out[ID_COL] = out[ID_COL].astype(str)
    out[TIME_COL] = pd.to_datetime(out[TIME_COL])
    got = keys.merge(out, on=[ID_COL, TIME_COL], how="left", indicator=True)
    missing = int((got["_merge"] != "both").sum())
    if missing:
        raise BacktestError(
            f"{name}: {missing} of {len(keys)} forecast rows missing at origin {cutoff.date()}"
        )
    value_cols = ["yhat", *[f"{s}_{lv}" for lv in plan.levels for s in ("lo", "hi")]]
    bad = int((~np.isfinite(got[value_cols].to_numpy(dtype=float))).any(axis=1).sum())
    if bad:
        raise BacktestError(f"{name}: {bad} non-finite forecasts at origin {cutoff.date()}")
    return got.drop(columns="_merge").assign(cutoff=cutoff, model=name)


def run_backtest(
    frame: pd.DataFrame,
    plan: BacktestPlan,
    contenders: Sequence[Contender],
    *,
    refit: bool = True,
    known_future: Sequence[str] = ("snap", "event"),
    progress: Callable[[str], None] | None = None,
    same_as: dict[str, str] | None = None,
) -> BacktestResult:
    """Forecast every window with every contender; score them all on the same rows.

    ``same_as`` maps a contender to another with an identical recipe (e.g. the AutoETS baseline
    and an ``auto_ets`` candidate): its forecasts are copied instead of computed twice.
    """
    same_as = dict(same_as or {})
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise BacktestError(f"contender names must be unique: {names}")
    data = frame[frame[ID_COL].astype(str).isin(plan.series)].copy()
    data[ID_COL] = data[ID_COL].astype(str)
    data = data.sort_values([ID_COL, TIME_COL], kind="stable").reset_index(drop=True)
    parts: list[pd.DataFrame] = []
    wall: dict[str, float] = {}
    for c in contenders:
        if c.name in same_as:
            continue
        t0 = time.perf_counter()
        fitted: ForecastModel | None = c.model
        for i, cutoff in enumerate(plan.cutoffs):
            if c.factory is not None and (refit or i == 0):
                if progress:
                    progress(f"{c.name}: fit up to {cutoff.date()}")
                fitted = c.factory().fit(data[data[TIME_COL] <= cutoff])
            assert fitted is not None
            parts.append(forecast_window(c.name, fitted, data, plan, cutoff, known_future))
        wall[c.name] = time.perf_counter() - t0
    for name, source in same_as.items():
        copies = [p.assign(model=name) for p in parts if p["model"].iloc[0] == source]
        if not copies:
            raise BacktestError(f"{name} is declared the same as {source!r}, which did not run")
        parts.extend(copies)
        wall[name] = wall[source]
    forecasts = pd.concat(parts, ignore_index=True)
    actual = data.set_index([ID_COL, TIME_COL])[TARGET_COL]
    forecasts[TARGET_COL] = actual.reindex(
        pd.MultiIndex.from_frame(forecasts[[ID_COL, TIME_COL]])
    ).to_numpy()
    if forecasts[TARGET_COL].isna().any():
        raise BacktestError("actuals missing for some forecast rows (frame not on a full grid?)")
    if "cat_id" in data.columns:
        cats = data.drop_duplicates(ID_COL).set_index(ID_COL)["cat_id"].astype(str)
        forecasts["cat_id"] = forecasts[ID_COL].map(cats)
    scales = scales_before(data, plan.cutoffs[0], plan.season_length)
    metrics = evaluate(forecasts, scales, plan.levels)
    return BacktestResult(
        plan=plan,
        forecasts=forecasts,
        metrics=metrics,
        roles={c.name: c.role for c in contenders},
        wall_s=wall,
        notes={c.name: c.note for c in contenders if c.note},
    )


def best_candidate(result: BacktestResult, metric: str = "rmsse") -> str:
    """The candidate with the lowest ``metric`` (ties: the first configured)."""
    best, best_value = "", math.inf
    for name, role in result.roles.items():
        value = result.overall[name][metric]
        if role == "candidate" and math.isfinite(value) and value < best_value:
            best, best_value = name, value
    if not best:
        raise BacktestError(f"no candidate has a finite {metric}")
    return best
