"""Conformal prediction intervals that work for series the calibration never saw.

The calibration run is mlforecast's: ``cross_validation(n_windows, h=horizon, refit=False)``, the
same rolling-origin procedure ``mlforecast.utils.PredictionIntervals(n_windows, h)`` runs inside
``fit``. What differs is how the residuals are used at prediction time. mlforecast keys its scores
by series id (the server receives arbitrary batches of series, possibly new ones) and its transfer
modes either re-run cross-validation on every request (far too slow for serving and needing long
histories) or pool unscaled errors across series (a 0.1-units/day item would get the interval of a
10-units/day one), or rescale by the MAD of first differences, which is 0 for intermittent series.

So: *Mondrian* split conformal. Calibration residuals ``y - ŷ`` are grouped by the series' recent
level (mean of the last ``level_window`` periods at the forecast origin) into quantile bins; the
interval for a new series uses the bin of its own recent level and the horizon step, with the
finite-sample conformal quantile on each side (``alpha/2`` below, ``1 - alpha/2`` above). Coverage is
nominal within each bin under exchangeability, intervals are asymmetric as count data needs, and
any level can be served because the sorted residuals, not precomputed quantiles, are stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MondrianConformal:
    """Sorted signed residuals per (level bin, horizon step)."""

    edges: np.ndarray  # interior bin edges on the recent level, ascending
    residuals: list[np.ndarray]  # per bin: (n_bin, horizon), each column sorted ascending
    horizon: int
    _cache: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @classmethod
    def fit(
        cls,
        levels: np.ndarray,
        residuals: np.ndarray,
        *,
        min_per_bin: int = 150,
        max_bins: int = 8,
    ) -> MondrianConformal:
        """``levels``: (m,) recent level per calibration origin; ``residuals``: (m, horizon)."""
        levels = np.asarray(levels, dtype=float)
        residuals = np.asarray(residuals, dtype=float)
        if residuals.ndim != 2 or len(levels) != residuals.shape[0]:
            raise ValueError("residuals must be (n_origins, horizon) aligned with levels")
        if residuals.shape[0] < 2:
            raise ValueError("need at least two calibration origins for conformal intervals")
        n_bins = int(np.clip(residuals.shape[0] // max(min_per_bin, 1), 1, max_bins))
        qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        edges = np.unique(np.quantile(levels, qs)) if len(qs) else np.array([], dtype=float)
        bins = np.searchsorted(edges, levels, side="right")
        per_bin = [np.sort(residuals[bins == b], axis=0) for b in range(len(edges) + 1)]
        # A bin emptied by tied edges cannot happen with searchsorted on unique edges drawn from the
        # data, but guard anyway: an empty bin borrows the pooled residuals.
        pooled = np.sort(residuals, axis=0)
        per_bin = [r if len(r) else pooled for r in per_bin]
        return cls(edges=edges, residuals=per_bin, horizon=residuals.shape[1])

    def bins_of(self, levels: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, np.asarray(levels, dtype=float), side="right")

    def offsets(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(n_bins, horizon) lower and upper residual quantiles for one interval level."""
        cached = self._cache.get(level)
        if cached is not None:
            return cached
        alpha = 1.0 - level / 100.0
        lows, highs = [], []
        for res in self.residuals:
            n = res.shape[0]
            k_lo = math.floor((n + 1) * alpha / 2.0)
            k_hi = math.ceil((n + 1) * (1.0 - alpha / 2.0))
            # Too few residuals for the level: the extreme residual is the honest best (the
            # finite-sample guarantee no longer holds exactly; the calibration report says so).
            lows.append(res[min(max(k_lo, 1), n) - 1])
            highs.append(res[min(max(k_hi, 1), n) - 1])
        result = (np.vstack(lows), np.vstack(highs))
        self._cache[level] = result
        return result

    def intervals(
        self, yhat: np.ndarray, recent_level: np.ndarray, levels: Sequence[int]
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``yhat`` (n_series, h) and each series' recent level → {level: (lo, hi)} of (n, h)."""
        h = yhat.shape[1]
        if h > self.horizon:
            raise ValueError(f"intervals were calibrated for {self.horizon} steps, asked for {h}")
        bins = self.bins_of(recent_level)
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for level in levels:
            lo_off, hi_off = self.offsets(int(level))
            out[int(level)] = (yhat + lo_off[bins, :h], yhat + hi_off[bins, :h])
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "method": "mondrian_split_conformal",
            "bin_by": "recent_level",
            "bin_edges": [round(float(e), 6) for e in self.edges],
            "bin_sizes": [int(r.shape[0]) for r in self.residuals],
            "horizon": self.horizon,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state
