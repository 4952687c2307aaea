"""Forecasting models behind one contract (see :mod:`salesloop.model.base`)."""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from salesloop.model.lgbm import LightGBMConfig, LightGBMForecaster

# LightGBM (with sklearn and mlforecast) takes seconds to import; the function and the predictor
# codec need only the frame helpers above, so the forecaster loads on first use (PEP 562).
_LAZY = {"LightGBMConfig": "salesloop.model.lgbm", "LightGBMForecaster": "salesloop.model.lgbm"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
