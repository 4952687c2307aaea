"""Model artifact folders in Cloud Storage: the cloud twin of the local registry's ``versions/``.

A version's folder (``<root>/versions/v0003/``: model file + ``metadata.json``) is uploaded once
and never rewritten: every object is created with ``ifGenerationMatch=0``, so Cloud Storage
refuses to overwrite an existing object (HTTP 412). Creating ``metadata.json`` first is how a
registration claims its version id: two concurrent registrations cannot both create it, and the
loser moves on to the next id. Vertex reads the folder as the model's ``artifact_uri`` and hands
it to the serving container as ``AIP_STORAGE_URI``; the pipeline downloads it to load the champion
for the backtest and the canary's sanity checks.

Tested against a loopback server speaking the Cloud Storage JSON API (``tests/training``), not
against Cloud Storage itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from google.auth.credentials import Credentials

_GS = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220})(?:/(.*))?$")


class ArtifactExists(RuntimeError):
    """An object of an immutable folder exists already (``ifGenerationMatch=0`` failed)."""


def split_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b/`` → ``("bucket", "a/b")`` (no trailing slash)."""
    m = _GS.match(uri)
    if not m:
        raise ValueError(f"not a gs:// URI: {uri!r}")
    return m.group(1), (m.group(2) or "").strip("/")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


class GcsArtifacts:
    """Folders of objects under ``gs://`` URIs, through google-cloud-storage."""

    def __init__(
        self,
        project: str,
        *,
        credentials: Credentials | None = None,
        api_endpoint: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.project = project
        self._credentials = credentials
        self._api_endpoint = api_endpoint
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import storage  # type: ignore[attr-defined]

            options = {"api_endpoint": self._api_endpoint} if self._api_endpoint else None
            self._client = storage.Client(
                project=self.project, credentials=self._credentials, client_options=options
            )
        return self._client

    def children(self, uri: str) -> list[str]:
        """Names of the immediate sub-folders of ``uri``."""
        bucket, prefix = split_uri(uri)
        pages = self.client.list_blobs(bucket, prefix=f"{prefix}/" if prefix else "", delimiter="/")
        for _ in pages:  # prefixes are filled while the pages are consumed
            pass
        return sorted(p[len(prefix) + 1 if prefix else 0 :].strip("/") for p in pages.prefixes)

    def upload_file(self, path: Path, uri: str) -> None:
        """Create one object; refuses to replace an existing one."""
        from google.api_core import exceptions

        bucket, name = split_uri(uri)
        blob = self.client.bucket(bucket).blob(name)
        try:
            blob.upload_from_filename(str(path), if_generation_match=0)
        except exceptions.PreconditionFailed as exc:
            raise ArtifactExists(f"{uri} exists; artifact folders are immutable") from exc

    def upload_folder(self, folder: Path, uri: str, *, first: str | None = None) -> list[str]:
        """Every file under ``folder`` to ``uri/<relative path>``; ``first`` (a relative path) is
        created before the others (the claim). Returns the object URIs written."""
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        rels = [p.relative_to(folder).as_posix() for p in files]
        order = sorted(range(len(files)), key=lambda i: (rels[i] != first, rels[i]))
        written = []
        for i in order:
            target = join(uri, rels[i])
            self.upload_file(files[i], target)
            written.append(target)
        return written

    def download_folder(self, uri: str, dest: Path) -> Path:
        """Every object under ``uri/`` into ``dest`` (relative paths kept)."""
        bucket, prefix = split_uri(uri)
        dest.mkdir(parents=True, exist_ok=True)
        found = 0
        for blob in self.client.list_blobs(bucket, prefix=f"{prefix}/"):
            rel = blob.name[len(prefix) + 1 :]
            if not rel or rel.endswith("/"):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            found += 1
        if not found:
            raise FileNotFoundError(f"no objects under {uri}")
        return dest
