"""One service account per workload, with only the project-level roles that have no narrower scope.

Everything that can be granted on a resource (dataset, table, secret, topic, bucket, repository,
Cloud Run service, another service account) is granted there, in :mod:`modules.access`, so the
project-level list below stays short and reviewable. No basic role (owner/editor/viewer) anywhere;
tests/infra enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn_provider_google.project_iam_member import ProjectIamMember
from cdktn_provider_google.service_account import ServiceAccount
from constructs import Construct

from modules.context import StackContext, named


@dataclass(frozen=True)
class Workload:
    key: str
    account_id: str
    description: str
    project_roles: tuple[str, ...]


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "function",
        "on-sale-fn",
        "on_sale function runtime: reads sales, writes forecasts/alerts, calls the endpoint",
        # Query jobs run in the project; Vertex online prediction has no per-endpoint role.
        ("roles/bigquery.jobUser", "roles/aiplatform.user"),
    ),
    Workload(
        "trigger",
        "on-sale-trigger",
        "Eventarc trigger identity: receives audit-log events, invokes on_sale",
        ("roles/eventarc.eventReceiver",),
    ),
    Workload(
        "build",
        "on-sale-build",
        "Cloud Build identity of the function build: reads the source, pushes the image",
        ("roles/logging.logWriter",),
    ),
    Workload(
        "serving",
        "model-serving",
        "Model server container on the Vertex AI endpoint: pulls the image, reads model artifacts",
        (),
    ),
    Workload(
        "pipelines",
        "pipelines",
        "Vertex AI pipelines (training, monitoring): read the warehouse, register and deploy models",
        ("roles/bigquery.jobUser", "roles/aiplatform.user"),
    ),
    Workload(
        "scheduler",
        "scheduler",
        "Cloud Scheduler caller: starts the monitoring and retraining pipeline runs",
        ("roles/aiplatform.user",),
    ),
)


class ServiceIdentities(Construct):
    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        self.accounts: dict[str, ServiceAccount] = {}
        self.project_grants: dict[str, list[ProjectIamMember]] = {}
        for w in WORKLOADS:
            sa = ServiceAccount(
                self,
                w.key,
                account_id=w.account_id,
                display_name=f"salesloop {w.account_id} ({ctx.env})",
                description=w.description,
                project=ctx.project,
            )
            self.accounts[w.key] = named(sa, f"sa_{w.key}")
            self.project_grants[w.key] = []
            for role in w.project_roles:
                grant = named(
                    ProjectIamMember(
                        self,
                        f"{w.key}-{role}",
                        project=ctx.project,
                        role=role,
                        member=f"serviceAccount:{sa.email}",
                    ),
                    f"iam_{w.key}_{role.removeprefix('roles/').replace('.', '_')}",
                )
                self.project_grants[w.key].append(grant)

    def email(self, key: str) -> str:
        return self.accounts[key].email

    def member(self, key: str) -> str:
        return f"serviceAccount:{self.accounts[key].email}"

    def sa_id(self, key: str) -> str:
        """``projects/P/serviceAccounts/EMAIL``, the form build_config and IAM on SAs want."""
        return self.accounts[key].name
