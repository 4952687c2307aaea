"""Model recipes from configuration: a candidate spec plus the forecast settings → a fresh model.

One place maps ``training.candidates`` kinds to classes, so the pipeline, the benchmarks and the
champion refit build models the same way, and a weekly or monthly environment only changes
``forecast.freq / horizon / season_length``.
"""

from __future__ import annotations

from typing import Any

from salesloop.config import ForecastSettings
from salesloop.evaluation.backtest import ModelFactory
from salesloop.evaluation.baselines import AutoETSForecaster, SeasonalNaiveForecaster, StatsConfig
from salesloop.model.base import ForecastModel
from salesloop.model.lgbm import LightGBMConfig, LightGBMForecaster
from salesloop.training_settings import CandidateSpec


def build_model(
    kind: str,
    forecast: ForecastSettings,
    params: dict[str, Any] | None = None,
    *,
    horizon: int | None = None,
    stat_max_history: int | None = None,
    n_jobs: int = 1,
) -> ForecastModel:
    """A new, unfitted model of ``kind`` for this frequency, horizon and interval levels."""
    params = dict(params or {})
    h = horizon or forecast.horizon
    if kind == "lightgbm":
        cfg = LightGBMConfig.for_frequency(
            freq=forecast.freq,
            season_length=forecast.season_length,
            horizon=h,
            levels=forecast.interval_levels,
            **params,
        )
        return LightGBMForecaster(cfg)
    if kind in ("auto_ets", "seasonal_naive"):
        base: dict[str, Any] = {
            "freq": forecast.freq,
            "season_length": forecast.season_length,
            "horizon": h,
            "levels": forecast.interval_levels,
            "max_history": stat_max_history,
            "n_jobs": n_jobs,
        }
        cfg_s = StatsConfig(**{**base, **params})
        cls = AutoETSForecaster if kind == "auto_ets" else SeasonalNaiveForecaster
        return cls(cfg_s)
    raise ValueError(f"unknown model kind {kind!r}")


def factory_for(
    spec: CandidateSpec,
    forecast: ForecastSettings,
    *,
    horizon: int | None = None,
    stat_max_history: int | None = None,
    n_jobs: int = 1,
) -> ModelFactory:
    def make() -> ForecastModel:
        return build_model(
            spec.kind,
            forecast,
            spec.params,
            horizon=horizon,
            stat_max_history=stat_max_history,
            n_jobs=n_jobs,
        )

    return make


def recipe_of(model: ForecastModel) -> ModelFactory | None:
    """A factory that rebuilds ``model``'s configuration unfitted (None when the kind is unknown).

    Used to refit the champion at every backtest origin when its artifact has already seen the
    evaluation windows.
    """
    if isinstance(model, LightGBMForecaster):
        config = model.config
        return lambda: LightGBMForecaster(config)
    if isinstance(model, AutoETSForecaster | SeasonalNaiveForecaster):
        stats_config = model.config
        cls = type(model)
        return lambda: cls(stats_config)
    return None
