"""Cloud Scheduler jobs that start the monitoring and the retraining pipeline runs.

Each job POSTs a PipelineJob to Vertex AI from a compiled template in the KFP repository, so a
new pipeline version ships by pushing a template tag, not by changing infrastructure. The call
is authenticated with an OAuth token of the scheduler's own service account; the pipeline runs
as the pipelines service account (the scheduler may act as that one only).
"""

from __future__ import annotations

import base64
import json

from cdktn_provider_google.cloud_scheduler_job import CloudSchedulerJob
from constructs import Construct

from modules.context import StackContext, named

PIPELINES = {
    # job key → (template package in the KFP repository, schedule setting)
    "monitoring": "monitoring",
    "retraining": "training",
}


def pipeline_job_body(
    ctx: StackContext, *, pipeline: str, template_uri: str, service_account: str, root: str
) -> dict[str, object]:
    return {
        "displayName": f"{pipeline}-scheduled",
        "templateUri": template_uri,
        "serviceAccount": service_account,
        "labels": {"env": ctx.env, "app": "salesloop", "trigger": "scheduler"},
        "runtimeConfig": {
            "gcsOutputDirectory": f"{root}/root",  # = training.vertex.pipeline_root default
            "parameterValues": {"env": ctx.env},
        },
    }


class Scheduler(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        ctx: StackContext,
        caller_sa: str,
        pipelines_sa: str,
        pipeline_root: str,
        template_uris: dict[str, str],
    ) -> None:
        super().__init__(scope, id_)
        conf = ctx.infra.scheduler
        url = (
            f"https://{ctx.region}-aiplatform.googleapis.com/v1/projects/{ctx.project}"
            f"/locations/{ctx.region}/pipelineJobs"
        )
        crons = {"monitoring": conf.monitoring_cron, "retraining": conf.retraining_cron}
        self.jobs: dict[str, CloudSchedulerJob] = {}
        for key, pipeline in PIPELINES.items():
            body = pipeline_job_body(
                ctx,
                pipeline=pipeline,
                template_uri=template_uris[pipeline],
                service_account=pipelines_sa,
                root=pipeline_root,
            )
            job = CloudSchedulerJob(
                self,
                key,
                name=f"salesloop-{key}",
                description=f"Start the {pipeline} pipeline ({ctx.env})",
                project=ctx.project,
                region=ctx.region,
                schedule=crons[key],
                time_zone=conf.time_zone,
                paused=conf.paused,
                attempt_deadline="320s",
                retry_config={"retry_count": 3, "min_backoff_duration": "60s"},
                http_target={
                    "uri": url,
                    "http_method": "POST",
                    "headers": {"Content-Type": "application/json"},
                    # Sorted keys: the same settings always synthesize the same bytes.
                    "body": base64.b64encode(json.dumps(body, sort_keys=True).encode()).decode(),
                    "oauth_token": {
                        "service_account_email": caller_sa,
                        "scope": "https://www.googleapis.com/auth/cloud-platform",
                    },
                },
            )
            self.jobs[key] = named(job, f"scheduler_{key}")
