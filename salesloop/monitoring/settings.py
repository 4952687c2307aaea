"""The ``monitoring`` section of the settings: windows, sample sizes and thresholds per environment.

``Settings.monitoring`` is a free-form mapping in :mod:`salesloop.config`; this model is its schema,
so a typo in an environment file fails at start-up instead of silently disabling a threshold. A
threshold of ``null`` means "measure and record, never judge".

Why the defaults are what they are (measured on the calibrated generator, 300 series, 400-day
baseline, 28-day recent window): the JS divergence of ``units`` has a noise floor near 0.0003 and a
50 % category drop moves it to about 0.007, while a single store closing moves it only to 0.002, so
input drift is a warning sign, not a retraining trigger; ``sell_price`` drifts by about 0.017 through
ordinary price changes; ``snap`` follows the calendar, so its L-infinity distance is only stable over
windows of about a month. Accuracy against actuals is what triggers retraining by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from salesloop.config import Settings

RetrainTrigger = Literal["accuracy", "feature_drift", "prediction_drift"]

# The model inputs whose drift is measured, and how (numeric: JS divergence; categorical: L-inf).
FEATURES: dict[str, Literal["numeric", "categorical"]] = {
    "units": "numeric",
    "sell_price": "numeric",
    "snap": "categorical",
}


class MonitoringSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- windows (days) -------------------------------------------------------------------------
    accuracy_window_days: int = Field(28, ge=1, le=366)
    """Forecasts whose target date lies in the last N days (up to the day before ``now``) are judged."""
    drift_window_days: int = Field(28, ge=1, le=366)
    """Recent window of sales (feature drift) and of forecast origins (prediction drift)."""
    prediction_reference_days: int = Field(28, ge=1, le=366)
    """Prediction drift compares the recent window with the N days of origins before it."""
    baseline_days: int = Field(364, ge=7, le=3000)
    """Feature baseline: the last N days of the version's training window, or, when that is
    unknown, the N days before the recent window."""
    mase_scale_days: int = Field(364, ge=14, le=3000)
    """History before a series' first judged origin that sets its MASE scale."""

    # -- sample sizes ---------------------------------------------------------------------------
    min_forecasts: int = Field(50, ge=1)
    """Fewer judged forecast rows in a scope: its accuracy is recorded but not judged."""
    min_drift_samples: int = Field(200, ge=1)
    """Fewer values on either side: the drift is recorded but not judged."""
    bins: int = Field(20, ge=2, le=200)
    smoothing: float = Field(1e-6, gt=0.0, lt=0.01)

    # -- thresholds (None: measured, never judged) ----------------------------------------------
    mase_max: float | None = Field(1.5, gt=0)
    mase_degradation_ratio: float | None = Field(1.25, gt=1.0)
    """Overall MASE above ratio times the version's backtest MASE (when the registry recorded one)."""
    wape_max: float | None = Field(None, gt=0)
    abs_bias_max: float | None = Field(None, gt=0)
    abs_scaled_bias_max: float | None = Field(0.5, gt=0)
    coverage_tolerance: float | None = Field(0.15, gt=0, lt=1)
    """Coverage of the L % interval must be at least L/100 minus this."""
    judge_scopes: bool = True
    """Judge per-category and per-store accuracy too (a closed store hides in the overall mean)."""
    js_max: float | None = Field(0.1, gt=0, le=1)
    linf_max: float | None = Field(0.15, gt=0, le=1)
    prediction_js_max: float | None = Field(0.1, gt=0, le=1)
    feature_thresholds: dict[str, float] = Field(default_factory=lambda: {"units": 0.01})
    """Per-feature overrides of js_max / linf_max (features: units, sell_price, snap)."""

    # -- decisions ------------------------------------------------------------------------------
    retrain_on: tuple[RetrainTrigger, ...] = ("accuracy",)
    retrain_cooldown_days: int = Field(7, ge=0, le=365)
    """No second retraining trigger within N days of the last (the pipeline and canary need time)."""
    notify: bool = True
    """Email the ML owner when a threshold is crossed."""
    retrain_hook: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``module:function`` called as ``on_retrain(result) -> RetrainOutcome`` by ``salesloop
    monitor`` when it decides to retrain (the training pipeline plugs in here); None: the decision
    is recorded and emailed, and nothing runs."""

    @model_validator(mode="after")
    def _known_features(self) -> MonitoringSettings:
        unknown = sorted(set(self.feature_thresholds) - set(FEATURES))
        if unknown:
            raise ValueError(
                f"feature_thresholds names unknown features {unknown}; known: {sorted(FEATURES)}"
            )
        if any(not 0 < v <= 1 for v in self.feature_thresholds.values()):
            raise ValueError("feature thresholds must be in (0, 1]")
        return self

    def drift_threshold(
        self, feature: str, kind: Literal["numeric", "categorical"]
    ) -> float | None:
        if feature in self.feature_thresholds:
            return self.feature_thresholds[feature]
        return self.js_max if kind == "numeric" else self.linf_max


def monitoring_settings(settings: Settings) -> MonitoringSettings:
    """Validate ``settings.monitoring``; errors name the dotted key, like :func:`load_settings`."""
    from salesloop.config import SettingsError

    try:
        return MonitoringSettings.model_validate(settings.monitoring)
    except ValidationError as exc:
        problems = [
            f"monitoring.{'.'.join(str(p) for p in err['loc']) or '(section)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None
