from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesloop.evaluation.baselines import AutoETSForecaster, SeasonalNaiveForecaster, StatsConfig
from salesloop.model.base import ForecastModel, load_model


def _frame(n_days: int = 70, n_series: int = 3, freq: str = "D") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2021-01-04", periods=n_days, freq=freq)
    parts = []
    for i in range(n_series):
        weekly = np.tile([1, 2, 3, 4, 5, 8, 9], n_days // 7 + 1)[:n_days] * (i + 1)
        parts.append(
            pd.DataFrame(
                {"unique_id": f"s{i}", "ds": ds, "y": weekly + rng.poisson(1, n_days).astype(float)}
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_seasonal_naive_repeats_the_last_season() -> None:
    frame = _frame()
    model = SeasonalNaiveForecaster(StatsConfig(season_length=7, horizon=7)).fit(frame)
    out = model.predict(frame, 7, [80, 95])
    for uid, part in out.groupby("unique_id"):
        last_week = frame[frame["unique_id"] == uid]["y"].to_numpy()[-7:]
        np.testing.assert_allclose(part["yhat"].to_numpy(), last_week)
    assert list(out.columns) == ["unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert out["ds"].min() == frame["ds"].max() + pd.Timedelta(days=1)


@pytest.mark.parametrize("cls", [AutoETSForecaster, SeasonalNaiveForecaster])
def test_contract_intervals_and_artifact_roundtrip(cls: type, tmp_path: Path) -> None:
    frame = _frame()
    model = cls(StatsConfig(season_length=7, horizon=7, max_history=56)).fit(frame)
    assert isinstance(model, ForecastModel)
    out = model.predict(frame, 5, [80, 95])
    assert len(out) == 3 * 5
    values = out[["yhat", "lo_80", "hi_80", "lo_95", "hi_95"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (out["lo_95"] <= out["lo_80"]).all() and (out["lo_80"] <= out["yhat"]).all()
    assert (out["yhat"] <= out["hi_80"]).all() and (out["hi_80"] <= out["hi_95"]).all()
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert type(again) is cls
    assert again.metadata.train_end == frame["ds"].max().date()
    pd.testing.assert_frame_equal(again.predict(frame, 5, [80, 95]), out)


def test_short_and_constant_series_still_get_a_forecast() -> None:
    frame = pd.concat(
        [
            _frame(),
            pd.DataFrame(
                {
                    "unique_id": "new",
                    "ds": pd.date_range("2021-03-12", periods=3),
                    "y": [1.0, 2.0, 0.0],
                }
            ),
            pd.DataFrame(
                {"unique_id": "zero", "ds": pd.date_range("2021-01-04", periods=70), "y": 0.0}
            ),
        ],
        ignore_index=True,
    )
    out = AutoETSForecaster(StatsConfig(season_length=7)).fit(frame).predict(frame, 7, [80])
    assert set(out["unique_id"]) == {"s0", "s1", "s2", "new", "zero"}
    assert np.isfinite(out["yhat"]).all()
    assert (out[out["unique_id"] == "zero"]["yhat"] == 0).all()


def test_weekly_data_with_a_yearly_season() -> None:
    frame = _frame(n_days=160, freq="W-MON")
    model = AutoETSForecaster(StatsConfig(freq="W", season_length=52, horizon=4)).fit(frame)
    out = model.predict(frame, 4, [80])
    assert len(out) == 12
    assert (out["ds"].dt.dayofweek == 0).all()  # keeps the data's Monday anchor
    assert out["ds"].min() == frame["ds"].max() + pd.Timedelta(weeks=1)
