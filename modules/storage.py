"""Buckets, all built the same locked-down way: uniform access, public access prevention
enforced, versioning, regional, CMEK when configured."""

from __future__ import annotations

from cdktn_provider_google.storage_bucket import StorageBucket, StorageBucketLifecycleRule
from constructs import Construct

from modules.context import StackContext, checkov_skip, named


def private_bucket(
    scope: Construct, id_: str, *, ctx: StackContext, name: str, component: str, logical_id: str
) -> StorageBucket:
    key = ctx.regional_key
    bucket = StorageBucket(
        scope,
        id_,
        name=name,
        project=ctx.project,
        location=ctx.region.upper(),
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning={"enabled": True},
        force_destroy=not ctx.deletion_protection,
        encryption={"default_kms_key_name": key} if key else None,
        # Old object versions are kept for rollback for a while, not forever.
        lifecycle_rule=[
            StorageBucketLifecycleRule(
                action={"type": "Delete"},
                condition={"days_since_noncurrent_time": 30, "with_state": "ARCHIVED"},
            )
        ],
        labels=ctx.labels(component),
        depends_on=ctx.kms_grants or None,
    )
    named(bucket, logical_id)
    checkov_skip(
        bucket,
        "CKV_GCP_62",
        "object access is recorded by Cloud Audit Logs; a usage-log bucket per bucket adds cost, not evidence",
    )
    return bucket


class PipelineStorage(Construct):
    """Pipeline root and model artifacts of the Vertex AI pipelines."""

    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        self.bucket = private_bucket(
            self,
            "bucket",
            ctx=ctx,
            name=f"{ctx.project}-pipelines",
            component="pipelines",
            logical_id="pipelines_bucket",
        )

    @property
    def root(self) -> str:
        return f"gs://{self.bucket.name}"
