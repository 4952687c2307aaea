"""The Vertex AI PipelineJob for ``salesloop pipeline submit --env dev``.

The same compiled YAML that ``salesloop pipeline compile`` writes runs on Vertex AI Pipelines; what
differs per environment is here: project, region, pipeline root (the pipelines bucket the stack
creates), the service account the steps run as (``pipelines@`` from the stack's service
identities), labels, and the run parameters. :func:`build_pipeline_job` constructs the job without
any network call (the tests build it with anonymous credentials); :func:`submit` is the only
function that talks to Google Cloud and is never called from the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.auth.credentials import Credentials

from salesloop.config import Settings
from salesloop.training_settings import TrainingSettings, training_settings


@dataclass(frozen=True)
class PipelineSubmission:
    """Everything a submission needs; ``job`` is the constructed (unsubmitted) PipelineJob."""

    job: Any
    project: str
    location: str
    template_path: str
    pipeline_root: str
    service_account: str
    parameters: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "location": self.location,
            "template_path": self.template_path,
            "pipeline_root": self.pipeline_root,
            "service_account": self.service_account,
            "parameters": self.parameters,
            "labels": self.labels,
            "job_id": getattr(self.job, "job_id", None),
        }


def cloud_parameters(settings: Settings, train: TrainingSettings) -> dict[str, Any]:
    """Run parameters of the pipeline in a cloud environment (the YAML's inputs)."""
    return {
        "env": settings.env,
        "history_days": int(train.history_days or settings.warehouse.history_days),
        "end_date": "",
        "series_filter": "",
        "registry_root": f"{train.vertex.pipeline_root}/registry",
        "endpoint_id": settings.predictor.endpoint_id,
    }


def build_pipeline_job(
    settings: Settings,
    template_path: Path | str,
    *,
    parameters: Mapping[str, Any] | None = None,
    credentials: Credentials | None = None,
    job_id: str | None = None,
) -> PipelineSubmission:
    """Construct the PipelineJob for ``settings``' environment from a compiled template."""
    from google.cloud import aiplatform

    if settings.env == "local":
        raise ValueError("the local environment runs pipelines with `salesloop pipeline run`")
    template = Path(template_path)
    if not template.is_file():
        raise FileNotFoundError(
            f"{template}: no compiled pipeline; run `salesloop pipeline compile`"
        )
    train = training_settings(settings)
    assert train.vertex.pipeline_root and train.vertex.service_account  # resolved defaults
    params = {**cloud_parameters(settings, train), **dict(parameters or {})}
    labels = {"app": "salesloop", "env": settings.env, "component": "training"}
    job_id = job_id or f"salesloop-training-{settings.env}-{datetime.now(UTC):%Y%m%d%H%M%S}"
    job = aiplatform.PipelineJob(
        display_name=train.vertex.display_name,
        template_path=str(template),
        job_id=job_id,
        pipeline_root=train.vertex.pipeline_root,
        parameter_values=params,
        enable_caching=train.vertex.enable_caching,
        labels=labels,
        credentials=credentials,
        project=settings.project,
        location=settings.region,
    )
    return PipelineSubmission(
        job=job,
        project=settings.project,
        location=settings.region,
        template_path=str(template),
        pipeline_root=train.vertex.pipeline_root,
        service_account=train.vertex.service_account,
        parameters=params,
        labels=labels,
    )


def submit(submission: PipelineSubmission) -> str:  # pragma: no cover - needs Google Cloud
    """Send the job to Vertex AI Pipelines as the pipelines service account; return its name."""
    submission.job.submit(service_account=submission.service_account)
    return str(submission.job.resource_name)
