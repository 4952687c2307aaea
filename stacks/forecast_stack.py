"""The whole salesloop deployment of one environment."""

from __future__ import annotations

from pathlib import Path

from cdktn import GcsBackend, TerraformOutput, TerraformStack
from cdktn_provider_google.data_google_project import DataGoogleProject
from cdktn_provider_google.provider import GoogleProvider
from constructs import Construct

from modules.access import Access
from modules.alerting import Alerting
from modules.artifact_registry import ArtifactRegistry
from modules.audit_log import AuditLogConfig
from modules.context import StackContext
from modules.dead_letter import DeadLetter
from modules.encryption import Encryption
from modules.event_function import FUNCTION_NAME, EventFunction
from modules.model_endpoint import ModelEndpoint
from modules.scheduler import Scheduler
from modules.secrets import Secrets
from modules.service_identities import ServiceIdentities
from modules.storage import PipelineStorage
from modules.warehouse import Warehouse
from salesloop.config import Settings
from salesloop.infra_settings import infra_settings


class ForecastStack(TerraformStack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        repo_root: Path,
        archive_dir: Path,
    ) -> None:
        super().__init__(scope, id_)
        infra = infra_settings(settings)
        ctx = StackContext(settings=settings, infra=infra, repo_root=repo_root)

        GoogleProvider(self, "google", project=settings.project, region=settings.region)
        GcsBackend(self, bucket=infra.state_bucket, prefix=f"{infra.state_prefix}/{settings.env}")
        project = DataGoogleProject(self, "project", project_id=settings.project)
        project.override_logical_id("project")
        number = project.number

        Encryption(self, "encryption", ctx=ctx, project_number=number)
        AuditLogConfig(self, "audit-log", ctx=ctx)
        ids = ServiceIdentities(self, "identities", ctx=ctx)
        warehouse = Warehouse(self, "warehouse", ctx=ctx)
        secrets = Secrets(self, "secrets", ctx=ctx)
        dead_letter = DeadLetter(self, "dead-letter", ctx=ctx)
        registry = ArtifactRegistry(self, "registry", ctx=ctx)
        storage = PipelineStorage(self, "pipeline-storage", ctx=ctx)
        function = EventFunction(
            self,
            "on-sale",
            ctx=ctx,
            runtime_sa=ids.email("function"),
            trigger_sa=ids.email("trigger"),
            build_sa_id=ids.sa_id("build"),
            docker_repository=registry.functions.id,
            sales_table_resource_name=warehouse.table_resource_name(ctx, "sales"),
            smtp_secret_id=secrets.smtp.secret_id,
            dead_letter_topic=dead_letter.topic.id,
            archive_dir=archive_dir,
        )
        endpoint = ModelEndpoint(self, "endpoint", ctx=ctx)
        # Literal addresses (not tokens): they go into the base64 request bodies of the jobs.
        pipelines_sa = f"pipelines@{settings.project}.iam.gserviceaccount.com"
        Scheduler(
            self,
            "scheduler",
            ctx=ctx,
            caller_sa=ids.email("scheduler"),
            pipelines_sa=pipelines_sa,
            pipeline_root=f"gs://{settings.project}-pipelines",
            template_uris={p: registry.template_uri(ctx, p) for p in ("monitoring", "training")},
        )
        Alerting(
            self,
            "alerting",
            ctx=ctx,
            function_service=FUNCTION_NAME,
            dead_letter_topic=dead_letter.topic.name,
            endpoint_id=settings.predictor.endpoint_id,
        )
        access = Access(
            self,
            "access",
            ctx=ctx,
            ids=ids,
            warehouse=warehouse,
            endpoint=endpoint,
            secrets=secrets,
            dead_letter=dead_letter,
            function=function,
            registry=registry,
            pipeline_storage=storage,
            project_number=number,
        )
        # The function deploys only once its identities can do their part (see Access).
        prerequisites = [
            *access.function_prerequisites,
            *ids.project_grants["build"],
            *ids.project_grants["function"],
        ]
        fn = function.function
        fn.depends_on = [
            *(fn.depends_on or []),
            *(f"{r.terraform_resource_type}.{r.friendly_unique_id}" for r in prerequisites),
        ]
        self.archive = function.archive
        for name, value in (
            ("function_source_object", function.source_object.name),
            ("endpoint_id", settings.predictor.endpoint_id),
            ("images_repository", registry.image(ctx, "serving").rsplit("/", 1)[0]),
            ("dead_letter_topic", dead_letter.topic.id),
        ):
            TerraformOutput(self, name, value=value)
