"""Every resource-level grant of the stack, in one place to review.

The rule: a workload gets a role on the one resource it uses (dataset, table, secret, topic,
bucket, repository, service, service account) rather than on the project. Project-level roles,
kept for what has no narrower scope, are in :mod:`modules.service_identities`.
"""

from __future__ import annotations

from cdktn import TerraformResource
from cdktn_provider_google.artifact_registry_repository_iam_member import (
    ArtifactRegistryRepositoryIamMember,
)
from cdktn_provider_google.bigquery_dataset_iam_member import BigqueryDatasetIamMember
from cdktn_provider_google.bigquery_table_iam_member import BigqueryTableIamMember
from cdktn_provider_google.cloud_run_v2_service_iam_member import CloudRunV2ServiceIamMember
from cdktn_provider_google.pubsub_topic_iam_member import PubsubTopicIamMember
from cdktn_provider_google.secret_manager_secret_iam_member import SecretManagerSecretIamMember
from cdktn_provider_google.service_account_iam_member import ServiceAccountIamMember
from cdktn_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from constructs import Construct

from modules.artifact_registry import ArtifactRegistry
from modules.context import StackContext, named
from modules.dead_letter import DeadLetter
from modules.event_function import EventFunction
from modules.model_endpoint import ModelEndpoint
from modules.secrets import Secrets
from modules.service_identities import ServiceIdentities
from modules.storage import PipelineStorage
from modules.warehouse import Warehouse

# Tables the pipelines write (training registers versions, monitoring writes metrics); every
# other table they only read.
PIPELINE_WRITES = ("model_versions", "monitoring_metrics")


class Access(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        ctx: StackContext,
        ids: ServiceIdentities,
        warehouse: Warehouse,
        endpoint: ModelEndpoint,
        secrets: Secrets,
        dead_letter: DeadLetter,
        function: EventFunction,
        registry: ArtifactRegistry,
        pipeline_storage: PipelineStorage,
        project_number: str,
    ) -> None:
        super().__init__(scope, id_)
        # Grants the function's deployment needs in place first: Cloud Functions checks secret
        # access at deploy time, and the build reads the source and pushes its image.
        self.function_prerequisites: list[TerraformResource] = []

        def dataset(key: str, dataset_id: str, role: str, member: str) -> None:
            named(
                BigqueryDatasetIamMember(
                    self, key, dataset_id=dataset_id, role=role, member=member, project=ctx.project
                ),
                f"access_{key.replace('-', '_')}",
            )

        # Warehouse: the function reads sales and writes forecasts, alerts, the ledger.
        dataset(
            "function-warehouse",
            warehouse.dataset.dataset_id,
            "roles/bigquery.dataEditor",
            ids.member("function"),
        )
        dataset(
            "pipelines-warehouse",
            warehouse.dataset.dataset_id,
            "roles/bigquery.dataViewer",
            ids.member("pipelines"),
        )
        for logical in PIPELINE_WRITES:
            named(
                BigqueryTableIamMember(
                    self,
                    f"pipelines-{logical}",
                    project=ctx.project,
                    dataset_id=warehouse.dataset.dataset_id,
                    table_id=warehouse.tables[logical].table_id,
                    role="roles/bigquery.dataEditor",
                    member=ids.member("pipelines"),
                ),
                f"access_pipelines_{logical}",
            )
        # Vertex AI writes the endpoint's request/response log rows as its service agent.
        dataset(
            "vertex-serving-logs",
            endpoint.logs_dataset.dataset_id,
            "roles/bigquery.dataEditor",
            f"serviceAccount:service-{project_number}@gcp-sa-aiplatform.iam.gserviceaccount.com",
        )
        dataset(
            "pipelines-serving-logs",
            endpoint.logs_dataset.dataset_id,
            "roles/bigquery.dataViewer",
            ids.member("pipelines"),
        )

        secret_access = named(
            SecretManagerSecretIamMember(
                self,
                "function-smtp",
                project=ctx.project,
                secret_id=secrets.smtp.secret_id,
                role="roles/secretmanager.secretAccessor",
                member=ids.member("function"),
            ),
            "access_function_smtp_secret",
        )
        self.function_prerequisites.append(secret_access)
        named(
            PubsubTopicIamMember(
                self,
                "function-dead-letter",
                project=ctx.project,
                topic=dead_letter.topic.name,
                role="roles/pubsub.publisher",
                member=ids.member("function"),
            ),
            "access_function_dead_letter",
        )
        named(
            CloudRunV2ServiceIamMember(
                self,
                "trigger-invoke",
                project=ctx.project,
                location=ctx.region,
                name=function.service,
                role="roles/run.invoker",
                member=ids.member("trigger"),
            ),
            "access_trigger_invoke_function",
        )

        def bucket(key: str, name: str, role: str, member: str) -> StorageBucketIamMember:
            return named(
                StorageBucketIamMember(self, key, bucket=name, role=role, member=member),
                f"access_{key.replace('-', '_')}",
            )

        build_source = bucket(
            "build-source", function.bucket.name, "roles/storage.objectViewer", ids.member("build")
        )
        bucket(
            "pipelines-bucket",
            pipeline_storage.bucket.name,
            "roles/storage.objectAdmin",
            ids.member("pipelines"),
        )
        bucket(
            "serving-models",
            pipeline_storage.bucket.name,
            "roles/storage.objectViewer",
            ids.member("serving"),
        )

        def repo(
            key: str, repository: str, role: str, member: str
        ) -> ArtifactRegistryRepositoryIamMember:
            return named(
                ArtifactRegistryRepositoryIamMember(
                    self,
                    key,
                    project=ctx.project,
                    location=ctx.region,
                    repository=repository,
                    role=role,
                    member=member,
                ),
                f"access_{key.replace('-', '_')}",
            )

        build_push = repo(
            "build-functions",
            registry.functions.name,
            "roles/artifactregistry.writer",
            ids.member("build"),
        )
        repo(
            "serving-images",
            registry.images.name,
            "roles/artifactregistry.reader",
            ids.member("serving"),
        )
        repo(
            "pipelines-images",
            registry.images.name,
            "roles/artifactregistry.reader",
            ids.member("pipelines"),
        )
        repo(
            "pipelines-templates",
            registry.pipelines.name,
            "roles/artifactregistry.reader",
            ids.member("pipelines"),
        )
        repo(
            "scheduler-templates",
            registry.pipelines.name,
            "roles/artifactregistry.reader",
            ids.member("scheduler"),
        )

        def act_as(key: str, target: str, member: str) -> None:
            named(
                ServiceAccountIamMember(
                    self,
                    key,
                    service_account_id=ids.sa_id(target),
                    role="roles/iam.serviceAccountUser",
                    member=member,
                ),
                f"access_{key.replace('-', '_')}",
            )

        # The scheduler starts runs as the pipelines identity; the rollout step deploys models
        # that run as the serving identity. Nothing else may act as another identity.
        self.function_prerequisites += [build_source, build_push]
        act_as("scheduler-as-pipelines", "pipelines", ids.member("scheduler"))
        act_as("pipelines-as-serving", "serving", ids.member("pipelines"))
