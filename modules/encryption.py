"""CMEK: let each Google service agent use the environment's keys (only when keys are configured).

The keys themselves are created once by hand (a key ring cannot be deleted, so it must not live in
a stack that can be destroyed); the stack grants encrypt/decrypt on them to the service agents of
the services that store data: BigQuery, Cloud Storage, Pub/Sub, Secret Manager, Artifact
Registry, Vertex AI, Cloud Functions/Run. Agent addresses are derived from the project number.
"""

from __future__ import annotations

from cdktn import TerraformResource
from cdktn_provider_google.kms_crypto_key_iam_member import KmsCryptoKeyIamMember
from constructs import Construct

from modules.context import StackContext, named

# service → agent address pattern ({n} = project number)
REGIONAL_AGENTS = {
    "bigquery": "bq-{n}@bigquery-encryption.iam.gserviceaccount.com",
    "storage": "service-{n}@gs-project-accounts.iam.gserviceaccount.com",
    "pubsub": "service-{n}@gcp-sa-pubsub.iam.gserviceaccount.com",
    "secretmanager": "service-{n}@gcp-sa-secretmanager.iam.gserviceaccount.com",
    "artifactregistry": "service-{n}@gcp-sa-artifactregistry.iam.gserviceaccount.com",
    "aiplatform": "service-{n}@gcp-sa-aiplatform.iam.gserviceaccount.com",
    "cloudfunctions": "service-{n}@gcf-admin-robot.iam.gserviceaccount.com",
    "run": "service-{n}@serverless-robot-prod.iam.gserviceaccount.com",
}
MULTI_REGION_AGENTS = {"bigquery": REGIONAL_AGENTS["bigquery"]}


class Encryption(Construct):
    def __init__(
        self, scope: Construct, id_: str, *, ctx: StackContext, project_number: str
    ) -> None:
        super().__init__(scope, id_)
        self.grants: list[TerraformResource] = []
        if ctx.infra.cmek is None:
            return
        for scope_name, key, agents in (
            ("regional", ctx.infra.cmek.regional_key, REGIONAL_AGENTS),
            ("multi_region", ctx.infra.cmek.multi_region_key, MULTI_REGION_AGENTS),
        ):
            for service, pattern in agents.items():
                grant = KmsCryptoKeyIamMember(
                    self,
                    f"{scope_name}-{service}",
                    crypto_key_id=key,
                    role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
                    member="serviceAccount:" + pattern.format(n=project_number),
                )
                self.grants.append(named(grant, f"cmek_{scope_name}_{service}"))
        ctx.kms_grants.extend(self.grants)
