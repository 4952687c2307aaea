"""The recursive horizon of a fitted mlforecast LightGBM, recomputed with numpy for small batches.

Why: ``MLForecast.predict`` costs ~60 ms for a single series, whatever its length — pandas
bookkeeping per step and LightGBM's pandas input path (re-validating every categorical column on
every one of the 7 steps). The event function forecasts one to a few series per insert, so that
fixed cost *is* its latency. With every series right-aligned in one ``(series, periods + horizon)``
matrix, each feature of step ``j`` is a slice of that matrix, and the booster gets a plain float
matrix: the same forecast in well under a millisecond of model time.

The plan is built from the fitted object itself (its feature order, transforms, date features,
static columns and the booster's categorical levels), never from our configuration, and only when
every feature is one this module knows exactly how mlforecast computes; anything else (target
transforms, other lag transforms, callable date features, several models) returns ``None`` and
the caller keeps using mlforecast. ``tests/model/test_recursive.py`` holds the two paths to the
same numbers on generated data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL, group_bounds

# feature(Y, t) -> column for forecast step at matrix position t (Y: series x positions).
Feature = Callable[[np.ndarray, int], np.ndarray]

_DATE_FEATURES = ("dayofweek", "month", "day", "year", "dayofyear", "quarter")


def _window(y: np.ndarray, first: int, last: int) -> np.ndarray | None:
    """Columns first..last (inclusive) of ``y``, or None when the window starts before the data."""
    if first < 0:
        return None
    return y[:, first : last + 1]


def _lag(k: int) -> Feature:
    def f(y: np.ndarray, t: int) -> np.ndarray:
        return y[:, t - k] if t - k >= 0 else np.full(len(y), np.nan)

    return f


def _rolling_mean(k: int, w: int) -> Feature:
    def f(y: np.ndarray, t: int) -> np.ndarray:
        win = _window(y, t - k - w + 1, t - k)
        return np.full(len(y), np.nan) if win is None else win.sum(axis=1) / w

    return f


def _rolling_std(k: int, w: int) -> Feature:
    def f(y: np.ndarray, t: int) -> np.ndarray:
        win = _window(y, t - k - w + 1, t - k)
        if win is None:
            return np.full(len(y), np.nan)
        return np.asarray(win.std(axis=1, ddof=1))

    return f


def _seasonal_rolling_mean(k: int, season: int, w: int) -> Feature:
    def f(y: np.ndarray, t: int) -> np.ndarray:
        cols = [t - k - season * i for i in range(w)]
        if min(cols) < 0:
            return np.full(len(y), np.nan)
        return y[:, cols].sum(axis=1) / w

    return f


def _transform_feature(tfm: Any) -> Feature | None:
    """The numpy twin of one mlforecast lag transform, or None for anything not known exactly."""
    state = vars(tfm)
    if any(state.get(k) for k in ("global_", "groupby", "partition_by", "time_agg")):
        return None
    core = getattr(tfm, "_core_tfm", None)
    name = type(core).__name__
    lag = getattr(core, "lag", None)
    if core is None or lag is None:
        return None
    if name == "Lag":
        return _lag(int(lag))
    window = int(getattr(core, "window_size", 0))
    # Only full windows: a partial one (min_samples < window) or NaN-skipping is not replicated.
    if getattr(core, "min_samples", None) != window or getattr(core, "skipna", True):
        return None
    if name == "RollingMean":
        return _rolling_mean(int(lag), window)
    if name == "RollingStd":
        return _rolling_std(int(lag), window)
    if name == "SeasonalRollingMean":
        return _seasonal_rolling_mean(int(lag), int(core.season_length), window)
    return None


@dataclass(frozen=True)
class RecursivePlan:
    """Everything needed to rebuild each step's feature matrix without pandas."""

    booster: Any
    features: tuple[str, ...]
    lag_features: dict[str, Feature]
    date_features: tuple[str, ...]
    static_levels: dict[str, pd.Index]  # categorical static column → the booster's levels
    static_numeric: tuple[str, ...]
    dynamic: tuple[str, ...]
    keep_last_n: int | None
    threads: int = 1

    def predict(self, history: pd.DataFrame, future: pd.DataFrame, horizon: int) -> np.ndarray:
        """``(series, horizon)`` point forecasts, series in ``history``'s (sorted) order.

        ``history``: the prepared long frame, series-major and time-ascending; ``future``: its
        ``horizon`` rows per series in the same order, with every dynamic column.
        """
        ids = history[ID_COL].to_numpy()
        starts, ends = group_bounds(ids)
        n = len(starts)
        lengths = ends - starts
        width = int(lengths.max()) if self.keep_last_n is None else int(self.keep_last_n)
        take = np.minimum(lengths, width)
        y = np.full((n, width + horizon), np.nan)
        offs = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
        rows = np.repeat(np.arange(n), take)
        y[rows, np.repeat(width - take, take) + offs] = history[TARGET_COL].to_numpy(dtype=float)[
            np.repeat(ends - take, take) + offs
        ]

        columns: dict[str, np.ndarray] = {}
        for col, levels in self.static_levels.items():
            codes = levels.get_indexer(history[col].to_numpy()[starts]).astype(float)
            codes[codes < 0] = np.nan
            columns[col] = codes
        for col in self.static_numeric:
            columns[col] = history[col].to_numpy(dtype=float)[starts]
        dyn = {c: future[c].to_numpy(dtype=float).reshape(n, horizon) for c in self.dynamic}
        dates = pd.DatetimeIndex(future[TIME_COL].to_numpy())
        cal = {
            f: np.asarray(getattr(dates, f), dtype=float).reshape(n, horizon)
            for f in self.date_features
        }

        x = np.empty((n, len(self.features)))
        out = np.empty((n, horizon))
        for j in range(horizon):
            t = width + j
            for i, name in enumerate(self.features):
                if name in self.lag_features:
                    x[:, i] = self.lag_features[name](y, t)
                elif name in columns:
                    x[:, i] = columns[name]
                elif name in dyn:
                    x[:, i] = dyn[name][:, j]
                else:
                    x[:, i] = cal[name][:, j]
            step = np.asarray(self.booster.predict(x, num_threads=self.threads), dtype=float)
            out[:, j] = step
            y[:, t] = step
        return out


def plan_for(
    mlf: Any,
    static_features: Sequence[str],
    dynamic: Sequence[str],
    numeric_static: Sequence[str] = (),
) -> RecursivePlan | None:
    """A plan for a fitted ``MLForecast`` with one LightGBM model, or None when not exact.

    ``numeric_static``: per-series float columns (read from the history's first row per series).
    """
    try:
        ts = mlf.ts
        models = mlf.models_
    except AttributeError:
        return None
    if len(models) != 1 or getattr(ts, "target_transforms", None):
        return None
    if str(getattr(ts, "freq", "")) not in ("D", "<Day>"):
        return None
    model = next(iter(models.values()))
    booster = getattr(model, "booster_", None)
    if booster is None or type(model).__name__ != "LGBMRegressor":
        return None
    features = tuple(ts.features_order_)
    if tuple(booster.feature_name()) != features:
        return None
    lag_features: dict[str, Feature] = {}
    for name, tfm in ts.transforms.items():
        feature = _transform_feature(tfm)
        if feature is None:
            return None
        lag_features[name] = feature
    date_features = tuple(ts.date_features)
    if not all(isinstance(f, str) and f in _DATE_FEATURES for f in date_features):
        return None
    statics = tuple(c for c in features if c in static_features and c not in numeric_static)
    numeric = tuple(c for c in features if c in numeric_static)
    levels = list(booster.pandas_categorical or [])
    if len(levels) != len(statics):
        return None  # the booster's categorical columns are not exactly the static ids
    known = set(lag_features) | set(date_features) | set(statics) | set(numeric) | set(dynamic)
    if set(features) - known:
        return None
    return RecursivePlan(
        booster=booster,
        features=features,
        lag_features=lag_features,
        date_features=date_features,
        static_levels={c: pd.Index(lv) for c, lv in zip(statics, levels, strict=True)},
        static_numeric=numeric,
        dynamic=tuple(c for c in dynamic if c in features),
        keep_last_n=getattr(ts, "keep_last_n", None),
        threads=max(int(model.get_params().get("n_jobs") or 1), 1),
    )
