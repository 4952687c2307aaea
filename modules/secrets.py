"""The SMTP password's Secret Manager secret: the container only.

No ``google_secret_manager_secret_version`` is ever declared: a value in Terraform would sit in
plain text in the state file. The value is added out of band (docs/infra.md) and read by the
function through Secret Manager at instance start.
"""

from __future__ import annotations

from cdktn_provider_google.secret_manager_secret import (
    SecretManagerSecret,
    SecretManagerSecretReplicationUserManagedReplicas,
)
from constructs import Construct

from modules.context import StackContext, named


class Secrets(Construct):
    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        key = ctx.regional_key
        replica = SecretManagerSecretReplicationUserManagedReplicas(
            location=ctx.region,
            customer_managed_encryption={"kms_key_name": key} if key else None,
        )
        self.smtp = named(
            SecretManagerSecret(
                self,
                "smtp",
                secret_id=ctx.settings.smtp.secret_name,
                project=ctx.project,
                # One region keeps the password where the function runs (data residency).
                replication={"user_managed": {"replicas": [replica]}},
                labels=ctx.labels("alerts"),
                deletion_protection=ctx.deletion_protection,
                depends_on=ctx.kms_grants or None,
            ),
            "secret_smtp_password",
        )
