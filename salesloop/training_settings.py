"""The ``training`` section of the settings: backtest, gate, candidates, canary rollout, Vertex.

``Settings.training`` is a free-form dict in :mod:`salesloop.config` so the runtime (function, model
server) never depends on training knobs; the pipeline validates it here with the same strictness as
the rest of the settings. A typo in a gate margin must fail the run, not silently fall back to a
default that lets a worse model through, so every model forbids unknown keys.

Values left ``None`` are derived from other sections by :func:`training_settings` (horizon, step,
history window, pipeline root, service account), so an environment overlay that changes the
forecast horizon or the project does not have to repeat itself here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from salesloop.config import Settings, SettingsError

ModelKind = Literal["lightgbm", "auto_ets", "seasonal_naive"]
Metric = Literal["rmsse", "mase", "wape"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CandidateSpec(_Strict):
    """One model recipe the pipeline may train: a kind plus its parameter overrides."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,39}$")
    kind: ModelKind
    params: dict[str, Any] = Field(default_factory=dict)


class BacktestSettings(_Strict):
    """Rolling-origin cross-validation: ``windows`` origins, ``step`` periods apart."""

    windows: int = Field(default=4, ge=1, le=52)
    horizon: int | None = Field(default=None, ge=1, le=366)  # None → forecast.horizon
    step: int | None = Field(default=None, ge=1, le=366)  # None → horizon (non-overlapping windows)
    # A series is evaluated only with this much history at the first origin: a product launched
    # last week has no meaningful scale and would dominate the averages.
    min_train_periods: int | None = Field(default=None, ge=2)  # None → 4 seasons
    # Refit every candidate at every origin (honest); False fits once at the first origin.
    refit: bool = True
    # How the champion is evaluated: its deployed artifact as is, its recipe refitted at every
    # origin, or "auto": the artifact when it was trained before the first origin (no leak), else
    # the recipe (an artifact that saw the windows would look better than it is).
    champion_mode: Literal["auto", "artifact", "refit"] = "auto"
    # Dynamic features whose horizon values are known in advance (calendar) and passed to models.
    known_future: tuple[Literal["snap", "event", "sell_price"], ...] = ("snap", "event")
    # Local statistical models only need the recent past; trimming keeps AutoETS affordable.
    stat_max_history: int | None = Field(
        default=None, ge=8
    )  # None → 52 seasons, at least 2 years daily
    report_series: int = Field(default=6, ge=0, le=50)


class GateSettings(_Strict):
    """When a challenger may replace the champion (relative to the same backtest)."""

    metric: Metric = "rmsse"
    # The challenger's metric must be at most (1 - margin) x SeasonalNaive's.
    min_improvement_vs_seasonal_naive: float = Field(default=0.10, ge=0.0, lt=1.0)
    # ... and at most (1 + tolerance) x the champion's.
    max_degradation_vs_champion: float = Field(default=0.02, ge=0.0, le=1.0)
    # Every interval level's empirical coverage within this many points of nominal (None: off).
    max_coverage_gap: float | None = Field(default=0.10, gt=0.0, le=1.0)
    # |bias| (sum of errors / sum of actuals) at most this (None: off).
    max_abs_bias: float | None = Field(default=0.25, gt=0.0)
    # The model must forecast from the history the serving path sends (on_sale sends 63 days):
    # a model needing more would compute its features on truncated windows in production.
    max_min_history: int | None = Field(default=None, ge=1)


class SanitySettings(_Strict):
    """Checks on a version's predictions before and during its canary."""

    # Ratio of the canary's total forecast to the champion's on the same probe series.
    max_total_ratio: float = Field(default=1.5, gt=1.0)
    # Share of probe series whose forecast differs from the champion's by more than
    # ``series_ratio`` (either way, on series with at least ``min_units`` forecast).
    max_share_far_series: float = Field(default=0.2, ge=0.0, le=1.0)
    series_ratio: float = Field(default=3.0, gt=1.0)
    min_units: float = Field(default=1.0, ge=0.0)
    probe_series: int = Field(default=200, ge=1)


class CanarySettings(_Strict):
    """Traffic percentages the new version goes through; the last must be 100."""

    steps: tuple[int, ...] = (10, 100)
    # Requests sent through the endpoint at each step; every one must succeed.
    health_requests: int = Field(default=20, ge=0, le=10_000)
    max_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    max_latency_p95_ms: float = Field(default=5000.0, gt=0)
    # Seconds to let the endpoint pick up a new traffic split before probing it.
    settle_s: float = Field(default=1.0, ge=0.0, le=600.0)
    # True: an unreachable endpoint fails the canary. False (local runs without a model server):
    # the endpoint checks are skipped, recorded, and only the artifact checks gate the rollout.
    require_endpoint: bool = False

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or v[-1] != 100:
            raise ValueError("canary steps must end at 100")
        if any(not 0 < s <= 100 for s in v) or list(v) != sorted(set(v)):
            raise ValueError("canary steps must be strictly increasing percentages in (0, 100]")
        return v


class ValidationSettings(_Strict):
    """What makes a training frame unusable (the pipeline stops with a readable report)."""

    min_series: int = Field(default=1, ge=1)
    min_periods: int | None = Field(default=None, ge=1)  # None → enough for the backtest
    max_missing_share: float = Field(default=0.5, ge=0.0, le=1.0)  # grid periods without a row
    max_zero_series_share: float = Field(default=0.5, ge=0.0, le=1.0)
    max_staleness_periods: int = Field(default=3, ge=0)  # last date vs the extract's end date


class VertexSettings(_Strict):
    """Where the pipeline runs on Vertex AI Pipelines (``salesloop pipeline submit``)."""

    pipeline_root: str | None = Field(
        default=None, pattern=r"^gs://[a-z0-9][a-z0-9._-]{1,220}(/.*)?$"
    )
    service_account: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$"
    )
    template_path: str = "build/pipelines/training.yaml"
    image: str | None = None  # None → the project's Artifact Registry training image
    enable_caching: bool = False
    display_name: str = "salesloop-training"
    model_display_name: str = "sales-forecast"
    # The registered versions' serving container; None → the project's Artifact Registry image.
    serving_image: str | None = None
    # How the rollout step deploys a version on the endpoint (Vertex dedicated resources), as
    # which identity the container runs (None → the stack's model-serving account), and how long
    # a deployment may take before the canary counts it as failed.
    machine_type: str = "n1-standard-2"
    min_replicas: int = Field(default=1, ge=1, le=100)
    max_replicas: int = Field(default=2, ge=1, le=100)
    serving_account: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$"
    )
    deploy_timeout_s: float = Field(default=1800.0, gt=0, le=7200)

    @model_validator(mode="after")
    def _replicas(self) -> VertexSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class TrainingSettings(_Strict):
    model_name: str = Field(default="sales-forecast", pattern=r"^[a-z][a-z0-9-]{0,62}$")
    history_days: int | None = Field(default=None, ge=28, le=5000)  # None → warehouse.history_days
    candidates: tuple[CandidateSpec, ...] = (CandidateSpec(name="lightgbm", kind="lightgbm"),)
    # With several candidates: True picks the best by backtest; False keeps the first.
    select_best: bool = False
    backtest: BacktestSettings = BacktestSettings()
    gate: GateSettings = GateSettings()
    sanity: SanitySettings = SanitySettings()
    canary: CanarySettings = CanarySettings()
    validation: ValidationSettings = ValidationSettings()
    vertex: VertexSettings = VertexSettings()

    @field_validator("candidates", mode="before")
    @classmethod
    def _bare_names(cls, v: Any) -> Any:
        """``[lightgbm, auto_ets]`` is shorthand for ``[{name: lightgbm, kind: lightgbm}, ...]``."""
        if isinstance(v, list | tuple):
            return [{"name": x, "kind": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("candidates")
    @classmethod
    def _unique(cls, v: tuple[CandidateSpec, ...]) -> tuple[CandidateSpec, ...]:
        names = [c.name for c in v]
        if not names:
            raise ValueError("candidates must name at least one model")
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        return v

    def candidate(self, name: str) -> CandidateSpec:
        for spec in self.candidates:
            if spec.name == name:
                return spec
        raise KeyError(f"no candidate named {name!r}; known: {[c.name for c in self.candidates]}")


def resolve(train: TrainingSettings, settings: Settings) -> TrainingSettings:
    """Fill the ``None`` defaults from the rest of the settings."""
    fc = settings.forecast
    horizon = train.backtest.horizon or fc.horizon
    backtest = train.backtest.model_copy(
        update={
            "horizon": horizon,
            "step": train.backtest.step or horizon,
            "min_train_periods": train.backtest.min_train_periods or 4 * fc.season_length,
            "stat_max_history": train.backtest.stat_max_history
            or max(52 * fc.season_length, 730 if fc.freq == "D" else 0),
        }
    )
    vertex = train.vertex.model_copy(
        update={
            "pipeline_root": train.vertex.pipeline_root
            or f"gs://{settings.project}-pipelines/root",
            "service_account": train.vertex.service_account
            or f"pipelines@{settings.project}.iam.gserviceaccount.com",
            "image": train.vertex.image
            or f"{settings.region}-docker.pkg.dev/{settings.project}/salesloop/training:latest",
            "serving_image": train.vertex.serving_image
            or f"{settings.region}-docker.pkg.dev/{settings.project}/salesloop/serving:latest",
            "serving_account": train.vertex.serving_account
            or f"model-serving@{settings.project}.iam.gserviceaccount.com",
        }
    )
    return train.model_copy(
        update={
            "history_days": train.history_days or settings.warehouse.history_days,
            "backtest": backtest,
            "vertex": vertex,
        }
    )


def training_settings(settings: Settings) -> TrainingSettings:
    """Validate ``settings.training`` and resolve its derived defaults; errors name the dotted key."""
    try:
        parsed = TrainingSettings.model_validate(settings.training)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(['training', *(str(p) for p in err['loc'])])}: {err['msg']}"
            for err in exc.errors()
        ]
        raise SettingsError(
            f"invalid training settings ({settings.env}):\n  " + "\n  ".join(problems)
        ) from None
    return resolve(parsed, settings)
