"""The ``on_sale`` Cloud Function (gen2), its source, and the Eventarc audit-log trigger.

The trigger listens for ``google.cloud.audit.log.v1.written`` entries of BigQuery's
``JobService.InsertJob`` on exactly the sales table (the table data change is logged with the
table as resource name), so loads into other tables never wake the function. Ingress is
internal-only (Eventarc delivers internally); retries are on because the handler is idempotent
(dedup ledger + MERGE). The SMTP password comes from Secret Manager as a secret environment
variable: Terraform holds the secret's name, never its value.
"""

from __future__ import annotations

from pathlib import Path

from cdktn import AssetType, TerraformAsset
from cdktn_provider_google.cloudfunctions2_function import (
    Cloudfunctions2Function,
)
from cdktn_provider_google.cloudfunctions2_function import (
    Cloudfunctions2FunctionEventTriggerEventFilters as EventFilter,
)
from cdktn_provider_google.cloudfunctions2_function import (
    Cloudfunctions2FunctionServiceConfigSecretEnvironmentVariables as SecretEnv,
)
from cdktn_provider_google.storage_bucket_object import StorageBucketObject
from constructs import Construct

from modules.context import StackContext, named
from modules.function_archive import FunctionArchive, build_archive
from modules.storage import private_bucket
from salesloop.secrets import env_var_name

FUNCTION_NAME = "on-sale"
ENTRY_POINT = "on_sale"
EVENT_TYPE = "google.cloud.audit.log.v1.written"
INSERT_JOB = "google.cloud.bigquery.v2.JobService.InsertJob"


class EventFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        ctx: StackContext,
        runtime_sa: str,
        trigger_sa: str,
        build_sa_id: str,
        docker_repository: str,
        sales_table_resource_name: str,
        smtp_secret_id: str,
        dead_letter_topic: str,
        archive_dir: Path,
    ) -> None:
        super().__init__(scope, id_)
        fn = ctx.infra.function
        self.bucket = private_bucket(
            self,
            "source-bucket",
            ctx=ctx,
            name=f"{ctx.project}-functions-source",
            component="function",
            logical_id="function_source_bucket",
        )
        self.archive: FunctionArchive = build_archive(ctx.repo_root, ENTRY_POINT, archive_dir)
        asset = TerraformAsset(
            self,
            "source-archive",
            path=str(self.archive.path.resolve()),
            type=AssetType.FILE,
            asset_hash=self.archive.short_digest,
        )
        self.source_object = named(
            StorageBucketObject(
                self,
                "source-object",
                bucket=self.bucket.name,
                name=f"{ENTRY_POINT}/{self.archive.short_digest}.zip",
                source=asset.path,
                content_type="application/zip",
            ),
            "function_source_object",
        )
        # The name the runtime's environment secret store reads (SALESLOOP_SECRET_SMTP_PASSWORD).
        secret_env = env_var_name(ctx.settings.smtp.secret_name)
        self.function = named(
            Cloudfunctions2Function(
                self,
                "function",
                name=FUNCTION_NAME,
                location=ctx.region,
                project=ctx.project,
                description="Forecast the series touched by each insert job into the sales table",
                kms_key_name=ctx.regional_key,
                build_config={
                    "runtime": fn.runtime,
                    "entry_point": ENTRY_POINT,
                    "service_account": build_sa_id,
                    "docker_repository": docker_repository,
                    "source": {
                        "storage_source": {
                            "bucket": self.bucket.name,
                            "object": self.source_object.name,
                        }
                    },
                },
                service_config={
                    "min_instance_count": fn.min_instances,
                    "max_instance_count": fn.max_instances,
                    "available_memory": fn.memory,
                    "available_cpu": fn.cpu,
                    "timeout_seconds": fn.timeout_s,
                    "max_instance_request_concurrency": fn.concurrency,
                    "ingress_settings": "ALLOW_INTERNAL_ONLY",
                    "all_traffic_on_latest_revision": True,
                    "service_account_email": runtime_sa,
                    "environment_variables": {
                        "SALESLOOP_ENV": ctx.env,
                        "DEAD_LETTER_TOPIC": dead_letter_topic,
                        "LOG_EXECUTION_ID": "true",
                    },
                    "secret_environment_variables": [
                        SecretEnv(
                            key=secret_env,
                            project_id=ctx.project,
                            secret=smtp_secret_id,
                            version="latest",
                        )
                    ],
                },
                event_trigger={
                    "event_type": EVENT_TYPE,
                    "trigger_region": fn.trigger_region or ctx.settings.warehouse.location.lower(),
                    "retry_policy": "RETRY_POLICY_RETRY",
                    "service_account_email": trigger_sa,
                    "event_filters": [
                        EventFilter(attribute="serviceName", value="bigquery.googleapis.com"),
                        EventFilter(attribute="methodName", value=INSERT_JOB),
                        EventFilter(attribute="resourceName", value=sales_table_resource_name),
                    ],
                },
                labels=ctx.labels("function"),
                depends_on=ctx.kms_grants or None,
            ),
            "function_on_sale",
        )

    @property
    def service(self) -> str:
        """The Cloud Run service behind the function (where run.invoker is granted)."""
        return self.function.service_config.service
