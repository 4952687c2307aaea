"""The model registry port on Vertex AI Model Registry: one parent model, one version per training run.

Mapping of the local registry's concepts:

* registry model name → the parent model ``projects/P/locations/L/models/<model_id>`` (created by
  the first upload with ``model_id``; later uploads pass ``parent_model`` and become versions);
* immutable version → a model version (``...models/<id>@<version_id>``), its artifact folder in GCS
  (``artifact_uri``) and the serving container that loads it;
* aliases (``champion``, ``challenger``) → Vertex version aliases. Vertex refuses an alias held by
  another version, so moving one is two ``mergeVersionAliases`` calls: ``-alias`` on the holder,
  then ``alias`` on the new version;
* gate status and reason → labels (``gate=accepted|rejected``) and the version description, so a
  rejected version stays visible in the console with why it was rejected.

* lifecycle status (``registered``, ``champion``, ``rolled_back``, ``retired``) → the version's
  ``status`` label and its description, rewritten by ``UpdateModel`` on the version
  (``models/<id>@<version>``: version-level labels and ``version_description``).

Every call is built as a request object first (``*_request`` methods, pure functions of their
arguments) and only then sent, which is what the tests check, against a local HTTP server speaking
the Vertex REST protocol with anonymous credentials. The audit trail in the cloud: the current
state in aliases, labels and descriptions; every change (who, when, the request) in Cloud Audit
Logs (Admin Activity) of these calls; the history with reasons in the ``model_versions`` table.
:class:`salesloop.vertex.registry.VertexRegistry` builds the registry port on this adapter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud import aiplatform_v1
from google.protobuf import field_mask_pb2

# Vertex's rules: aliases start with a letter, end alphanumeric, no "default" (reserved), and a
# version id is a number; labels are lowercase.
_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")
_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_LABEL_VALUE = re.compile(r"[^a-z0-9_-]")


class VertexRegistryError(ValueError):
    """A name, alias or label Vertex would reject (caught before any call)."""


def _check_alias(alias: str) -> str:
    if alias == "default" or not _ALIAS.match(alias):
        raise VertexRegistryError(f"invalid Vertex version alias {alias!r}")
    return alias


def label_value(value: str) -> str:
    """A string as a valid label value (lowercase, [a-z0-9_-], ≤ 63 characters)."""
    return _LABEL_VALUE.sub("-", value.lower())[:63]


@dataclass(frozen=True)
class RegisteredVersion:
    model: str  # parent model resource name
    version_id: str

    @property
    def name(self) -> str:
        return f"{self.model}@{self.version_id}"


class VertexModelRegistry:
    def __init__(
        self,
        project: str,
        location: str,
        model_id: str,
        *,
        serving_image: str,
        credentials: Credentials | None = None,
        api_endpoint: str | None = None,
        client: Any | None = None,
    ) -> None:
        if not _MODEL_ID.match(model_id):
            raise VertexRegistryError(f"invalid Vertex model id {model_id!r}")
        self.project = project
        self.location = location
        self.model_id = model_id
        self.serving_image = serving_image
        self._credentials = credentials
        self._api_endpoint = api_endpoint or f"{location}-aiplatform.googleapis.com"
        self._client = client

    # -- names ---------------------------------------------------------------------------------
    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def model_name(self) -> str:
        return f"{self.parent}/models/{self.model_id}"

    @property
    def client(self) -> Any:
        """The ModelServiceClient (REST), created on first use."""
        if self._client is None:
            self._client = aiplatform_v1.ModelServiceClient(
                credentials=self._credentials,
                transport="rest",
                client_options=ClientOptions(api_endpoint=self._api_endpoint),
            )
        return self._client

    # -- requests (pure) -------------------------------------------------------------------------
    def upload_request(
        self,
        *,
        artifact_uri: str,
        version_description: str,
        aliases: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        first_version: bool = False,
        service_account: str | None = None,
    ) -> aiplatform_v1.UploadModelRequest:
        """A new version of the parent model (or the parent itself on ``first_version``)."""
        if not artifact_uri.startswith("gs://"):
            raise VertexRegistryError(f"artifact_uri must be a gs:// folder, got {artifact_uri!r}")
        model = aiplatform_v1.Model(
            display_name=self.model_id,
            artifact_uri=artifact_uri,
            version_aliases=[_check_alias(a) for a in aliases],
            version_description=version_description[:1000],
            labels={k: label_value(v) for k, v in (labels or {}).items()},
            container_spec=aiplatform_v1.ModelContainerSpec(
                image_uri=self.serving_image,
                predict_route="/predict",
                health_route="/health",
                ports=[aiplatform_v1.Port(container_port=8080)],
            ),
        )
        request = aiplatform_v1.UploadModelRequest(parent=self.parent, model=model)
        if first_version:
            request.model_id = self.model_id
        else:
            request.parent_model = self.model_name
        if service_account:
            request.service_account = service_account
        return request

    def get_alias_request(self, alias: str) -> aiplatform_v1.GetModelRequest:
        return aiplatform_v1.GetModelRequest(name=f"{self.model_name}@{_check_alias(alias)}")

    def get_version_request(self, version_id: str) -> aiplatform_v1.GetModelRequest:
        if not str(version_id).isdigit():
            raise VertexRegistryError(f"Vertex version ids are numbers, got {version_id!r}")
        return aiplatform_v1.GetModelRequest(name=f"{self.model_name}@{version_id}")

    def update_version_request(
        self, version_id: str, *, labels: Mapping[str, str], description: str
    ) -> aiplatform_v1.UpdateModelRequest:
        """Version-level labels and description (``models/<id>@<version>``: Vertex updates the
        version, not the parent model; the labels map is replaced as a whole)."""
        model = aiplatform_v1.Model(
            name=f"{self.model_name}@{version_id}",
            labels={k: label_value(v) for k, v in labels.items()},
            version_description=description[:1000],
        )
        return aiplatform_v1.UpdateModelRequest(
            model=model,
            update_mask=field_mask_pb2.FieldMask(paths=["labels", "version_description"]),
        )

    def merge_aliases_request(
        self, version_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> aiplatform_v1.MergeVersionAliasesRequest:
        aliases = [_check_alias(a) for a in add] + [f"-{_check_alias(a)}" for a in remove]
        if not aliases:
            raise VertexRegistryError("nothing to merge")
        return aiplatform_v1.MergeVersionAliasesRequest(
            name=f"{self.model_name}@{version_id}", version_aliases=aliases
        )

    # -- calls -------------------------------------------------------------------------------------
    def register(
        self,
        *,
        artifact_uri: str,
        status: str,
        reason: str,
        metrics: Mapping[str, float] | None = None,
        aliases: Sequence[str] = (),
        first_version: bool = False,
        timeout_s: float = 600.0,
        extra_labels: Mapping[str, str] | None = None,
    ) -> RegisteredVersion:
        labels = {"gate": status, "app": "salesloop", **dict(extra_labels or {})}
        for key, value in (metrics or {}).items():
            labels[f"m_{key}"[:63]] = f"{value:.4f}".replace(".", "_")
        request = self.upload_request(
            artifact_uri=artifact_uri,
            version_description=f"{status}: {reason}",
            aliases=aliases,
            labels=labels,
            first_version=first_version,
        )
        response = self.client.upload_model(request=request).result(timeout=timeout_s)
        return RegisteredVersion(
            model=response.model or self.model_name, version_id=str(response.model_version_id)
        )

    def alias_holder(self, alias: str) -> str | None:
        """The version id holding ``alias``, or None when no version does."""
        from google.api_core import exceptions

        try:
            model = self.client.get_model(request=self.get_alias_request(alias))
        except exceptions.NotFound:
            return None
        return str(model.version_id)

    def set_alias(self, alias: str, version_id: str) -> str | None:
        """Move ``alias`` to ``version_id``; returns the previous holder (None if none)."""
        previous = self.alias_holder(alias)
        if previous == version_id:
            return previous
        if previous is not None:
            self.client.merge_version_aliases(
                request=self.merge_aliases_request(previous, remove=[alias])
            )
        self.client.merge_version_aliases(
            request=self.merge_aliases_request(version_id, add=[alias])
        )
        return previous

    def exists(self) -> bool:
        """Whether the parent model exists (the first upload creates it with ``model_id``)."""
        from google.api_core import exceptions

        try:
            self.client.get_model(request=aiplatform_v1.GetModelRequest(name=self.model_name))
        except exceptions.NotFound:
            return False
        return True

    def get(self, ref: str) -> Any | None:
        """The model version a numeric id or an alias names (``models/<id>@<ref>``), or None."""
        from google.api_core import exceptions

        request = (
            self.get_version_request(ref) if str(ref).isdigit() else self.get_alias_request(ref)
        )
        try:
            return self.client.get_model(request=request)
        except exceptions.NotFound:
            return None

    def update_version(
        self, version_id: str, *, labels: Mapping[str, str], description: str
    ) -> Any:
        return self.client.update_model(
            request=self.update_version_request(version_id, labels=labels, description=description)
        )

    def remove_alias(self, alias: str) -> str | None:
        """Take ``alias`` off whichever version holds it; returns that version id (None if none)."""
        holder = self.alias_holder(alias)
        if holder is not None:
            self.client.merge_version_aliases(
                request=self.merge_aliases_request(holder, remove=[alias])
            )
        return holder
