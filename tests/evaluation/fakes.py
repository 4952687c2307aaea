"""Tiny models honouring the ForecastModel contract, for fast and deterministic tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from salesloop.model.base import ModelMetadata, finalize_forecast, register_kind


@register_kind("test_mean")
class MeanModel:
    """Forecast: ``factor`` x the mean of the last ``window`` periods; ±``width`` x mean intervals.

    ``factor`` far from 1 makes a deliberately bad model; ``drop`` removes rows and ``nan`` puts
    NaNs in its output to break the contract.
    """

    kind: ClassVar[str] = "test_mean"

    def __init__(
        self,
        factor: float = 1.0,
        window: int = 7,
        width: float = 1.0,
        drop: int = 0,
        nan: bool = False,
        fail: bool = False,
    ) -> None:
        self.params = {
            "factor": factor,
            "window": window,
            "width": width,
            "drop": drop,
            "nan": nan,
            "fail": fail,
        }
        self.metadata = ModelMetadata(model_kind=self.kind, min_history=window, params=self.params)
        self.fits = 0

    def fit(self, train: pd.DataFrame) -> Self:
        self.fits += 1
        self.metadata = self.metadata.model_copy(
            update={"train_end": pd.Timestamp(train["ds"].max()).date()}
        )
        return self

    def predict(
        self,
        history: pd.DataFrame,
        horizon: int,
        levels: Sequence[int] = (80, 95),
        future: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        p = self.params
        if p["fail"]:
            raise RuntimeError("model exploded")
        last = history.groupby("unique_id", sort=True).tail(int(p["window"]))
        mean = last.groupby("unique_id", sort=True)["y"].mean()
        end = history.groupby("unique_id", sort=True)["ds"].max()
        ids = np.repeat(mean.index.to_numpy(), horizon)
        ds = np.concatenate(
            [pd.date_range(e + pd.Timedelta(days=1), periods=horizon).values for e in end]
        )
        yhat = np.repeat(mean.to_numpy() * p["factor"], horizon)
        spread = np.repeat(mean.to_numpy() * p["width"], horizon)
        bounds = {
            int(lv): (yhat - spread * lv / 100.0, yhat + spread * lv / 100.0) for lv in levels
        }
        out = finalize_forecast(ids, ds, yhat, bounds)
        if p["nan"]:
            out.loc[0, "yhat"] = np.nan
        if p["drop"]:
            out = out.iloc[int(p["drop"]) :]
        return out

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.metadata.write(directory)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = ModelMetadata.read(Path(directory))
        model = cls(**meta.params)
        model.metadata = meta
        return model

    def describe(self) -> dict[str, Any]:
        return dict(self.params)
