from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesloop.model import (
    ForecastModel,
    LightGBMForecaster,
    ModelMetadata,
    load_model,
    to_frame,
)
from salesloop.model.metrics import backtest_metrics, interval_coverage
from tests.model.synthetic import fitted_model, sales_frame, small_config, synth_sales

pytestmark = pytest.mark.filterwarnings("ignore:Found null values in:UserWarning")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return to_frame(sales_frame())


@pytest.fixture(scope="module")
def model() -> LightGBMForecaster:
    return fitted_model()


def _check_intervals(out: pd.DataFrame) -> None:
    cols = ["lo_95", "lo_80", "yhat", "hi_80", "hi_95"]
    vals = out[cols].to_numpy()
    assert np.isfinite(vals).all()
    assert (vals >= 0).all()
    assert (np.diff(vals, axis=1) >= -1e-12).all(), "lo_95 <= lo_80 <= yhat <= hi_80 <= hi_95"


def test_contract_shape_and_intervals(model: LightGBMForecaster, frame: pd.DataFrame) -> None:
    assert isinstance(model, ForecastModel)
    out = model.predict(frame, 7, (80, 95))
    assert list(out.columns) == ["unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"]
    n = frame.unique_id.nunique()
    assert len(out) == n * 7
    last = frame.groupby("unique_id").ds.max()
    first_target = out.groupby("unique_id").ds.min()
    assert (first_target == last + pd.Timedelta(days=1)).all()
    _check_intervals(out)
    # intervals are informative: not all zero-width
    assert (out.hi_80 - out.lo_80).mean() > 0.1


def test_shorter_horizon_and_other_levels(model: LightGBMForecaster, frame: pd.DataFrame) -> None:
    out = model.predict(frame, 3, (50, 90))
    assert len(out) == frame.unique_id.nunique() * 3
    assert {"lo_50", "hi_90"} <= set(out.columns)
    with pytest.raises(ValueError, match="horizon"):
        model.predict(frame, 8)


def test_min_history_is_enough(model: LightGBMForecaster, frame: pd.DataFrame) -> None:
    """The caller sends only metadata.min_history periods and gets the same forecast."""
    n = model.metadata.min_history
    assert n >= 28
    short = frame.groupby("unique_id", observed=True).tail(n)
    full = model.predict(frame, 7)
    cut = model.predict(short, 7)
    pd.testing.assert_frame_equal(full, cut, check_exact=False, rtol=1e-9, atol=1e-9)


def test_deterministic_fit(frame: pd.DataFrame) -> None:
    a = LightGBMForecaster(small_config()).fit(frame).predict(frame, 7)
    b = LightGBMForecaster(small_config()).fit(frame).predict(frame, 7)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_unseen_series_and_future_price(model: LightGBMForecaster) -> None:
    new = to_frame(synth_sales(3, 80, start="2022-05-01", seed=99)).assign(
        unique_id=lambda d: "NEW/" + d.unique_id.astype(str)
    )
    new["item_id"] = ("NEW_" + new["item_id"].astype(str)).astype("category")
    base = model.predict(new, 7)
    _check_intervals(base)
    last = new.groupby("unique_id").ds.max()
    future = pd.DataFrame(
        {
            "unique_id": np.repeat(last.index, 7),
            "ds": np.concatenate(
                [pd.date_range(d + pd.Timedelta(days=1), periods=7) for d in last]
            ),
            "sell_price": 0.01,
        }
    )
    cheap = model.predict(new, 7, future=future)
    assert not np.allclose(base.yhat, cheap.yhat), "a future price must reach the model"


def test_save_load_roundtrip(
    model: LightGBMForecaster, frame: pd.DataFrame, tmp_path: Path
) -> None:
    model.save(tmp_path / "art")
    meta = ModelMetadata.read(tmp_path / "art")
    assert meta.model_kind == "lightgbm"
    assert meta.n_series == frame.unique_id.nunique()
    assert meta.train_end == frame.ds.max().date()
    assert {"mlforecast", "lightgbm", "pandas", "numpy", "python"} <= set(meta.library_versions)
    assert "lag7" in meta.features and meta.calibration["method"] == "mondrian_split_conformal"
    loaded = load_model(tmp_path / "art")
    pd.testing.assert_frame_equal(model.predict(frame, 7), loaded.predict(frame, 7))
    # a changed byte is refused before anything is unpickled
    path = tmp_path / "art" / "model.joblib"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path / "art")


def test_empirical_coverage_is_roughly_nominal() -> None:
    """Fit on the first 300 days of 80 series; score 8 weekly origins after the training end."""
    sales = synth_sales(80, 360, seed=5)
    frame = to_frame(sales)
    train_end = frame.ds.min() + pd.Timedelta(days=299)
    model = LightGBMForecaster(small_config()).fit(frame[frame.ds <= train_end])
    outs = []
    for k in range(8):
        origin = train_end + pd.Timedelta(days=7 * k)
        out = model.predict(frame[frame.ds <= origin], 7)
        outs.append(out.merge(frame[["unique_id", "ds", "y"]], on=["unique_id", "ds"]))
    scored = pd.concat(outs)
    cov = interval_coverage(scored, [80, 95])
    assert 0.72 <= cov["coverage_80"] <= 0.90, cov
    assert 0.90 <= cov["coverage_95"] <= 0.99, cov
    # and the point forecast beats seasonal naive on the calibration backtest
    assert model.backtest_ is not None
    metrics = backtest_metrics(frame[frame.ds <= train_end], model.backtest_, season_length=7)
    assert metrics["backtest"]["relative_mase"] < 1.0, metrics
