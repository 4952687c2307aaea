"""SeasonalNaive and AutoETS (statsforecast) behind the ForecastModel contract.

The gate compares every challenger with these two on the same backtest, and the pipeline can pick
AutoETS as the model to deploy when it wins (on some real data the statistical model does), so
they must be first-class models: registrable, loadable by ``load_model`` and servable.

They are *local* models: each series' parameters are estimated from that series' own history, so
``fit`` only records what it saw and ``predict`` estimates from the history it is given. That keeps
``predict`` a pure function of (configuration, history), which is the contract the model server
relies on, and costs little because a series needs only ``max_history`` recent periods.

Series too short for the seasonal model fall back to statsforecast's ``Naive`` (last value), so a
product launched last week still gets a forecast instead of failing the whole batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from salesloop.model.base import ModelMetadata, finalize_forecast, library_versions, register_kind
from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL, pandas_freq, require_columns


class StatsConfig(BaseModel):
    """Everything a statistical baseline needs besides the data (stored in ``metadata.params``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    freq: str = "D"
    season_length: int = Field(7, ge=1)
    horizon: int = Field(7, ge=1)
    levels: tuple[int, ...] = (80, 95)
    max_history: int | None = Field(None, ge=2)
    n_jobs: int = Field(1, ge=1)
    # AutoETS only: statsforecast's model string (Z = choose by AICc).
    model: str = Field("ZZZ", pattern=r"^[AMZ][ANZ][AMNZ]$")


class _StatsForecaster:
    """Shared machinery; subclasses say which statsforecast model they run."""

    kind: ClassVar[str] = "_stats"
    column: ClassVar[str] = ""

    def __init__(self, config: StatsConfig | None = None, **overrides: Any) -> None:
        self.config = config or StatsConfig(**overrides)
        self.metadata = ModelMetadata(
            model_kind=self.kind,
            freq=self.config.freq,
            season_length=self.config.season_length,
            horizon=self.config.horizon,
            levels=list(self.config.levels),
            min_history=self.config.max_history or 2 * self.config.season_length,
            params=self.config.model_dump(mode="json"),
        )
        self._freq = pandas_freq(self.config.freq)

    def _models(self) -> list[Any]:
        raise NotImplementedError

    def fit(self, train: pd.DataFrame) -> Self:
        require_columns(train, [ID_COL, TIME_COL, TARGET_COL], "train")
        ds = pd.to_datetime(train[TIME_COL])
        if self._freq.startswith("W") and len(ds):
            self._freq = pandas_freq("W", ds.iloc[0])
        self.metadata = self.metadata.model_copy(
            update={
                "train_start": ds.min().date() if len(ds) else None,
                "train_end": ds.max().date() if len(ds) else None,
                "n_series": int(train[ID_COL].nunique()),
                "n_rows": len(train),
                "freq": self._freq,
                "library_versions": {**library_versions(), **_statsforecast_version()},
                "note": "local model: parameters are estimated per series from the history given to predict",
            }
        )
        return self

    def predict(
        self,
        history: pd.DataFrame,
        horizon: int | None = None,
        levels: Sequence[int] | None = None,
        future: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        from statsforecast import StatsForecast
        from statsforecast.models import Naive

        h = int(horizon or self.config.horizon)
        lv = sorted(int(x) for x in (levels if levels is not None else self.config.levels))
        require_columns(history, [ID_COL, TIME_COL, TARGET_COL], "history")
        if history.empty:
            raise ValueError("empty history")
        df = pd.DataFrame(
            {
                "unique_id": history[ID_COL].astype(str).to_numpy(),
                "ds": pd.to_datetime(history[TIME_COL]).to_numpy(),
                "y": pd.to_numeric(history[TARGET_COL], errors="coerce")
                .fillna(0.0)
                .to_numpy(float),
            }
        ).sort_values(["unique_id", "ds"], kind="stable")
        if self.config.max_history:
            df = df.groupby("unique_id", sort=False).tail(self.config.max_history)
        freq = self._freq
        if freq.startswith("W"):
            freq = pandas_freq("W", df["ds"].iloc[0])
        sf = StatsForecast(
            models=self._models(), freq=freq, n_jobs=self.config.n_jobs, fallback_model=Naive()
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = sf.forecast(df=df, h=h, level=lv)
        fc = fc.reset_index() if ID_COL not in fc.columns else fc
        col = self.column
        bounds = {
            level: (
                fc[f"{col}-lo-{level}"].to_numpy(dtype=float),
                fc[f"{col}-hi-{level}"].to_numpy(dtype=float),
            )
            for level in lv
        }
        yhat = np.nan_to_num(fc[col].to_numpy(dtype=float), nan=0.0)
        return finalize_forecast(fc[ID_COL].to_numpy(), fc[TIME_COL].to_numpy(), yhat, bounds)

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.metadata.write(directory)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = ModelMetadata.read(Path(directory))
        if meta.model_kind != cls.kind:
            raise ValueError(f"{directory}: model_kind {meta.model_kind!r} is not {cls.kind!r}")
        model = cls(StatsConfig.model_validate(meta.params))
        model.metadata = meta
        model._freq = meta.freq
        return model


@register_kind("seasonal_naive")
class SeasonalNaiveForecaster(_StatsForecaster):
    """The value one season ago; the benchmark every scaled metric is relative to."""

    kind: ClassVar[str] = "seasonal_naive"
    column: ClassVar[str] = "SeasonalNaive"

    def _models(self) -> list[Any]:
        from statsforecast.models import SeasonalNaive

        return [SeasonalNaive(season_length=self.config.season_length)]


@register_kind("auto_ets")
class AutoETSForecaster(_StatsForecaster):
    """Exponential smoothing with the ETS form chosen per series by AICc."""

    kind: ClassVar[str] = "auto_ets"
    column: ClassVar[str] = "AutoETS"

    def _models(self) -> list[Any]:
        from statsforecast.models import AutoETS

        # ETS seasonality is limited to 24 periods; weekly data with a yearly season falls back to
        # a non-seasonal ETS (its seasonal pattern is what the global model is for).
        season = self.config.season_length if self.config.season_length <= 24 else 1
        model = self.config.model if season > 1 else self.config.model[:-1] + "N"
        return [AutoETS(season_length=season, model=model)]


def _statsforecast_version() -> dict[str, str]:
    from importlib import metadata

    try:
        return {"statsforecast": metadata.version("statsforecast")}
    except metadata.PackageNotFoundError:  # pragma: no cover
        return {}
