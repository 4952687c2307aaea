"""Oracles: forecasts from the generator's hidden state, the floor every model is measured against.

Why: "30% better than SeasonalNaive" means little until it is known how good a forecast the data
allows at all. On generated data that is knowable, because the generator's state is
(:class:`salesloop.data.generate.DemandTruth`). Both oracles follow the
:class:`~salesloop.model.base.ForecastModel` contract so the backtest scores them on exactly the
candidates' windows and rows, but they are diagnostics: never candidates, never registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import nbinom

from salesloop.data.generate import DemandTruth
from salesloop.model.base import ModelMetadata, finalize_forecast
from salesloop.model.frame import ID_COL, TIME_COL


class OracleModel:
    """Forecasts from the generator's hidden state (:class:`DemandTruth`): a floor, not a model.

    ``knows_future=True`` forecasts the exact expected demand, stock-outs of the horizon included.
    ``knows_future=False`` is the causal oracle: everything up to the origin plus the horizon's
    rates (prices, promotions, events, launches), with each day's expected demand weighted by its
    chance of being in stock. It is the best forecast in squared error that any model could make
    from the past, so no candidate can be expected to beat it. Intervals are quantiles of "out of
    stock (0) or negative-binomial demand" (the generator's noise). A diagnostic, never a
    candidate.
    """

    kind: ClassVar[str] = "oracle"

    def __init__(self, truth: DemandTruth, shape: float, *, knows_future: bool) -> None:
        self.truth = truth
        self.shape = shape
        self.knows_future = knows_future
        self.row = {sid: i for i, sid in enumerate(truth.series_id)}
        self.metadata = ModelMetadata(model_kind=self.kind, min_history=1)

    def fit(self, train: pd.DataFrame) -> Self:
        return self

    def _mean_and_chance(
        self, rows: NDArray[np.intp], origin: int, horizon: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        days = origin + np.arange(1, horizon + 1)
        expected = self.truth.expected[np.ix_(rows, days)]
        if self.knows_future:
            chance = (self.truth.spells_running[np.ix_(rows, days)] == 0).astype(float)
        else:
            chance = self.truth.in_stock_chance(origin, horizon)[rows]
        return expected, chance

    def predict(
        self,
        history: pd.DataFrame,
        horizon: int,
        levels: Sequence[int] = (80, 95),
        future: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        last = history.groupby(ID_COL, observed=True)[TIME_COL].max()
        unknown = [str(sid) for sid in last.index if str(sid) not in self.row]
        if unknown:
            raise ValueError(
                f"{len(unknown)} series not in the generated data, e.g. {unknown[0]!r}"
            )
        rows = np.array([self.row[str(sid)] for sid in last.index], dtype=np.intp)
        origins = (last.to_numpy() - np.datetime64(self.truth.start)) // np.timedelta64(1, "D")
        n_days = self.truth.expected.shape[1]
        if origins.min() < 0 or origins.max() + horizon >= n_days:
            raise ValueError(
                f"the horizon runs past the generated days ({self.truth.start} + {n_days})"
            )
        expected = np.empty((len(last), horizon))
        chance = np.empty((len(last), horizon))
        for origin in np.unique(origins):
            at = origins == origin
            expected[at], chance[at] = self._mean_and_chance(rows[at], int(origin), horizon)
        p = self.shape / (self.shape + np.maximum(expected, 1e-12))
        safe = np.maximum(chance, 1e-12)

        def quantile(a: float) -> NDArray[np.float64]:
            # P(Y <= y) = (1 - chance) + chance * NB(y): 0 while the stock-out mass covers a.
            inner = (a - (1.0 - chance)) / safe
            return np.where(inner <= 0, 0.0, nbinom.ppf(np.clip(inner, 0.0, 1.0), self.shape, p))

        bounds = {
            int(lv): (
                quantile((1 - lv / 100) / 2).reshape(-1),
                quantile(1 - (1 - lv / 100) / 2).reshape(-1),
            )
            for lv in levels
        }
        ids = np.repeat(last.index.astype(str).to_numpy(), horizon)
        ds = np.repeat(last.to_numpy(), horizon) + np.tile(
            np.arange(1, horizon + 1), len(last)
        ) * np.timedelta64(1, "D")
        return finalize_forecast(ids, ds, (expected * chance).reshape(-1), bounds)

    def save(self, directory: Path) -> Path:
        raise TypeError("an oracle reads the generator's hidden state: it is never registered")

    @classmethod
    def load(cls, directory: Path) -> Self:
        raise TypeError("an oracle reads the generator's hidden state: it is never registered")
