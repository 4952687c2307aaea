"""What every construct of one environment's stack needs: settings, names, labels, keys.

Logical ids are set explicitly (``<entity>_<name>``) instead of cdktn's path hashes so that the
synthesized addresses are readable in inventories, in ``salesloop infra diff`` and in
``terraform plan``, and so that dev and prod have the same addresses (which is what makes a
dev-vs-prod diff meaningful).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cdktn import TerraformResource

from salesloop.config import Settings
from salesloop.infra_settings import InfraSettings

APP_LABEL = "salesloop"
R = TypeVar("R", bound=TerraformResource)


@dataclass(frozen=True)
class StackContext:
    settings: Settings
    infra: InfraSettings
    repo_root: Path
    # The CMEK grants to the service agents (modules.encryption); an encrypted resource depends on
    # them, or its creation races the grant and fails on the first apply.
    kms_grants: list[TerraformResource] = field(default_factory=list)

    @property
    def env(self) -> str:
        return self.settings.env

    @property
    def project(self) -> str:
        return self.settings.project

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def project_number_expr(self) -> str:
        """Filled in by the ``google_project`` data source that the stack declares."""
        return "${data.google_project.project.number}"

    def labels(self, component: str) -> dict[str, str]:
        """env/app/owner on everything (cost reports and alert routing group by them)."""
        return {
            **self.infra.labels,
            "env": self.env,
            "app": APP_LABEL,
            "owner": self.settings.owner.lower(),
            "component": component,
        }

    @property
    def regional_key(self) -> str | None:
        return self.infra.cmek.regional_key if self.infra.cmek else None

    @property
    def multi_region_key(self) -> str | None:
        return self.infra.cmek.multi_region_key if self.infra.cmek else None

    @property
    def deletion_protection(self) -> bool:
        return self.infra.deletion_protection

    def accept_no_cmek(self, resource: TerraformResource, *check_ids: str) -> None:
        if self.infra.cmek is None:
            for check_id in check_ids:
                checkov_skip(resource, check_id, NO_CMEK)

    def accept_unprotected(self, resource: TerraformResource, *check_ids: str) -> None:
        if not self.infra.deletion_protection:
            for check_id in check_ids:
                checkov_skip(resource, check_id, UNPROTECTED)


# Reasons for findings that an environment's configuration accepts on purpose (dev): recorded on
# the resource only when the setting is off, so prod, where it is on, must pass the check itself.
NO_CMEK = "no CMEK configured for this environment (infra.cmek): Google-managed encryption keys"
UNPROTECTED = "deletion protection is off for this environment (infra.deletion_protection)"


def named(resource: R, logical_id: str) -> R:
    """Give a resource a stable, readable Terraform address."""
    resource.override_logical_id(logical_id)
    return resource


def checkov_skip(resource: TerraformResource, check_id: str, reason: str) -> None:
    """Record an accepted policy finding on the resource itself, with its reason.

    checkov's terraform_json framework does not read suppressions from synthesized JSON
    (bridgecrewio/checkov#4634, hashicorp/terraform-cdk#3609), so the comment goes into the
    resource's ``//`` block in the HCL comment's own syntax, ``checkov:skip=<ID>:<reason>``, and
    ``stacks.policy`` applies it to checkov's findings. A skip without a reason is refused here.
    """
    if not reason.strip():
        raise ValueError(f"checkov skip {check_id} needs a reason")
    # add_override replaces the whole value at a path: accumulate the skips on the object.
    skips: list[str] = [*getattr(resource, "_checkov_skips", [])]
    skips.append(f"checkov:skip={check_id}:{reason.strip()}")
    resource._checkov_skips = skips  # type: ignore[attr-defined]
    resource.add_override("//.checkov", skips)
