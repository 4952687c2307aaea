"""The model registry port, and its local implementation: immutable versions, aliases, endpoint
deployments, an audit trail.

:class:`ModelRegistry` is what the training pipeline's steps and the canary rollout use. Two
implementations stand behind it: :class:`LocalRegistry` (this module) and
:class:`salesloop.vertex.registry.VertexRegistry` (Vertex AI Model Registry + endpoint + the
artifacts in Cloud Storage). :func:`salesloop.pipeline.steps.open_registry` picks one from the
pipeline's ``registry_root`` (a folder, or ``gs://...``).

Layout of the registry folder (the local stand-in for Vertex Model Registry + endpoints)::

    versions/v0001/          a model artifact (model file + metadata.json), never rewritten
    aliases.json             {"champion": "v0003", "challenger": "v0004"}
    endpoints/<id>.json      {"deployed_models": [{"id": "3", "version": "v0003", "traffic": 100}]}
    audit.jsonl              one JSON object per change: timestamp, action, version, alias, reason, actor

Why files and these rules: the model server and the function read this folder while training and
rollout commands write it, from different processes. Versions are staged in a temporary folder and
renamed into place (a reader sees a complete version or none), JSON documents are replaced with
``os.replace`` (a reader sees the old or the new document, never half of one), and writers take an
exclusive ``flock`` so two registrations cannot pick the same version id. The audit log is
append-only; every alias or deployment change carries a reason and an actor because "who promoted
this model and why" is the first question after a bad forecast.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from salesloop.model.base import METADATA_FILE, ForecastModel, ModelMetadata, load_model

VERSION_RE = re.compile(r"^v(\d{4,})$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ENDPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# Keys the registry owns in a version's metadata.json; caller metadata cannot override them.
_PROTECTED = {"version", "model_kind", "artifact_files", "registered_at", "registered_by"}


class RegistryError(RuntimeError):
    """A registry operation was refused (unknown version, overwrite, bad name)."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    path: Path
    metadata: dict[str, Any]

    @property
    def model_kind(self) -> str:
        return str(self.metadata.get("model_kind", ""))


@dataclass(frozen=True)
class DeployedModel:
    id: str
    version: str
    traffic: int


class ModelRegistry(Protocol):
    """Versions, aliases and one endpoint's traffic split: what training and rollout need.

    Version ids look like ``v0001`` in both implementations (on Vertex they are version aliases
    that map to Vertex's numeric version ids); ``metadata`` is the artifact's ``metadata.json``
    with the registry's keys (status, reason, metrics, registered_at, ...).
    """

    def register(
        self,
        source: Path | str | ForecastModel,
        metadata: Mapping[str, Any] | None = None,
        *,
        reason: str = "",
    ) -> str: ...

    def get(self, version: str) -> ModelVersion: ...

    def load_model(self, version: str) -> ForecastModel: ...

    def alias(self, name: str) -> str | None: ...

    def set_alias(self, alias: str, version: str, reason: str) -> None: ...

    def remove_alias(self, alias: str, reason: str) -> None: ...

    def annotate(self, version: str, status: str, reason: str) -> None:
        """Record a lifecycle transition (champion, rolled_back, retired) and why."""
        ...

    def deployed(self, endpoint_id: str) -> Sequence[DeployedModel]: ...

    def deploy(
        self, endpoint_id: str, version: str, traffic: int = 100, *, reason: str = ""
    ) -> Sequence[DeployedModel]: ...

    def set_traffic(
        self, endpoint_id: str, split: Mapping[str, int], *, reason: str = ""
    ) -> Sequence[DeployedModel]: ...

    def undeploy(
        self, endpoint_id: str, version: str, *, reason: str = ""
    ) -> Sequence[DeployedModel]: ...


def default_actor() -> str:
    explicit = os.environ.get("SALESLOOP_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def atomic_write_json(path: Path, data: Any) -> None:
    """Write-to-temp then ``os.replace``: readers never observe a partial document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_endpoint_file(path: Path) -> list[DeployedModel]:
    """The deployed models of an endpoint file ([] when the endpoint has none or no file)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    return [
        DeployedModel(str(d["id"]), str(d["version"]), int(d.get("traffic", 0)))
        for d in data.get("deployed_models", [])
    ]


def split_traffic(weights: Mapping[str, float], total: int = 100) -> dict[str, int]:
    """Integer percentages proportional to ``weights`` that sum to ``total`` (largest remainder)."""
    positive = {k: float(v) for k, v in weights.items() if v > 0}
    s = sum(positive.values())
    if not positive or s <= 0:
        return {k: 0 for k in weights}
    raw = {k: v * total / s for k, v in positive.items()}
    out = {k: int(v) for k, v in raw.items()}
    left = total - sum(out.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - out[k]), k))[:left]:
        out[k] += 1
    return {k: out.get(k, 0) for k in weights}


class LocalRegistry:
    """A registry folder; see the module docstring. Safe for concurrent processes."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.endpoints_dir = self.root / "endpoints"
        self.aliases_path = self.root / "aliases.json"
        self.audit_path = self.root / "audit.jsonl"
        for d in (self.versions_dir, self.endpoints_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- locking and audit ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _audit(
        self,
        action: str,
        *,
        version: str | None = None,
        alias: str | None = None,
        reason: str = "",
        actor: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        entry = {
            "timestamp": _now(),
            "action": action,
            "version": version,
            "alias": alias,
            "reason": reason,
            "actor": actor or default_actor(),
            **extra,
        }
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        # O_APPEND + one write: concurrent appenders never interleave within a line.
        fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def audit(self) -> list[dict[str, Any]]:
        try:
            lines = self.audit_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    # -- versions ----------------------------------------------------------------------------
    def list_versions(self) -> list[str]:
        out = [
            p.name for p in self.versions_dir.iterdir() if p.is_dir() and VERSION_RE.match(p.name)
        ]
        return sorted(out, key=lambda v: int(v[1:]))

    def _next_version(self) -> str:
        versions = self.list_versions()
        n = int(versions[-1][1:]) + 1 if versions else 1
        return f"v{n:04d}"

    def register(
        self,
        source: Path | str | ForecastModel,
        metadata: Mapping[str, Any] | None = None,
        *,
        version: str | None = None,
        reason: str = "",
        actor: str | None = None,
    ) -> str:
        """Store a model (or an artifact folder) as a new immutable version; returns its id.

        ``metadata`` is merged into the artifact's ``metadata.json`` (notes, metrics, lineage);
        keys the registry owns (version, model_kind, artifact_files, ...) cannot be overridden.
        Passing an explicit ``version`` that exists is refused: versions are never rewritten.
        """
        extra = dict(metadata or {})
        clash = sorted(_PROTECTED & set(extra))
        if clash:
            raise RegistryError(f"metadata keys {clash} are owned by the registry")
        actor = actor or default_actor()
        with self._locked():
            vid = version or self._next_version()
            if not VERSION_RE.match(vid):
                raise RegistryError(f"version ids look like v0001, got {vid!r}")
            target = self.versions_dir / vid
            if target.exists():
                raise RegistryError(f"version {vid} exists; versions are immutable")
            stage = Path(tempfile.mkdtemp(prefix=f".stage-{vid}-", dir=self.versions_dir))
            try:
                if isinstance(source, (str, Path)):
                    shutil.copytree(source, stage, dirs_exist_ok=True)
                else:
                    source.save(stage)
                meta = json.loads((stage / METADATA_FILE).read_text())
                ModelMetadata.model_validate(meta)
                meta.update(extra)
                meta.update(version=vid, registered_at=_now(), registered_by=actor)
                (stage / METADATA_FILE).unlink()  # copied artifacts may be read-only
                (stage / METADATA_FILE).write_text(
                    json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
                )
                for path in stage.rglob("*"):
                    if path.is_file():
                        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
                os.rename(stage, target)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
            self._audit(
                "register",
                version=vid,
                reason=reason,
                actor=actor,
                model_kind=meta.get("model_kind"),
            )
        return vid

    def _require(self, version: str) -> Path:
        if not VERSION_RE.match(version or ""):
            raise RegistryError(f"not a version id: {version!r}")
        path = self.versions_dir / version
        if not (path / METADATA_FILE).is_file():
            raise RegistryError(f"unknown version {version!r}; known: {self.list_versions()}")
        return path

    def get(self, version: str) -> ModelVersion:
        path = self._require(version)
        return ModelVersion(version, path, json.loads((path / METADATA_FILE).read_text()))

    def load_model(self, version: str) -> ForecastModel:
        return load_model(self._require(version))

    # -- aliases -----------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        try:
            data = json.loads(self.aliases_path.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def alias(self, name: str) -> str | None:
        return self.aliases().get(name)

    def set_alias(self, alias: str, version: str, reason: str, *, actor: str | None = None) -> None:
        if not NAME_RE.match(alias):
            raise RegistryError(f"bad alias name {alias!r}")
        self._require(version)
        with self._locked():
            current = self.aliases()
            previous = current.get(alias)
            current[alias] = version
            atomic_write_json(self.aliases_path, current)
            self._audit(
                "set_alias",
                version=version,
                alias=alias,
                reason=reason,
                actor=actor,
                previous=previous,
            )

    def remove_alias(self, alias: str, reason: str, *, actor: str | None = None) -> None:
        with self._locked():
            current = self.aliases()
            previous = current.pop(alias, None)
            if previous is None:
                return
            atomic_write_json(self.aliases_path, current)
            self._audit("remove_alias", version=previous, alias=alias, reason=reason, actor=actor)

    def annotate(self, version: str, status: str, reason: str, *, actor: str | None = None) -> None:
        """A lifecycle transition of ``version`` in the audit log (the version itself is
        immutable; its status over time is the audit trail and the ``model_versions`` table)."""
        self._require(version)
        self._audit("status", version=version, reason=reason, actor=actor, status=status)

    # -- endpoints ---------------------------------------------------------------------------
    def endpoint_path(self, endpoint_id: str) -> Path:
        if not ENDPOINT_RE.match(endpoint_id):
            raise RegistryError(f"bad endpoint id {endpoint_id!r}")
        return self.endpoints_dir / f"{endpoint_id}.json"

    def deployed(self, endpoint_id: str) -> list[DeployedModel]:
        return read_endpoint_file(self.endpoint_path(endpoint_id))

    def _write_endpoint(self, endpoint_id: str, models: list[DeployedModel]) -> None:
        atomic_write_json(
            self.endpoint_path(endpoint_id),
            {
                "endpoint_id": endpoint_id,
                "updated_at": _now(),
                "deployed_models": [
                    {"id": m.id, "version": m.version, "traffic": m.traffic} for m in models
                ],
            },
        )

    def deploy(
        self,
        endpoint_id: str,
        version: str,
        traffic: int = 100,
        *,
        reason: str = "",
        actor: str | None = None,
    ) -> list[DeployedModel]:
        """Give ``version`` ``traffic`` percent of the endpoint; the others share the rest
        in proportion to their current traffic (``traffic=100`` replaces them all).

        A canary is ``deploy(e, new, 10)`` on an endpoint serving ``old`` at 100: old 90, new 10.
        """
        if not 0 <= traffic <= 100:
            raise RegistryError("traffic is a percentage in 0..100")
        self._require(version)
        with self._locked():
            current = [m for m in self.deployed(endpoint_id) if m.version != version]
            if traffic == 100:
                current = []
            rest = (
                split_traffic({m.version: m.traffic or 1 for m in current}, 100 - traffic)
                if current
                else {}
            )
            models = [DeployedModel(m.id, m.version, rest.get(m.version, 0)) for m in current]
            models.append(DeployedModel(self._deployed_model_id(version), version, traffic))
            if traffic < 100 and not current:
                raise RegistryError(
                    f"nothing else is deployed on {endpoint_id}; deploy with traffic=100 first"
                )
            models.sort(key=lambda m: int(m.version[1:]))
            self._write_endpoint(endpoint_id, models)
            self._audit(
                "deploy",
                version=version,
                reason=reason,
                actor=actor,
                endpoint_id=endpoint_id,
                traffic={m.version: m.traffic for m in models},
            )
        return models

    def set_traffic(
        self,
        endpoint_id: str,
        split: Mapping[str, int],
        *,
        reason: str = "",
        actor: str | None = None,
    ) -> list[DeployedModel]:
        """Set the exact split (versions → percent, summing to 100); a version at 0 is undeployed."""
        if sum(split.values()) != 100 or any(v < 0 for v in split.values()):
            raise RegistryError(
                f"traffic split must be non-negative and sum to 100, got {dict(split)}"
            )
        for v in split:
            self._require(v)
        with self._locked():
            models = [
                DeployedModel(self._deployed_model_id(v), v, int(t))
                for v, t in split.items()
                if t > 0
            ]
            models.sort(key=lambda m: int(m.version[1:]))
            self._write_endpoint(endpoint_id, models)
            self._audit(
                "set_traffic",
                reason=reason,
                actor=actor,
                endpoint_id=endpoint_id,
                traffic={m.version: m.traffic for m in models},
            )
        return models

    def undeploy(
        self,
        endpoint_id: str,
        version: str,
        *,
        reason: str = "",
        actor: str | None = None,
    ) -> list[DeployedModel]:
        """Remove ``version``; the remaining models take its traffic in proportion."""
        with self._locked():
            current = self.deployed(endpoint_id)
            if not any(m.version == version for m in current):
                raise RegistryError(f"{version} is not deployed on {endpoint_id}")
            rest = [m for m in current if m.version != version]
            split = split_traffic({m.version: m.traffic or 1 for m in rest}) if rest else {}
            models = [DeployedModel(m.id, m.version, split.get(m.version, 0)) for m in rest]
            self._write_endpoint(endpoint_id, models)
            self._audit(
                "undeploy",
                version=version,
                reason=reason,
                actor=actor,
                endpoint_id=endpoint_id,
                traffic={m.version: m.traffic for m in models},
            )
        return models

    @staticmethod
    def _deployed_model_id(version: str) -> str:
        """Vertex deployed-model ids are 1-10 digits; the version number is stable and unique."""
        return str(int(version[1:]))
