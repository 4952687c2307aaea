"""Secret stores: env/file locally; Secret Manager checked by the request it builds (no real API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from google.api_core import exceptions as gexc

from salesloop.config import load_settings
from salesloop.secrets import (
    EnvSecretStore,
    SecretManagerStore,
    SecretNotFoundError,
    SecretStore,
    env_var_name,
    open_secret_store,
)


def test_env_var_name_maps_dashes_and_case() -> None:
    assert env_var_name("smtp-password") == "SALESLOOP_SECRET_SMTP_PASSWORD"


def test_env_wins_over_file(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text("from-file\n")
    store = EnvSecretStore(tmp_path, environ={"SALESLOOP_SECRET_SMTP_PASSWORD": "from-env"})
    assert store.get("smtp-password") == "from-env"


def test_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text("s3cr3t \n")
    assert EnvSecretStore(tmp_path, environ={}).get("smtp-password") == "s3cr3t "


def test_missing_secret_names_both_places(tmp_path: Path) -> None:
    with pytest.raises(SecretNotFoundError) as err:
        EnvSecretStore(tmp_path, environ={}).get("smtp-password")
    assert "SALESLOOP_SECRET_SMTP_PASSWORD" in str(err.value)
    assert str(tmp_path / "smtp-password") in str(err.value)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "", "x" * 256, "with space"])
def test_names_that_could_escape_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid secret name"):
        EnvSecretStore(tmp_path, environ={}).get(name)


@dataclass
class _Payload:
    data: bytes
    data_crc32c: int | None = None


@dataclass
class _Response:
    payload: _Payload


@dataclass
class FakeSecretManager:
    """Records the requests; answers like ``SecretManagerServiceClient.access_secret_version``."""

    secrets: dict[str, bytes]
    requests: list[dict[str, Any]] = field(default_factory=list)
    corrupt: bool = False

    def access_secret_version(self, request: dict[str, Any]) -> _Response:
        self.requests.append(request)
        name = request["name"]
        if name not in self.secrets:
            raise gexc.NotFound(f"Secret [{name}] not found or has no versions.")
        data = self.secrets[name]
        crc = int(google_crc32c.value(data)) + (1 if self.corrupt else 0)
        return _Response(_Payload(data, crc))


NAME = "projects/salesloop-prod/secrets/smtp-password/versions/latest"


def test_secret_manager_asks_for_the_latest_version_of_the_project_secret() -> None:
    client = FakeSecretManager({NAME: b"hunter2\n"})
    store = SecretManagerStore("salesloop-prod", client=client)
    assert store.get("smtp-password") == "hunter2"
    assert client.requests == [{"name": NAME}]


def test_secret_manager_not_found_is_a_secret_not_found_error() -> None:
    store = SecretManagerStore("salesloop-prod", client=FakeSecretManager({}))
    with pytest.raises(SecretNotFoundError, match="smtp-password"):
        store.get("smtp-password")


def test_secret_manager_rejects_a_corrupted_payload() -> None:
    store = SecretManagerStore(
        "salesloop-prod", client=FakeSecretManager({NAME: b"x"}, corrupt=True)
    )
    with pytest.raises(RuntimeError, match="checksum"):
        store.get("smtp-password")


def test_secret_manager_caches_within_the_ttl_then_refreshes() -> None:
    client = FakeSecretManager({NAME: b"v1"})
    now = [0.0]
    store = SecretManagerStore("salesloop-prod", client=client, ttl_s=60, clock=lambda: now[0])
    assert store.get("smtp-password") == "v1"
    client.secrets[NAME] = b"v2"
    now[0] = 59.0
    assert store.get("smtp-password") == "v1"
    now[0] = 61.0
    assert store.get("smtp-password") == "v2"
    assert len(client.requests) == 2


def test_local_settings_open_the_env_and_file_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESLOOP_SECRETS_DIR", str(tmp_path))
    (tmp_path / "smtp-password").write_text("local-pw")
    store = open_secret_store(load_settings("local"))
    assert isinstance(store, EnvSecretStore)
    assert isinstance(store, SecretStore)
    assert store.get("smtp-password") == "local-pw"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cloud_settings_open_secret_manager_of_their_project(env: str) -> None:
    settings = load_settings(env)
    store = open_secret_store(settings)
    assert isinstance(store, SecretManagerStore)
    assert store.resource_name(settings.smtp.secret_name) == (
        f"projects/{settings.project}/secrets/smtp-password/versions/latest"
    )
