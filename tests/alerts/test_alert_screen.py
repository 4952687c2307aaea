"""The array screen in front of the drop-alert rule may let a quiet batch through to the full rule,
but must never silence an alert the full rule raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloop.alerts import _cannot_fire, _evaluate_full, evaluate_alerts
from salesloop.config import AlertSettings
from tests.alerts.alerts_testdata import ORIGIN, SeriesSpec, cfg_of, frames
from tests.alerts.test_alert_rule_properties import alert_settings, series_specs

NOW = datetime(2016, 5, 23, 6, 0, tzinfo=UTC)


def run_rule(
    forecasts: pd.DataFrame, history: pd.DataFrame, cfg: AlertSettings, *, screened: bool = True
) -> pd.DataFrame:
    """``evaluate_alerts`` (screen first), or with ``screened=False`` the full rule alone."""
    rule = evaluate_alerts if screened else _evaluate_full
    return rule(
        forecasts,
        history,
        settings=cfg,
        recent_alerts=None,
        model_version="v1",
        event_id="e",
        now=NOW,
    )


def full_rule(forecasts: pd.DataFrame, history: pd.DataFrame, cfg: AlertSettings) -> pd.DataFrame:
    return run_rule(forecasts, history, cfg, screened=False)


@st.composite
def batches(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rule's generated batches, then roughened: per-series origins, NaN and negative
    forecasts, missing bounds, warehouse-style timestamps, fewer forecast days."""
    specs: list[SeriesSpec] = draw(series_specs())
    parts = [
        frames([s], ORIGIN - timedelta(days=draw(st.sampled_from([0, 0, 0, 3])))) for s in specs
    ]
    bounds = {"hi_80": "float64", "hi_95": "float64"}
    forecasts = pd.concat([f.astype(bounds) for f, _ in parts], ignore_index=True)
    history = pd.concat([h for _, h in parts], ignore_index=True)
    n = len(forecasts)
    for col, value in (("yhat", np.nan), ("yhat", -3.0), ("hi_80", np.nan), ("hi_80", 0.0)):
        hit = draw(st.lists(st.integers(0, n - 1), max_size=2))
        forecasts.loc[hit, col] = value
    if draw(st.booleans()):
        keep = draw(st.integers(1, n))
        forecasts = forecasts.iloc[:keep].reset_index(drop=True)
    if draw(st.booleans()):
        for frame, cols in ((forecasts, ["forecast_origin", "target_date"]), (history, ["date"])):
            for c in cols:
                frame[c] = pd.to_datetime(frame[c])
    return forecasts, history


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), alert_settings)
def test_the_screen_never_silences_an_alert(
    batch: tuple[pd.DataFrame, pd.DataFrame], cfg: AlertSettings
) -> None:
    forecasts, history = batch
    if _cannot_fire(forecasts, history, cfg):
        assert full_rule(forecasts, history, cfg).empty


def _one(**kw: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    base: dict[str, object] = {
        "series_id": "CA_1/ITEM_0",
        "store_id": "CA_1",
        "cat_id": "FOODS",
        "trailing": (20,) * 7,
        "forecast": (20,) * 7,
        "last_year": (21,) * 7,
    }
    return frames([SeriesSpec(**{**base, **kw})])  # type: ignore[arg-type]


def test_a_steady_single_series_is_screened_out() -> None:
    forecasts, history = _one()
    cfg = cfg_of()
    assert _cannot_fire(forecasts, history, cfg)
    assert full_rule(forecasts, history, cfg).empty


def test_a_clear_drop_goes_to_the_full_rule_and_alerts() -> None:
    forecasts, history = _one(forecast=(4,) * 7)
    cfg = cfg_of()
    assert not _cannot_fire(forecasts, history, cfg)
    out = run_rule(forecasts, history, cfg)
    assert list(out["subject_id"]) == ["CA_1/ITEM_0"]


def test_what_the_screen_does_not_cover_goes_to_the_full_rule() -> None:
    cfg = cfg_of()
    steady = dict(trailing=(20,) * 7, forecast=(20,) * 7)
    two = frames(
        [
            SeriesSpec("CA_1/A", "CA_1", "FOODS", **steady),  # type: ignore[arg-type]
            SeriesSpec("CA_1/B", "CA_1", "FOODS", **steady),  # type: ignore[arg-type]
        ]
    )
    assert not _cannot_fire(*two, cfg), "an aggregate subject exists"
    forecasts, history = _one()
    negative = history.assign(units=history["units"].where(history.index != 0, -1.0))
    assert not _cannot_fire(forecasts, negative, cfg)
    aware = forecasts.assign(
        target_date=pd.to_datetime(forecasts["target_date"]).dt.tz_localize("UTC")
    )
    assert not _cannot_fire(aware, history, cfg)
    assert not _cannot_fire(forecasts.drop(columns=["hi_80"]), history, cfg)
    assert not _cannot_fire(pd.concat([forecasts, forecasts.iloc[:1]]), history, cfg)


def test_an_interval_just_under_the_baseline_still_alerts() -> None:
    """Boundaries the generated integers rarely reach: the week's upper bound 0.56 units under
    the trailing baseline (140), the forecast 20% under it."""
    forecasts, history = _one(forecast=(16,) * 7, width=0.245, last_year=None)
    cfg = cfg_of(drop_threshold=0.199, min_baseline_units=139.9)
    assert not _cannot_fire(forecasts, history, cfg)
    out = run_rule(forecasts, history, cfg)
    assert out["hi"].tolist() == [pytest.approx(139.44)] and out["baseline"].tolist() == [140.0]
