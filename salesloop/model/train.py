"""Train a LightGBM version from a training frame and register it as the challenger.

The holdout numbers come from the conformal calibration run (rolling origins over the last
``calibration_windows * horizon`` periods, the model frozen at the first origin): honest
out-of-sample forecasts at no extra training cost. They are stored in the version's metadata next
to seasonal naive on the same rows; the full champion/challenger backtest is the pipeline's job.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import structlog

from salesloop.config import Settings
from salesloop.model.frame import FRAME_COLUMNS, to_frame
from salesloop.model.lgbm import LightGBMConfig, LightGBMForecaster
from salesloop.model.metrics import backtest_metrics
from salesloop.registry import LocalRegistry

log = structlog.get_logger("train")


def as_model_frame(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Accept either the model's long frame or SALES-shaped warehouse rows."""
    if set(FRAME_COLUMNS) <= set(frame.columns):
        return frame
    return to_frame(frame, freq=freq)


def train_and_register(
    frame: pd.DataFrame,
    registry: LocalRegistry,
    settings: Settings,
    *,
    version_note: str = "",
    config: LightGBMConfig | None = None,
    actor: str | None = None,
) -> str:
    """Fit, measure, register; alias ``challenger`` (and ``champion`` if there is none)."""
    fc = settings.forecast
    data = as_model_frame(frame, fc.freq)
    if data.empty:
        raise ValueError("empty training frame")
    cfg = config or LightGBMConfig.for_frequency(
        fc.freq, fc.season_length, fc.horizon, fc.interval_levels
    )
    model = LightGBMForecaster(cfg).fit(data)
    metrics: dict[str, Any] = {}
    if model.backtest_ is not None and len(model.backtest_):
        metrics = backtest_metrics(
            data, model.backtest_, season_length=cfg.season_length, freq=model.metadata.freq
        )
    model.metadata = model.metadata.model_copy(
        update={"metrics": metrics, "note": version_note or None}
    )
    version = registry.register(model, reason=version_note or "trained", actor=actor)
    registry.set_alias("challenger", version, reason=version_note or "newly trained", actor=actor)
    if registry.alias("champion") is None:
        registry.set_alias("champion", version, reason="first registered model", actor=actor)
    log.info(
        "trained",
        version=version,
        n_series=model.metadata.n_series,
        train_end=str(model.metadata.train_end),
        holdout=metrics.get("holdout_last_horizon"),
    )
    return version
