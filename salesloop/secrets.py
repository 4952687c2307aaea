"""Where credentials come from: the environment or a file locally, Secret Manager in the cloud.

The code that needs a secret (the SMTP password) asks a :class:`SecretStore` by name and never
knows which one it got, so the local environment exercises the same call path as prod. Secret
values are returned, never logged; callers register them with :func:`salesloop.logging
.register_secret` so an accidental log line is redacted.

:class:`SecretManagerStore` is tested against a stand-in client only (the request it builds and how
it reads the response); it has not been run against the real Secret Manager API from this repo.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from salesloop.config import Settings

# Secret Manager's own rule for secret ids; enforcing it everywhere also keeps file lookups inside
# the secrets directory (no "/" or "..").
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
ENV_PREFIX = "SALESLOOP_SECRET_"


class SecretNotFoundError(KeyError):
    """No store holds a secret of that name (or it has no enabled version)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "secret not found"


@runtime_checkable
class SecretStore(Protocol):
    def get(self, name: str) -> str: ...


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"invalid secret name {name!r}: use letters, digits, '-' and '_'")


def env_var_name(name: str) -> str:
    """``smtp-password`` → ``SALESLOOP_SECRET_SMTP_PASSWORD``."""
    _check_name(name)
    return ENV_PREFIX + name.upper().replace("-", "_")


def _strip_newline(value: str) -> str:
    """``echo pw > file`` and ``echo pw | gcloud secrets create`` both add a newline nobody meant."""
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith("\n"):
        return value[:-1]
    return value


class EnvSecretStore:
    """Environment variable ``SALESLOOP_SECRET_<NAME>``, else the file ``<secrets_dir>/<name>``."""

    def __init__(
        self, secrets_dir: Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        self.secrets_dir = secrets_dir
        self._environ = environ if environ is not None else os.environ

    def get(self, name: str) -> str:
        var = env_var_name(name)
        value = self._environ.get(var)
        if value is not None:
            return value
        if self.secrets_dir is not None:
            path = self.secrets_dir / name
            try:
                return _strip_newline(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                pass
        where = f"${var}" + (f" or {self.secrets_dir / name}" if self.secrets_dir else "")
        raise SecretNotFoundError(f"secret {name!r} not found (looked in {where})")


class SecretManagerStore:
    """Google Secret Manager: ``projects/<project>/secrets/<name>/versions/<version>``.

    Values are cached for ``ttl_s`` so a warm function instance does not call the API on every
    event, while a rotated secret still reaches it within minutes. The client is created on first
    use (import and credentials cost nothing for processes that never send mail); tests pass their
    own ``client``.
    """

    def __init__(
        self,
        project: str,
        *,
        client: Any | None = None,
        version: str = "latest",
        ttl_s: float = 300.0,
        clock: Any = time.monotonic,
    ) -> None:
        if not project:
            raise ValueError("SecretManagerStore needs a project id")
        self.project = project
        self.version = version
        self.ttl_s = ttl_s
        self._client = client
        self._clock = clock
        self._cache: dict[str, tuple[float, str]] = {}

    def resource_name(self, name: str) -> str:
        _check_name(name)
        return f"projects/{self.project}/secrets/{name}/versions/{self.version}"

    def _get_client(self) -> Any:
        if self._client is None:
            from google.cloud import secretmanager

            self._client = secretmanager.SecretManagerServiceClient()
        return self._client

    def get(self, name: str) -> str:
        resource = self.resource_name(name)
        hit = self._cache.get(name)
        now = self._clock()
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        from google.api_core import exceptions as gexc

        try:
            response = self._get_client().access_secret_version(request={"name": resource})
        except gexc.NotFound as exc:
            raise SecretNotFoundError(f"secret {resource} not found") from exc
        except gexc.FailedPrecondition as exc:  # the version exists but is disabled or destroyed
            raise SecretNotFoundError(f"secret {resource} is not enabled") from exc
        data: bytes = response.payload.data
        _verify_crc(resource, data, getattr(response.payload, "data_crc32c", None))
        value = _strip_newline(data.decode("utf-8"))
        self._cache[name] = (now, value)
        return value


def _verify_crc(resource: str, data: bytes, expected: int | None) -> None:
    """Secret Manager sends a CRC32C of the payload; a mismatch means a corrupted transfer."""
    if not expected:
        return
    try:
        import google_crc32c
    except ImportError:  # pragma: no cover - installed with google-cloud-secret-manager
        return
    if int(google_crc32c.value(data)) != int(expected):
        raise RuntimeError(f"secret {resource}: payload checksum mismatch")


def open_secret_store(settings: Settings) -> SecretStore:
    """Local: environment or ``<run_dir>/secrets`` (``SALESLOOP_SECRETS_DIR`` overrides the folder).
    dev/prod: Secret Manager of the environment's project."""
    if settings.env == "local":
        folder = os.environ.get("SALESLOOP_SECRETS_DIR")
        return EnvSecretStore(Path(folder) if folder else settings.run_dir / "secrets")
    return SecretManagerStore(settings.project)


__all__ = [
    "ENV_PREFIX",
    "EnvSecretStore",
    "SecretManagerStore",
    "SecretNotFoundError",
    "SecretStore",
    "env_var_name",
    "open_secret_store",
]
