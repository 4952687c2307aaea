"""The ``infra`` section of the settings: what differs between the cloud environments' infrastructure.

``Settings.infra`` is a free-form dict in :mod:`salesloop.config` so that the runtime (function,
model server) never depends on infrastructure knobs; the stacks validate it here, with the same
strictness as the rest of the settings: an unknown key or a bad value fails synthesis with the
dotted key, because a typo in prod's alert threshold must not silently fall back to a default.
Cross-section rules (a CMEK key in the wrong location, an endpoint id Vertex would reject) are
checked by :func:`infra_settings` against the whole :class:`~salesloop.config.Settings`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from salesloop.config import Settings, SettingsError

# GCP label keys/values: lowercase letters, digits, '_' and '-', at most 63 characters.
_LABEL = re.compile(r"^[a-z0-9_-]{0,63}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_KMS_KEY = re.compile(
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/(?P<location>[a-z0-9-]+)/keyRings/[\w-]+/cryptoKeys/[\w-]+$"
)
_ENDPOINT_ID = re.compile(r"^[1-9][0-9]{0,9}$")
# Cloud Scheduler takes unix-cron: five space-separated fields.
_CRON = re.compile(r"^\S+( \S+){4}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CmekSettings(_Strict):
    """Customer-managed keys; two because a KMS key serves only resources in its own location."""

    # For the multi-region data (BigQuery datasets in warehouse.location, e.g. EU → location "eu").
    multi_region_key: str
    # For regional services in settings.region: buckets, Pub/Sub, Secret Manager, Artifact
    # Registry, the Vertex AI endpoint.
    regional_key: str

    @field_validator("multi_region_key", "regional_key")
    @classmethod
    def _key_name(cls, v: str) -> str:
        if not _KMS_KEY.match(v):
            raise ValueError(
                "expected projects/P/locations/L/keyRings/R/cryptoKeys/K, got " + repr(v)
            )
        return v

    @staticmethod
    def location_of(key: str) -> str:
        m = _KMS_KEY.match(key)
        assert m is not None  # validated on construction
        return m.group("location")


class FunctionSettings(_Strict):
    runtime: Literal["python311", "python312"] = "python311"
    min_instances: int = Field(default=0, ge=0, le=100)
    max_instances: int = Field(default=10, ge=1, le=1000)
    memory: str = Field(default="1Gi", pattern=r"^[0-9]+(Mi|Gi)$")
    cpu: str = Field(default="1", pattern=r"^[0-9]+(\.[0-9]+)?$")
    timeout_s: int = Field(default=540, ge=1, le=540)
    # One event at a time per instance: the handler is not written for concurrent requests.
    concurrency: int = Field(default=1, ge=1, le=1000)
    # Eventarc location of the audit-log trigger; None → the warehouse's location (an insert
    # job's audit entry is emitted where the job runs, i.e. where the dataset lives).
    trigger_region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")

    @model_validator(mode="after")
    def _bounds(self) -> FunctionSettings:
        if self.min_instances > self.max_instances:
            raise ValueError("function.min_instances is larger than function.max_instances")
        return self


class EndpointSettings(_Strict):
    display_name: str = "sales-forecast"
    # Share of online predictions logged to BigQuery (request and response).
    logging_sampling_rate: float = Field(default=1.0, gt=0.0, le=1.0)


class SchedulerSettings(_Strict):
    time_zone: str = "Etc/UTC"
    monitoring_cron: str = "0 6 * * *"
    retraining_cron: str = "0 3 * * 1"
    paused: bool = False

    @field_validator("monitoring_cron", "retraining_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not _CRON.match(v.strip()):
            raise ValueError(f"not a five-field unix cron expression: {v!r}")
        return v.strip()


class AlertingSettings(_Strict):
    notification_emails: list[str] = Field(default_factory=list)
    # 5xx responses of the function within one 5-minute window that open an incident.
    function_errors_per_5m: int = Field(default=5, ge=0)
    # Events the function gave up on (published to the dead-letter topic) within 5 minutes.
    dead_letters_per_5m: int = Field(default=0, ge=0)
    # 99th percentile of online prediction latency, milliseconds, over 5 minutes.
    endpoint_latency_p99_ms: float = Field(default=2000.0, gt=0)
    auto_close_days: int = Field(default=7, ge=1, le=30)

    @field_validator("notification_emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if "@" not in e or e.startswith("@") or e.endswith("@")]
        if bad:
            raise ValueError(f"not an email address: {bad[0]!r}")
        return v


class InfraSettings(_Strict):
    # Created once by hand (it holds the state of everything else); see docs/infra.md.
    state_bucket: str = Field(default=..., pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
    state_prefix: str = "salesloop"
    deletion_protection: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    cmek: CmekSettings | None = None
    artifact_repository: str = Field(
        default="salesloop", pattern=r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
    )
    dead_letter_retention_days: int = Field(default=7, ge=1, le=31)
    function: FunctionSettings = FunctionSettings()
    endpoint: EndpointSettings = EndpointSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    alerting: AlertingSettings = AlertingSettings()

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not _LABEL_KEY.match(key) or not _LABEL.match(value):
                raise ValueError(f"not a valid GCP label: {key}={value!r}")
        reserved = {"env", "app", "owner"} & set(v)
        if reserved:
            raise ValueError(f"labels {sorted(reserved)} are set from the settings, not here")
        return v


def infra_settings(settings: Settings) -> InfraSettings:
    """Validate ``settings.infra`` and the rules that span sections; raise :class:`SettingsError`."""
    if settings.env == "local":
        raise SettingsError("the local environment has no cloud infrastructure")
    try:
        infra = InfraSettings.model_validate(settings.infra)
    except ValidationError as exc:
        problems = [
            f"infra.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise SettingsError(
            f"invalid settings for {settings.env}:\n  " + "\n  ".join(problems)
        ) from None
    problems = []
    if settings.warehouse.backend != "bigquery":
        problems.append("warehouse.backend must be bigquery in a cloud environment")
    if not _ENDPOINT_ID.match(settings.predictor.endpoint_id):
        # Vertex accepts only digits for a user-chosen endpoint id; the function calls the same id.
        problems.append(
            f"predictor.endpoint_id {settings.predictor.endpoint_id!r} must be numeric "
            "(at most 10 digits, no leading zero) in a cloud environment"
        )
    if not _LABEL.match(settings.owner.lower()):
        problems.append(f"owner {settings.owner!r} is not a valid label value")
    if infra.cmek is not None:
        multi = CmekSettings.location_of(infra.cmek.multi_region_key)
        regional = CmekSettings.location_of(infra.cmek.regional_key)
        if multi != settings.warehouse.location.lower():
            problems.append(
                f"infra.cmek.multi_region_key is in {multi!r} but the warehouse is in "
                f"{settings.warehouse.location!r}"
            )
        if regional != settings.region:
            problems.append(
                f"infra.cmek.regional_key is in {regional!r} but the region is {settings.region!r}"
            )
    if problems:
        raise SettingsError(f"invalid settings for {settings.env}:\n  " + "\n  ".join(problems))
    return infra
