"""The serving-safe features of the LightGBM model: series level encoding and origin features.

Each must be computed the same way at training and at serving time, and the calibration run
must not see past its own origin; these tests hold the implementation to that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from salesloop.model import LightGBMForecaster, load_model, to_frame
from salesloop.model.frame import group_bounds
from salesloop.model.lgbm import zero_run
from tests.model.synthetic import sales_frame, small_config

pytestmark = pytest.mark.filterwarnings("ignore:Found null values in:UserWarning")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return to_frame(sales_frame())


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> LightGBMForecaster:
    return LightGBMForecaster(small_config()).fit(frame)


def test_zero_run_counts_within_each_series() -> None:
    y = np.array([0, 0, 1, 0, 0, 0, 0, 2, 0], dtype=float)
    ids = np.array(["a", "a", "a", "a", "a", "b", "b", "b", "b"])
    starts, ends = group_bounds(ids)
    run = zero_run(y, starts, ends, cap=10)
    # series b starts with zeros: its run must not continue series a's
    np.testing.assert_array_equal(run, [1, 2, 0, 1, 2, 1, 2, 0, 1])
    np.testing.assert_array_equal(zero_run(y, starts, ends, cap=1), np.minimum(run, 1))


def test_defaults_use_the_encoding_and_origin_features(model: LightGBMForecaster) -> None:
    features = model.metadata.features
    assert "level_unique_id" in features
    assert {"origin_zero_run", "origin_step"} <= set(features)
    # no lag shorter than the horizon: nothing is fed back inside one forecast
    assert "lag1" not in features and "lag7" in features
    assert model.metadata.min_history <= 63


def test_short_history_and_reload_give_the_same_forecast(
    model: LightGBMForecaster, frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The encoding comes from the artifact, so min_history periods are still enough."""
    short = frame.groupby("unique_id", observed=True).tail(model.metadata.min_history)
    full = model.predict(frame, 7)
    pd.testing.assert_frame_equal(full, model.predict(short, 7), rtol=1e-9, atol=1e-9)
    model.save(tmp_path / "art")
    loaded = load_model(tmp_path / "art")
    pd.testing.assert_frame_equal(full, loaded.predict(short, 7))


def test_numpy_recursion_matches_mlforecast(model: LightGBMForecaster, frame: pd.DataFrame) -> None:
    assert model._recursive_plan() is not None, "the fast serving path must cover the defaults"
    fast = model.predict(frame, 7)
    slow = LightGBMForecaster.__new__(LightGBMForecaster)
    slow.__dict__.update(model.__dict__)
    slow.use_recursive_plan = False
    pd.testing.assert_frame_equal(fast, slow.predict(frame, 7), rtol=1e-9, atol=1e-12)


def test_encoding_reaches_the_forecast(model: LightGBMForecaster, frame: pd.DataFrame) -> None:
    """A series the model never saw gets no encoding (NaN), which must change its forecast."""
    base = model.predict(frame, 7)
    renamed = frame.assign(unique_id="NEW/" + frame["unique_id"].astype(str))
    unseen = model.predict(renamed, 7)
    assert np.isfinite(unseen["yhat"]).all()
    assert not np.allclose(base["yhat"].to_numpy(), unseen["yhat"].to_numpy())


def test_calibration_encoding_stops_at_the_calibration_origin(
    frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[pd.Timestamp] = []
    original = LightGBMForecaster._encodings

    def spy(self: LightGBMForecaster, df: pd.DataFrame) -> Any:
        seen.append(df["ds"].max())
        return original(self, df)

    monkeypatch.setattr(LightGBMForecaster, "_encodings", spy)
    cfg = small_config()
    LightGBMForecaster(cfg).fit(frame)
    last = frame["ds"].max()
    cv_origin = last - pd.Timedelta(days=cfg.calibration_windows * cfg.horizon)
    assert seen == [cv_origin, last]


def test_origin_features_are_what_serving_computes(frame: pd.DataFrame) -> None:
    """Calibration rows carry their window's origin; serving computes the same from history."""
    cfg = small_config()
    m = LightGBMForecaster(cfg)
    df = m._prepare(frame)
    periods = np.sort(df["ds"].unique())
    cv_end = pd.Timestamp(periods[-1 - cfg.calibration_windows * cfg.horizon])
    out = m._add_origin_features(df, periods, cv_end)
    origin = cv_end + pd.Timedelta(days=cfg.horizon)  # the second calibration window's origin
    rows = out[(out["ds"] > origin) & (out["ds"] <= origin + pd.Timedelta(days=cfg.horizon))]
    assert (rows["origin_step"] == (rows["ds"] - origin).dt.days).all()
    hist = df[df["ds"] <= origin]
    starts, ends = group_bounds(hist["unique_id"].to_numpy())
    run = zero_run(hist["y"].to_numpy(dtype=float), starts, ends, cfg.zero_run_cap)
    expected = pd.Series(run[ends - 1], index=hist["unique_id"].to_numpy()[starts])
    got = rows.groupby("unique_id", observed=True)["origin_zero_run"].agg(["min", "max"])
    np.testing.assert_array_equal(got["min"], expected.reindex(got.index))
    np.testing.assert_array_equal(got["max"], expected.reindex(got.index))
    # training rows before the calibration windows draw every step, independently of weekday
    early = out[out["ds"] <= cv_end]
    assert set(early["origin_step"].unique()) == set(range(1, cfg.horizon + 1))
    by_dow = early.groupby(early["ds"].dt.dayofweek)["origin_step"].mean()
    assert by_dow.max() - by_dow.min() < 0.5


def test_float32_training_features_equal_float64_ones(frame: pd.DataFrame) -> None:
    """Training in float32 (memory at scale) must feed LightGBM the same features, rounded.

    Forecasts of two small fits differ about as much between dtypes as between two seeds, so the
    property held here is the one that matters: every feature agrees to float32 precision, so
    LightGBM (whose bin edges are midpoints between distinct values) puts each row in the same bin.
    """
    m = LightGBMForecaster(small_config())
    assert m.config.train_dtype == "float32"
    cols = ["unique_id", "ds", "y", *m.config.static_features]
    dyn = ["sell_price", "price_rel", "snap", "event"]
    df = m._add_price_rel(m._prepare(frame))[[*cols, *dyn]]
    narrow = df.astype({c: "float32" for c in ["y", *dyn]})
    statics = list(m.config.static_features)
    wide_x = m._new_mlforecast().preprocess(df, static_features=statics)
    narrow_x = m._new_mlforecast().preprocess(narrow, static_features=statics)
    assert isinstance(wide_x, pd.DataFrame) and isinstance(narrow_x, pd.DataFrame)
    features = [c for c in wide_x.columns if c not in cols]
    assert narrow_x[features].select_dtypes("float64").columns.empty
    np.testing.assert_allclose(
        narrow_x[features].to_numpy(dtype=float),
        wide_x[features].to_numpy(dtype=float),
        rtol=1e-5,
        # a rolling std over a constant window is 0 plus accumulated rounding: 7e-9 in float64,
        # 5e-5 in float32; both far below the smallest real std (one sale in 28 days: 0.19)
        atol=1e-3,
    )


def test_artifact_from_before_the_new_features_still_loads(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    """A version registered by the previous code has no encoding and none of the new keys."""
    import joblib

    from salesloop.model.base import ModelMetadata, sha256_file

    old_cfg = small_config(
        lags=(1, 7, 14, 28), short_lag=1, encode_by=(), origin_features=False, train_dtype="float64"
    )
    old = LightGBMForecaster(old_cfg).fit(frame)
    old.save(tmp_path / "art")
    path = tmp_path / "art" / "model.joblib"
    payload = joblib.load(path)
    for key in ("encode_by", "short_lag", "origin_features", "train_dtype"):
        del payload["config"][key]
    del payload["encoding"]
    joblib.dump(payload, path)
    meta = ModelMetadata.read(tmp_path / "art")
    meta.artifact_files = {"model.joblib": sha256_file(path)}
    meta.write(tmp_path / "art")

    loaded = load_model(tmp_path / "art")
    assert isinstance(loaded, LightGBMForecaster)
    expected = old.predict(frame, 7)
    pd.testing.assert_frame_equal(expected, loaded.predict(frame, 7))
    loaded.use_recursive_plan = False  # the mlforecast path too (weekly models always take it)
    pd.testing.assert_frame_equal(expected, loaded.predict(frame, 7), rtol=1e-9, atol=1e-12)
