"""Artifact Registry: container images (serving, training), function builds, pipeline templates.

Three repositories so that each writer can write only its own: the function's build identity can
push function images but not replace the serving image; pipeline templates (KFP) are versioned
beside the images they run. Prod tags are immutable: promotion moves a digest, never a tag.
"""

from __future__ import annotations

from cdktn_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepository,
    ArtifactRegistryRepositoryCleanupPolicies,
)
from constructs import Construct

from modules.context import StackContext, named


class ArtifactRegistry(Construct):
    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        base = ctx.infra.artifact_repository
        self.images = self._repo(ctx, "images", base, "DOCKER", "Serving and training images")
        self.functions = self._repo(
            ctx, "functions", f"{base}-functions", "DOCKER", "Cloud Functions build output"
        )
        self.pipelines = self._repo(
            ctx, "pipelines", f"{base}-pipelines", "KFP", "Compiled pipeline templates"
        )

    def _repo(
        self, ctx: StackContext, key: str, repository_id: str, fmt: str, description: str
    ) -> ArtifactRegistryRepository:
        repo = ArtifactRegistryRepository(
            self,
            key,
            repository_id=repository_id,
            location=ctx.region,
            format=fmt,
            description=description,
            project=ctx.project,
            kms_key_name=ctx.regional_key,
            docker_config={"immutable_tags": ctx.deletion_protection} if fmt == "DOCKER" else None,
            cleanup_policies=[
                ArtifactRegistryRepositoryCleanupPolicies(
                    id="delete-untagged",
                    action="DELETE",
                    condition={"tag_state": "UNTAGGED", "older_than": "2592000s"},
                )
            ]
            if fmt == "DOCKER"
            else None,
            labels=ctx.labels("registry"),
            depends_on=ctx.kms_grants or None,
        )
        ctx.accept_no_cmek(repo, "CKV_GCP_84")
        return named(repo, f"registry_{key}")

    def docker_host(self, ctx: StackContext) -> str:
        return f"{ctx.region}-docker.pkg.dev"

    def image(self, ctx: StackContext, name: str, tag: str = "latest") -> str:
        repo = ctx.infra.artifact_repository
        return f"{self.docker_host(ctx)}/{ctx.project}/{repo}/{name}:{tag}"

    def template_uri(self, ctx: StackContext, pipeline: str, tag: str = "latest") -> str:
        repo = f"{ctx.infra.artifact_repository}-pipelines"
        return f"https://{ctx.region}-kfp.pkg.dev/{ctx.project}/{repo}/{pipeline}/{tag}"
