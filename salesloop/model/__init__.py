"""Forecasting models behind one contract (see :mod:`salesloop.model.base`)."""

from salesloop.model.base import (
    MODEL_KINDS,
    ForecastModel,
    ModelMetadata,
    finalize_forecast,
    load_model,
    register_kind,
)
from salesloop.model.frame import (
    EXOG_COLUMNS,
    FRAME_COLUMNS,
    ID_COL,
    STATIC_COLUMNS,
    TARGET_COL,
    TIME_COL,
    future_frame,
    to_frame,
)
from salesloop.model.lgbm import LightGBMConfig, LightGBMForecaster

__all__ = [
    "EXOG_COLUMNS",
    "FRAME_COLUMNS",
    "ID_COL",
    "MODEL_KINDS",
    "STATIC_COLUMNS",
    "TARGET_COL",
    "TIME_COL",
    "ForecastModel",
    "LightGBMConfig",
    "LightGBMForecaster",
    "ModelMetadata",
    "finalize_forecast",
    "future_frame",
    "load_model",
    "register_kind",
    "to_frame",
]
