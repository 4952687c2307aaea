"""Typed settings: environments/base.yaml plus one overlay per environment, validated.

Every process of the loop (function, model server, dispatcher, CLI, stacks) reads its settings
through :func:`load_settings`, so there is one source of truth. An overlay may only change keys the
schema knows; an unknown key or a bad value fails with the file and the dotted key that caused it,
because a silently ignored typo in prod config is how alerts stop being sent.

Selection: ``--env`` on the CLI, else ``SALESLOOP_ENV``, else ``local``. ``SALESLOOP_OVERLAY`` may
name one more YAML file applied last (the local runtime writes one per run with ports and paths).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_NAMES = ("local", "dev", "prod")
# A full Pub/Sub topic path (project id rules, then Pub/Sub's topic name rules).
PUBSUB_TOPIC_PATTERN = (
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9_.~+%-]{2,254}$"
)


class SettingsError(ValueError):
    """A settings file is missing, unreadable, or does not match the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableNames(_Strict):
    sales: str = "sales"
    rejected_sales: str = "rejected_sales"
    forecasts: str = "forecasts"
    processed_events: str = "processed_events"
    alerts: str = "alerts"
    model_versions: str = "model_versions"
    monitoring_metrics: str = "monitoring_metrics"
    calendar: str = "calendar"


class WarehouseSettings(_Strict):
    backend: Literal["duckdb", "bigquery"] = "duckdb"
    dataset: str = Field("salesloop", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
    location: str = "EU"
    tables: TableNames = TableNames()
    history_days: int = Field(400, ge=28, le=3000)
    max_future_days: int = Field(2, ge=0, le=60)


class ForecastSettings(_Strict):
    horizon: int = Field(7, ge=1, le=366)
    freq: Literal["D", "W", "MS", "M"] = "D"
    season_length: int = Field(7, ge=1, le=366)
    interval_levels: tuple[int, ...] = (80, 95)

    @field_validator("interval_levels")
    @classmethod
    def _levels(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(not 50 <= x < 100 for x in v):
            raise ValueError("interval levels must be percentages in [50, 100)")
        return tuple(sorted(set(v)))


class Recipients(_Strict):
    default: list[str] = Field(default_factory=list)
    by_category: dict[str, list[str]] = Field(default_factory=dict)
    by_store: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _emails(self) -> Recipients:
        every = [*self.default]
        for lst in (*self.by_category.values(), *self.by_store.values()):
            every.extend(lst)
        bad = [e for e in every if "@" not in e or e.startswith("@") or e.endswith("@")]
        if bad:
            raise ValueError(f"not an email address: {bad[0]!r}")
        return self

    def for_subject(self, store_id: str | None, cat_id: str | None) -> list[str]:
        """Store owners and category owners both hear about a drop; fall back to the default list."""
        out: list[str] = []
        if store_id and store_id in self.by_store:
            out += self.by_store[store_id]
        if cat_id and cat_id in self.by_category:
            out += self.by_category[cat_id]
        return sorted(set(out or self.default))


class AlertSettings(_Strict):
    drop_threshold: float = Field(0.30, gt=0.0, lt=1.0)
    interval_level: int = 80
    cooldown_days: int = Field(7, ge=0, le=365)
    min_baseline_units: float = Field(20.0, ge=0.0)
    sender: str = "salesloop@example.com"
    recipients: Recipients = Recipients()
    ml_owner: str = "ml-owner@example.com"


class SmtpSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8025, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    secret_name: str = "smtp-password"
    timeout_s: float = Field(10.0, gt=0)


class PredictorSettings(_Strict):
    kind: Literal["endpoint", "in_process"] = "endpoint"
    # How kind=endpoint talks to it: the aiplatform SDK, or the same REST calls over plain HTTP
    # (salesloop.predictor.rest: no SDK import at cold start, ~50 ms less per call).
    client: Literal["aiplatform", "http"] = "aiplatform"
    endpoint_id: str = "sales-forecast"
    api_endpoint: str | None = None
    max_payload_bytes: int = Field(1_400_000, ge=10_000, le=1_500_000)
    timeout_s: float = Field(30.0, gt=0)


class EventSettings(_Strict):
    """Retry policy of event delivery (local dispatcher and the Eventarc trigger's retry flag),
    and when the function stops failing an event and dead-letters it (salesloop.dead_letter)."""

    max_attempts: int = Field(8, ge=1, le=100)
    initial_backoff_s: float = Field(0.2, gt=0)
    max_backoff_s: float = Field(10.0, gt=0)
    multiplier: float = Field(2.0, ge=1.0)
    delivery_timeout_s: float = Field(60.0, gt=0)
    # Where given-up events go: a Pub/Sub topic (cloud) or the local dispatcher's dead letter.
    dead_letter: Literal["pubsub", "local"] = "pubsub"
    # A failing event older than this (its CloudEvent ``time``) is dead-lettered and acknowledged.
    # Eventarc stops retrying after 24 h with backoff up to 10 min: the bound leaves at least two
    # attempts past the limit, so the give-up happens before Eventarc drops the event.
    dead_letter_after_s: float = Field(82_800.0, gt=0, le=85_200)
    # Used when the DEAD_LETTER_TOPIC environment variable (set by the stack) is absent.
    dead_letter_topic: str | None = Field(None, pattern=PUBSUB_TOPIC_PATTERN)
    # Bound on one publish, retries included; past it the event fails and is retried.
    dead_letter_timeout_s: float = Field(30.0, gt=0, le=300)


class LocalSettings(_Strict):
    """Where the local environment keeps its state and how its processes find each other."""

    run_dir: Path = Path("runs/local")
    warehouse_url: str | None = None
    function_url: str | None = None


class Settings(_Strict):
    env: Literal["local", "dev", "prod"] = "local"
    project: str = Field(..., pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    region: str = "europe-west1"
    owner: str = "ml-platform"
    warehouse: WarehouseSettings = WarehouseSettings()
    forecast: ForecastSettings = ForecastSettings()
    alerts: AlertSettings = AlertSettings()
    smtp: SmtpSettings = SmtpSettings()
    predictor: PredictorSettings = PredictorSettings()
    events: EventSettings = EventSettings()
    local: LocalSettings = LocalSettings()
    # Sections owned by later steps of the loop (training gate, monitoring thresholds, infra)
    # are free-form here and validated by their owners' own models.
    training: dict[str, Any] = Field(default_factory=dict)
    monitoring: dict[str, Any] = Field(default_factory=dict)
    infra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _alert_level_is_forecast(self) -> Settings:
        if self.alerts.interval_level not in self.forecast.interval_levels:
            raise ValueError(
                f"alerts.interval_level {self.alerts.interval_level} is not one of "
                f"forecast.interval_levels {list(self.forecast.interval_levels)}"
            )
        return self

    @property
    def run_dir(self) -> Path:
        return self.local.run_dir

    def table(self, logical: str) -> str:
        """The physical name of a logical table (``sales`` → whatever this env calls it)."""
        return str(getattr(self.warehouse.tables, logical))


def environments_dir() -> Path:
    """``SALESLOOP_ENVIRONMENTS`` or the first ``environments/`` found from cwd or the package up."""
    explicit = os.environ.get("SALESLOOP_ENVIRONMENTS")
    if explicit:
        return Path(explicit)
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for parent in (start, *start.parents):
            candidate = parent / "environments"
            if (candidate / "base.yaml").is_file():
                return candidate
    raise SettingsError("no environments/base.yaml found; set SALESLOOP_ENVIRONMENTS")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise SettingsError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _has_path(data: Any, path: tuple[Any, ...]) -> bool:
    for part in path:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            return False
    return True


def _blame(layers: list[tuple[Path, dict[str, Any]]], loc: tuple[Any, ...]) -> Path:
    """The last file that sets the offending key (or its nearest parent)."""
    for depth in range(len(loc), 0, -1):
        for path, data in reversed(layers):
            if _has_path(data, loc[:depth]):
                return path
    return layers[-1][0]


def load_settings(
    env: str | None = None,
    *,
    directory: Path | None = None,
    extra_overlay: Path | None = None,
) -> Settings:
    """Merge base.yaml, the environment overlay and an optional extra overlay; validate."""
    env = env or os.environ.get("SALESLOOP_ENV") or "local"
    if env not in ENV_NAMES:
        raise SettingsError(f"unknown environment {env!r}; expected one of {', '.join(ENV_NAMES)}")
    directory = directory or environments_dir()
    layers = [(directory / "base.yaml", _read_yaml(directory / "base.yaml"))]
    overlay = directory / f"{env}.yaml"
    layers.append((overlay, _read_yaml(overlay)))
    extra = extra_overlay or (
        Path(os.environ["SALESLOOP_OVERLAY"]) if os.environ.get("SALESLOOP_OVERLAY") else None
    )
    if extra is not None:
        layers.append((extra, _read_yaml(extra)))
    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = _merge(merged, data)
    merged["env"] = env
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{_blame(layers, loc)}: {key}: {err['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None


@lru_cache(maxsize=8)
def cached_settings(env: str | None = None) -> Settings:
    """Settings for long-lived processes (the function), read once per process."""
    return load_settings(env)
