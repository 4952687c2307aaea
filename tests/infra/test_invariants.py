"""Rules every resource of every environment obeys, whatever the inventories say."""

from __future__ import annotations

import base64
import importlib
import json
import re
from functools import cache
from typing import Any

import pytest

from tests.infra.conftest import SECRET_CANARIES
from tests.infra.inventory import resources

ENVS = ("dev", "prod")
BASIC_ROLES = re.compile(r"^roles/(owner|editor|viewer)$")
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS)", re.I)


@cache
def label_attribute(rtype: str) -> str | None:
    """``labels`` or ``user_labels`` when the provider's schema lets this type carry labels."""
    module = importlib.import_module(f"cdktn_provider_google.{rtype.removeprefix('google_')}")
    for cls in vars(module).values():
        if isinstance(cls, type) and getattr(cls, "TF_RESOURCE_TYPE", None) == rtype:
            # user_labels first: a notification channel's "labels" are its settings (email).
            for attr in ("user_labels", "labels"):
                if hasattr(cls, f"{attr}_input"):
                    return attr
            return None
    raise AssertionError(f"no cdktn class for {rtype}")


def _walk(value: Any, path: str = "") -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def test_label_support_is_read_from_the_provider_schema() -> None:
    assert label_attribute("google_bigquery_table") == "labels"
    assert label_attribute("google_monitoring_alert_policy") == "user_labels"
    assert label_attribute("google_service_account") is None


@pytest.mark.parametrize("env", ENVS)
def test_every_labelable_resource_carries_env_app_owner(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    missing = []
    labelled = 0
    for address, body in resources(synth_configs[env]).items():
        attr = label_attribute(address.split(".")[0])
        if attr is None:
            continue
        labelled += 1
        labels = body.get(attr) or {}
        want = {"env": env, "app": "salesloop", "owner": "ml-platform"}
        if {k: labels.get(k) for k in want} != want:
            missing.append(f"{address}.{attr} = {labels}")
    assert labelled >= 20  # the rule is not vacuous
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("env", ENVS)
def test_no_basic_roles_and_no_public_principals(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    roles = 0
    for address, body in resources(synth_configs[env]).items():
        for path, value in _walk(body):
            if path.endswith(".role"):
                roles += 1
                assert not BASIC_ROLES.match(str(value)), f"{address}{path} = {value}"
            if isinstance(value, str):
                for member in PUBLIC_MEMBERS:
                    assert member not in value, f"{address}{path} grants {member}"
    assert roles >= 15


@pytest.mark.parametrize("env", ENVS)
def test_no_public_ingress(env: str, synth_configs: dict[str, dict[str, Any]]) -> None:
    res = synth_configs[env]["resource"]
    for name, fn in res["google_cloudfunctions2_function"].items():
        assert fn["service_config"]["ingress_settings"] == "ALLOW_INTERNAL_ONLY", name
    for name, bucket in res["google_storage_bucket"].items():
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["uniform_bucket_level_access"] is True, name
    # No resource type that would open an HTTP entry point of its own.
    assert not {"google_cloud_run_v2_service", "google_compute_firewall"} & set(res)


@pytest.mark.parametrize("env", ENVS)
def test_no_plaintext_secret(
    env: str, synth_dir: Any, synth_configs: dict[str, dict[str, Any]]
) -> None:
    text = json.dumps(synth_configs[env])
    for var, canary in SECRET_CANARIES.items():
        assert canary not in text, f"the value of ${var} reached the {env} stack"
    res = synth_configs[env]["resource"]
    # A secret version in Terraform would put the value into the state file.
    assert "google_secret_manager_secret_version" not in res
    secret_ids = {
        f"${{google_secret_manager_secret.{n}.secret_id}}"
        for n in res["google_secret_manager_secret"]
    }
    for name, fn in res["google_cloudfunctions2_function"].items():
        conf = fn["service_config"]
        plain = conf.get("environment_variables", {})
        assert not [k for k in plain if SECRETISH.search(k)], (
            f"{name}: secret-looking plain env var"
        )
        mounted = conf.get("secret_environment_variables", [])
        assert mounted, f"{name}: the SMTP password must come from Secret Manager"
        for m in mounted:
            assert m["secret"] in secret_ids and m["version"] == "latest"
    # The function's source archive holds no secret value either.
    for zip_path in (synth_dir / "stacks" / env / "assets").rglob("*.zip"):
        data = zip_path.read_bytes()
        assert not any(c.encode() in data for c in SECRET_CANARIES.values())


@pytest.mark.parametrize("env", ENVS)
def test_logical_names_are_unique_across_types(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    """The policy gate maps checkov's ``resource.<name>`` findings back by name alone."""
    names = [a.split(".", 1)[1] for a in resources(synth_configs[env])]
    assert len(names) == len(set(names))


def test_prod_is_protected_and_encrypted(synth_configs: dict[str, dict[str, Any]]) -> None:
    res = synth_configs["prod"]["resource"]
    for name, table in res["google_bigquery_table"].items():
        assert table["deletion_protection"] is True, name
        assert table["encryption_configuration"]["kms_key_name"].endswith("/cryptoKeys/warehouse")
    for name, ds in res["google_bigquery_dataset"].items():
        assert ds["deletion_policy"] == "PREVENT", name
        assert "kms_key_name" in ds["default_encryption_configuration"], name
    assert (
        res["google_secret_manager_secret"]["secret_smtp_password"]["deletion_protection"] is True
    )
    assert res["google_vertex_ai_endpoint"]["endpoint_forecast"]["deletion_policy"] == "PREVENT"
    # Every encrypted resource waits for the key grants of the service agents.
    fn = res["google_cloudfunctions2_function"]["function_on_sale"]
    grants = {
        f"google_kms_crypto_key_iam_member.{n}" for n in res["google_kms_crypto_key_iam_member"]
    }
    assert grants <= set(fn["depends_on"])


@pytest.mark.parametrize("env", ENVS)
def test_dependencies_name_existing_resources(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    addresses = set(resources(synth_configs[env]))
    fn = synth_configs[env]["resource"]["google_cloudfunctions2_function"]["function_on_sale"]
    # Cloud Functions checks secret access at deploy time: the grant must exist first.
    assert "google_secret_manager_secret_iam_member.access_function_smtp_secret" in fn["depends_on"]
    for address, body in resources(synth_configs[env]).items():
        for dep in body.get("depends_on", []):
            assert dep in addresses, f"{address} depends on unknown {dep}"


@pytest.mark.parametrize("env", ENVS)
def test_scheduled_runs_use_the_pipelines_identity(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    res = synth_configs[env]["resource"]
    project = synth_configs[env]["provider"]["google"][0]["project"]
    account_id = res["google_service_account"]["sa_pipelines"]["account_id"]
    for name, job in res["google_cloud_scheduler_job"].items():
        body = json.loads(base64.b64decode(job["http_target"]["body"]))
        assert body["serviceAccount"] == f"{account_id}@{project}.iam.gserviceaccount.com", name
        assert body["templateUri"].startswith(f"https://{job['region']}-kfp.pkg.dev/{project}/")


@pytest.mark.parametrize("env", ENVS)
def test_each_workload_has_its_own_identity(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    res = synth_configs[env]["resource"]
    fn = res["google_cloudfunctions2_function"]["function_on_sale"]
    runtime = fn["service_config"]["service_account_email"]
    trigger = fn["event_trigger"]["service_account_email"]
    build = fn["build_config"]["service_account"]
    assert len({runtime, trigger, build.replace(".name", ".email")}) == 3
    assert len(res["google_service_account"]) == 6
    # Project-wide grants are the short list; everything else is on a resource.
    project_roles = sorted(m["role"] for m in res["google_project_iam_member"].values())
    assert project_roles == sorted(
        [
            "roles/aiplatform.user",
            "roles/aiplatform.user",
            "roles/aiplatform.user",
            "roles/bigquery.jobUser",
            "roles/bigquery.jobUser",
            "roles/eventarc.eventReceiver",
            "roles/logging.logWriter",
        ]
    )
