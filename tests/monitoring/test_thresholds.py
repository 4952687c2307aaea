"""Threshold logic: breach, no breach, and missing data (recorded, never a breach)."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest
from pydantic import ValidationError

from salesloop.config import SettingsError, load_settings
from salesloop.monitoring.monitor import accuracy_measurements, decide, judge
from salesloop.monitoring.settings import MonitoringSettings, monitoring_settings

W = (date(2016, 1, 1), date(2016, 1, 28))


@pytest.mark.parametrize(
    ("value", "threshold", "direction", "breached"),
    [
        (1.6, 1.5, "max", True),
        (1.5, 1.5, "max", False),  # at the threshold is not over it
        (1.4, 1.5, "max", False),
        (0.6, 0.65, "min", True),
        (0.65, 0.65, "min", False),
        (-0.4, 0.3, "abs_max", True),
        (0.4, 0.3, "abs_max", True),
        (-0.2, 0.3, "abs_max", False),
    ],
)
def test_breach_or_not(value: float, threshold: float, direction: str, breached: bool) -> None:
    m = judge("x", "overall", value, threshold, direction=direction, window=W)  # type: ignore[arg-type]
    assert m.breached is breached
    assert (m.value, m.threshold, m.window_start, m.window_end) == (value, threshold, *W)


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_missing_data_is_recorded_not_breached(value: float | None) -> None:
    m = judge("mase", "overall", value, 1.5)
    assert m.value is None and m.threshold == 1.5 and not m.breached and m.note == "no data"
    assert m.describe() == "mase [overall]: no data"


def test_small_sample_and_no_threshold_are_not_judged() -> None:
    small = judge("mase", "overall", 9.0, 1.5, enough=False, why_not_enough="3 forecasts < 50")
    assert not small.breached and small.value == 9.0 and small.note == "3 forecasts < 50"
    unjudged = judge("wape", "overall", 9.0, None)
    assert not unjudged.breached and unjudged.threshold is None


def test_describe_says_what_moved_and_by_how_much() -> None:
    assert judge("mase", "store:CA_1", 1.84, 1.5).describe() == "mase [store:CA_1] = 1.84 > max 1.5"
    assert (
        judge("coverage_80", "overall", 0.52, 0.65, direction="min").describe()
        == "coverage_80 [overall] = 0.52 < min 0.65"
    )
    assert (
        "|value| > max 0.3" in judge("bias", "overall", -0.41, 0.3, direction="abs_max").describe()
    )


def _acc(**overrides: object) -> pd.DataFrame:
    row = {
        "scope": "overall",
        "n_forecasts": 500,
        "n_series": 20,
        "actual_units": 1000.0,
        "wape": 0.5,
        "bias": 0.02,
        "coverage_80": 0.8,
        "coverage_95": 0.94,
        "mase": 0.9,
        "scaled_bias": 0.01,
        "n_series_mase": 20,
    }
    row.update(overrides)
    return pd.DataFrame([row])


def _by_key(ms: list) -> dict:  # type: ignore[type-arg]
    return {(m.metric, m.scope): m for m in ms}


def test_accuracy_within_thresholds_is_no_breach() -> None:
    ms = MonitoringSettings()
    out = _by_key(accuracy_measurements(_acc(), ms, backtest_mase=0.85, window=W))
    assert not any(m.breached for m in out.values())
    assert out[("mase_vs_backtest", "overall")].value == pytest.approx(0.9 / 0.85)
    assert out[("coverage_80", "overall")].threshold == pytest.approx(0.65)
    assert out[("coverage_95", "overall")].threshold == pytest.approx(0.80)
    assert out[("n_forecasts", "overall")].value == 500


def test_accuracy_breaches() -> None:
    ms = MonitoringSettings(wape_max=0.6)
    acc = pd.concat(
        [
            _acc(mase=1.2, coverage_80=0.5, wape=0.7),
            _acc(scope="store:TX_1", mase=2.1, scaled_bias=0.9, n_forecasts=60),
            _acc(scope="cat:HOBBIES", mase=3.0, n_forecasts=10),  # too few: not judged
        ]
    )
    out = _by_key(accuracy_measurements(acc, ms, backtest_mase=0.9, window=W))
    breached = sorted(k for k, m in out.items() if m.breached)
    assert breached == [
        ("coverage_80", "overall"),
        ("mase", "store:TX_1"),
        ("mase_vs_backtest", "overall"),  # 1.2 / 0.9 = 1.33 > 1.25
        ("scaled_bias", "store:TX_1"),
        ("wape", "overall"),
    ]
    assert out[("mase", "cat:HOBBIES")].note == "10 forecasts < min_forecasts 50"
    retrain, reasons = decide(list(out.values()), ["accuracy"])
    assert retrain and len(reasons) == 5
    assert decide(list(out.values()), ["feature_drift"]) == (False, [])


def test_scopes_are_not_judged_when_switched_off() -> None:
    ms = MonitoringSettings(judge_scopes=False)
    out = _by_key(accuracy_measurements(_acc(scope="store:TX_1", mase=9.0), ms, window=W))
    assert not out[("mase", "store:TX_1")].breached
    assert out[("mase", "store:TX_1")].threshold is None


def test_no_accuracy_data_records_missing_overall_rows() -> None:
    out = _by_key(accuracy_measurements(pd.DataFrame(), MonitoringSettings(), window=W))
    assert {k[0] for k in out} >= {"mase", "wape", "coverage_80", "mase_vs_backtest"}
    assert all(m.value is None and not m.breached for k, m in out.items() if k[0] != "n_forecasts")
    assert out[("mase_vs_backtest", "overall")].note == "no backtest MASE for this version"


def test_settings_reject_unknown_keys_and_features() -> None:
    with pytest.raises(ValidationError):
        MonitoringSettings.model_validate({"mase_mx": 1.0})
    with pytest.raises(ValidationError):
        MonitoringSettings.model_validate({"feature_thresholds": {"colour": 0.1}})
    with pytest.raises(ValidationError):
        MonitoringSettings.model_validate({"retrain_on": ["vibes"]})
    s = load_settings("local").model_copy(update={"monitoring": {"js_max": 2}})
    with pytest.raises(SettingsError, match=r"monitoring\.js_max"):
        monitoring_settings(s)


def test_environments_validate_and_prod_is_stricter() -> None:
    base = monitoring_settings(load_settings("local"))
    prod = monitoring_settings(load_settings("prod"))
    assert base == MonitoringSettings()  # base.yaml spells out the defaults
    assert prod.mase_max is not None and base.mase_max is not None
    assert prod.mase_max < base.mase_max
    assert prod.js_max is not None and base.js_max is not None and prod.js_max < base.js_max
    assert prod.drift_threshold("units", "numeric") < base.drift_threshold("units", "numeric")  # type: ignore[operator]
    assert prod.min_forecasts > base.min_forecasts
