"""The model registry port (:class:`salesloop.registry.ModelRegistry`) on Vertex AI.

Three services stand in for the local registry folder:

* **artifacts** — Cloud Storage, ``<root>/versions/v0003/`` (the same layout as the local
  ``versions/``), written once (:mod:`salesloop.vertex.artifacts`);
* **versions and aliases** — Vertex Model Registry: one parent model (``training.model_name``), one
  model version per registration, uploaded with the artifact folder as ``artifact_uri``, the
  serving image as its container, labels (``app``, ``env``, ``gate``, ``status``, version, metrics)
  and the gate's reason as its description (:mod:`salesloop.vertex.model_registry`);
* **endpoint traffic** — the Vertex endpoint (:mod:`salesloop.vertex.endpoint_deployer`).

Version ids are the registry's own (``v0003``), the same as locally: the artifact folder's name,
``metadata.json``'s ``version`` (which the serving container reports with every prediction) and a
Vertex version alias on the model version, so ``models/<id>@v0003`` resolves to Vertex's numeric
version id. ``champion`` and ``challenger`` are Vertex version aliases too.

Where the audit trail lives in the cloud (the local registry's ``audit.jsonl``): the current
state is in the aliases, the ``status`` label and the description of each version (rewritten at
each transition with its reason, :meth:`VertexRegistry.annotate`); every change, with who made it
and when, is in Cloud Audit Logs (Admin Activity: UploadModel, MergeVersionAliases, UpdateModel,
DeployModel, UpdateEndpoint, UndeployModel, with their requests); the history with reasons and
timestamps is the ``model_versions`` table the pipeline writes (:mod:`salesloop.pipeline.versions`).

Tested with the real client libraries against a loopback server that keeps a model registry's,
an endpoint's and a bucket's state (``tests/training/test_vertex_registry.py``); never run
against Google Cloud.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from google.auth.credentials import Credentials

from salesloop.model.base import METADATA_FILE, ForecastModel, ModelMetadata, load_model
from salesloop.registry import (
    _PROTECTED,
    VERSION_RE,
    DeployedModel,
    ModelVersion,
    RegistryError,
    _now,
    default_actor,
)
from salesloop.vertex.artifacts import ArtifactExists, GcsArtifacts, join
from salesloop.vertex.endpoint_deployer import VertexEndpointDeployer
from salesloop.vertex.model_registry import VertexModelRegistry, label_value

_CLAIM_ATTEMPTS = 20
_METRIC_LABELS = ("rmsse", "mase", "wape")


class VertexRegistry:
    """See the module docstring. ``root`` is the ``gs://`` folder holding ``versions/``."""

    def __init__(
        self,
        root: str,
        *,
        models: VertexModelRegistry,
        endpoints: VertexEndpointDeployer,
        artifacts: GcsArtifacts,
        env: str,
        cache_dir: Path | str | None = None,
    ) -> None:
        if not root.startswith("gs://"):
            raise RegistryError(f"a Vertex registry keeps its artifacts under gs://, not {root!r}")
        self.root = root.rstrip("/")
        self.models = models
        self.endpoints = endpoints
        self.artifacts = artifacts
        self.env = env
        self._cache = Path(cache_dir) if cache_dir else None
        self._resolved: dict[str, Any] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        root: str,
        *,
        credentials: Credentials | None = None,
        api_endpoint: str | None = None,
        storage_endpoint: str | None = None,
        cache_dir: Path | str | None = None,
    ) -> VertexRegistry:
        """The registry of ``settings``' project and region (clients are created on first use)."""
        from salesloop.training_settings import training_settings

        train = training_settings(settings)
        vx = train.vertex
        assert vx.serving_image and vx.serving_account  # resolved defaults
        models = VertexModelRegistry(
            settings.project,
            settings.region,
            train.model_name,
            serving_image=vx.serving_image,
            credentials=credentials,
            api_endpoint=api_endpoint,
        )
        registry: VertexRegistry
        endpoints = VertexEndpointDeployer(
            settings.project,
            settings.region,
            model_id=train.model_name,
            model_of=lambda version: registry.model_version_name(version),
            machine_type=vx.machine_type,
            min_replicas=vx.min_replicas,
            max_replicas=vx.max_replicas,
            service_account=vx.serving_account,
            deploy_timeout_s=vx.deploy_timeout_s,
            credentials=credentials,
            api_endpoint=api_endpoint,
        )
        artifacts = GcsArtifacts(
            settings.project, credentials=credentials, api_endpoint=storage_endpoint
        )
        registry = cls(
            root,
            models=models,
            endpoints=endpoints,
            artifacts=artifacts,
            env=settings.env,
            cache_dir=cache_dir,
        )
        return registry

    # -- names -------------------------------------------------------------------------------------
    @property
    def versions_uri(self) -> str:
        return join(self.root, "versions")

    def artifact_uri(self, version: str) -> str:
        return join(self.versions_uri, version)

    def _model(self, version: str) -> Any:
        """The Vertex model version that carries the alias ``version`` (cached: immutable)."""
        if not VERSION_RE.match(version or ""):
            raise RegistryError(f"not a version id: {version!r}")
        if version not in self._resolved:
            model = self.models.get(version)
            if model is None:
                raise RegistryError(f"no Vertex model version has the alias {version!r}")
            self._resolved[version] = model
        return self._resolved[version]

    def vertex_version_id(self, version: str) -> str:
        """Vertex's numeric version id of a registry version (what predictions report)."""
        return str(self._model(version).version_id)

    def model_version_name(self, version: str) -> str:
        return f"{self.models.model_name}@{self.vertex_version_id(version)}"

    # -- versions ----------------------------------------------------------------------------------
    def list_versions(self) -> list[str]:
        names = [n for n in self.artifacts.children(self.versions_uri) if VERSION_RE.match(n)]
        return sorted(names, key=lambda v: int(v[1:]))

    def register(
        self,
        source: Path | str | ForecastModel,
        metadata: Mapping[str, Any] | None = None,
        *,
        reason: str = "",
        actor: str | None = None,
    ) -> str:
        """Upload the artifact folder under a new version id, then the Vertex model version.

        The id is claimed by creating ``versions/<id>/metadata.json`` (refused if it exists), so
        concurrent registrations get distinct ids; the other files follow, then ``UploadModel``
        with the folder as ``artifact_uri`` and the id as a version alias.
        """
        extra = dict(metadata or {})
        clash = sorted(_PROTECTED & set(extra))
        if clash:
            raise RegistryError(f"metadata keys {clash} are owned by the registry")
        actor = actor or default_actor()
        stage = Path(tempfile.mkdtemp(prefix="vertex-register-"))
        try:
            if isinstance(source, (str, Path)):
                shutil.copytree(source, stage, dirs_exist_ok=True)
            else:
                source.save(stage)
            meta = json.loads((stage / METADATA_FILE).read_text())
            ModelMetadata.model_validate(meta)
            meta.update(extra)
            existing = self.list_versions()
            n = int(existing[-1][1:]) + 1 if existing else 1
            for _ in range(_CLAIM_ATTEMPTS):
                vid = f"v{n:04d}"
                meta.update(version=vid, registered_at=_now(), registered_by=actor)
                (stage / METADATA_FILE).write_text(
                    json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
                )
                try:
                    self.artifacts.upload_folder(stage, self.artifact_uri(vid), first=METADATA_FILE)
                    break
                except ArtifactExists:
                    n += 1  # another registration claimed it first
            else:
                raise RegistryError(f"could not claim a version id after {_CLAIM_ATTEMPTS} tries")
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        gate = str(meta.get("status") or "registered")
        self.models.register(
            artifact_uri=self.artifact_uri(vid),
            status=gate,
            reason=reason or str(meta.get("reason") or ""),
            metrics=self._metric_labels(meta),
            aliases=[vid],
            first_version=not self.models.exists(),
            extra_labels={
                "env": self.env,
                "status": "rejected" if gate == "rejected" else "registered",
                "version": vid,
                "kind": str(meta.get("model_kind", "")),
            },
        )
        self._resolved.pop(vid, None)
        return vid

    @staticmethod
    def _metric_labels(meta: Mapping[str, Any]) -> dict[str, float]:
        backtest = (meta.get("metrics") or {}).get("backtest") or {}
        own = backtest.get(meta.get("candidate")) or {}
        out = {}
        for key in _METRIC_LABELS:
            value = own.get(key)
            if isinstance(value, int | float):
                out[key] = float(value)
        return out

    def _local_copy(self, version: str) -> Path:
        """The version's artifact folder on local disk, downloaded on first use.

        The cache is this instance's own temporary folder unless ``cache_dir`` is given: a
        version's artifact never changes, but the same id in another registry root is another
        artifact.
        """
        model = self._model(version)
        if self._cache is None:
            self._cache = Path(tempfile.mkdtemp(prefix="salesloop-vertex-artifacts-"))
        target = self._cache / self.models.model_id / version
        if not (target / METADATA_FILE).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
            try:
                self.artifacts.download_folder(str(model.artifact_uri), stage)
                if not target.exists():
                    stage.rename(target)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        return target

    def get(self, version: str) -> ModelVersion:
        """The version's metadata, from its artifact (downloaded once per cache folder)."""
        path = self._local_copy(version)
        return ModelVersion(version, path, json.loads((path / METADATA_FILE).read_text()))

    def load_model(self, version: str) -> ForecastModel:
        return load_model(self._local_copy(version))

    # -- aliases -----------------------------------------------------------------------------------
    def alias(self, name: str) -> str | None:
        """The registry version holding the Vertex alias ``name`` (None when none does)."""
        model = self.models.get(name)
        if model is None:
            return None
        ours = [a for a in model.version_aliases if VERSION_RE.match(a)]
        if not ours:
            raise RegistryError(
                f"the Vertex version holding {name!r} ({model.version_id}) was not registered by "
                "salesloop (no vNNNN alias)"
            )
        return str(ours[0])

    def set_alias(self, alias: str, version: str, reason: str = "") -> None:
        self.models.set_alias(alias, self.vertex_version_id(version))

    def remove_alias(self, alias: str, reason: str = "") -> None:
        self.models.remove_alias(alias)

    def annotate(self, version: str, status: str, reason: str) -> None:
        """Record a lifecycle transition on the version: ``status`` label and description."""
        model = self.models.get(version)
        if model is None:
            raise RegistryError(f"no Vertex model version has the alias {version!r}")
        labels = {**dict(model.labels), "status": label_value(status)}
        self.models.update_version(
            str(model.version_id), labels=labels, description=f"{status}: {reason}"
        )

    # -- endpoint ----------------------------------------------------------------------------------
    def deployed(self, endpoint_id: str) -> list[DeployedModel]:
        return self.endpoints.deployed(endpoint_id)

    def deploy(
        self, endpoint_id: str, version: str, traffic: int = 100, *, reason: str = ""
    ) -> Sequence[DeployedModel]:
        return self.endpoints.deploy(endpoint_id, version, traffic)

    def set_traffic(
        self, endpoint_id: str, split: Mapping[str, int], *, reason: str = ""
    ) -> Sequence[DeployedModel]:
        return self.endpoints.set_traffic(endpoint_id, split)

    def undeploy(
        self, endpoint_id: str, version: str, *, reason: str = ""
    ) -> Sequence[DeployedModel]:
        return self.endpoints.undeploy(endpoint_id, version)
