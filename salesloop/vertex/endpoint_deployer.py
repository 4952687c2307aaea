"""Traffic on the Vertex AI endpoint, with the local registry's semantics (canary, swap, rollback).

The rollout (:mod:`salesloop.rollout`) drives an endpoint through four operations, and this class
gives them the meaning :class:`salesloop.registry.LocalRegistry` gives them on the local model
server:

``deploy(e, v, 10)``
    ``DeployModel`` of the version with ``traffic_split {"0": 10, <champion>: 90}`` ("0" is
    Vertex's name for the model being deployed): the canary. If the version is already deployed
    (the next canary step), ``UpdateEndpoint`` with the new split instead.
``deploy(e, v, 100)``
    ``UpdateEndpoint`` giving the version 100%, then ``UndeployModel`` of every other deployed
    model: traffic moves first, so no request lands on a model being removed.
``set_traffic(e, {champion: 100})``
    the rollback: ``UpdateEndpoint`` with exactly that split (deploying, at 0%, a version that is
    not on the endpoint), then ``UndeployModel`` of every model left without traffic.
``undeploy(e, v)``
    ``UndeployModel`` with the remaining models' traffic rescaled in the same request (Vertex
    refuses to undeploy a model that still has traffic).

Deployed models are named ``<model_id>-<version>`` (``sales-forecast-v0003``), which is how
:meth:`deployed` maps Vertex's deployed-model ids back to registry versions; each runs the
model's serving container on dedicated resources as the serving identity.

``DeployModel`` and ``UndeployModel`` are long-running operations: each call waits for its
operation (``deploy_timeout_s``), and a failed operation (the container never became healthy)
raises, which the rollout turns into a rollback. Requests are built by pure ``*_request``
methods; the tests check them and the HTTP requests the real client sends to a loopback server
that keeps an endpoint's state. Nothing here has been run against Vertex AI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud import aiplatform_v1
from google.protobuf import field_mask_pb2

from salesloop.registry import DeployedModel, RegistryError, split_traffic

_DISPLAY_VERSION = re.compile(r"-(v\d{4,})$")


class VertexEndpointDeployer:
    def __init__(
        self,
        project: str,
        location: str,
        *,
        model_id: str,
        model_of: Callable[[str], str],
        machine_type: str = "n1-standard-2",
        min_replicas: int = 1,
        max_replicas: int = 1,
        service_account: str | None = None,
        deploy_timeout_s: float = 1800.0,
        credentials: Credentials | None = None,
        api_endpoint: str | None = None,
        client: Any | None = None,
    ) -> None:
        """``model_of(version)`` is the model version resource to deploy
        (``projects/P/locations/L/models/<id>@<vertex version id>``)."""
        self.project = project
        self.location = location
        self.model_id = model_id
        self.model_of = model_of
        self.machine_type = machine_type
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.service_account = service_account
        self.deploy_timeout_s = deploy_timeout_s
        self._credentials = credentials
        self._api_endpoint = api_endpoint or f"{location}-aiplatform.googleapis.com"
        self._client = client

    @property
    def client(self) -> Any:
        """The EndpointServiceClient (REST), created on first use."""
        if self._client is None:
            self._client = aiplatform_v1.EndpointServiceClient(
                credentials=self._credentials,
                transport="rest",
                client_options=ClientOptions(api_endpoint=self._api_endpoint),
            )
        return self._client

    def endpoint_name(self, endpoint_id: str) -> str:
        if "/" in endpoint_id:
            return endpoint_id
        return f"projects/{self.project}/locations/{self.location}/endpoints/{endpoint_id}"

    def display_name(self, version: str) -> str:
        return f"{self.model_id}-{version}"

    # -- requests (pure) -------------------------------------------------------------------------
    def deploy_request(
        self, endpoint_id: str, version: str, traffic_split: Mapping[str, int] | None
    ) -> aiplatform_v1.DeployModelRequest:
        """Deploy ``version``; ``traffic_split`` keys are deployed-model ids, "0" for this one
        (None or empty: the endpoint's split is left as is, the new model gets no traffic)."""
        deployed = aiplatform_v1.DeployedModel(
            model=self.model_of(version),
            display_name=self.display_name(version),
            dedicated_resources=aiplatform_v1.DedicatedResources(
                machine_spec=aiplatform_v1.MachineSpec(machine_type=self.machine_type),
                min_replica_count=self.min_replicas,
                max_replica_count=self.max_replicas,
            ),
        )
        if self.service_account:
            deployed.service_account = self.service_account
        split = {str(k): int(v) for k, v in (traffic_split or {}).items()}
        if split and sum(split.values()) != 100:
            raise RegistryError(f"traffic split must sum to 100, got {split}")
        return aiplatform_v1.DeployModelRequest(
            endpoint=self.endpoint_name(endpoint_id),
            deployed_model=deployed,
            traffic_split=split,
        )

    def traffic_request(
        self, endpoint_id: str, split: Mapping[str, int]
    ) -> aiplatform_v1.UpdateEndpointRequest:
        """The endpoint's whole split (deployed-model id → percent; missing ids get 0)."""
        clean = {str(k): int(v) for k, v in split.items() if int(v) > 0}
        if sum(clean.values()) != 100:
            raise RegistryError(f"traffic split must sum to 100, got {dict(split)}")
        return aiplatform_v1.UpdateEndpointRequest(
            endpoint=aiplatform_v1.Endpoint(
                name=self.endpoint_name(endpoint_id), traffic_split=clean
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["traffic_split"]),
        )

    def undeploy_request(
        self,
        endpoint_id: str,
        deployed_model_id: str,
        traffic_split: Mapping[str, int] | None = None,
    ) -> aiplatform_v1.UndeployModelRequest:
        return aiplatform_v1.UndeployModelRequest(
            endpoint=self.endpoint_name(endpoint_id),
            deployed_model_id=str(deployed_model_id),
            traffic_split={str(k): int(v) for k, v in (traffic_split or {}).items()},
        )

    # -- calls -----------------------------------------------------------------------------------
    def _endpoint(self, endpoint_id: str) -> Any:
        return self.client.get_endpoint(
            request=aiplatform_v1.GetEndpointRequest(name=self.endpoint_name(endpoint_id))
        )

    def deployed(self, endpoint_id: str) -> list[DeployedModel]:
        """What the endpoint serves now, as (deployed-model id, registry version, percent)."""
        endpoint = self._endpoint(endpoint_id)
        split = dict(endpoint.traffic_split)
        out = []
        for dm in endpoint.deployed_models:
            m = _DISPLAY_VERSION.search(dm.display_name or "")
            version = m.group(1) if m else (dm.display_name or f"{dm.model}@{dm.model_version_id}")
            out.append(DeployedModel(str(dm.id), version, int(split.get(dm.id, 0))))
        return sorted(out, key=lambda d: d.version)

    def _deploy(
        self, endpoint_id: str, version: str, traffic_split: Mapping[str, int] | None
    ) -> str:
        request = self.deploy_request(endpoint_id, version, traffic_split)
        response = self.client.deploy_model(request=request).result(timeout=self.deploy_timeout_s)
        return str(response.deployed_model.id)

    def _set_split(self, endpoint_id: str, split: Mapping[str, int]) -> None:
        self.client.update_endpoint(request=self.traffic_request(endpoint_id, split))

    def _undeploy(
        self, endpoint_id: str, deployed_model_id: str, split: Mapping[str, int] | None = None
    ) -> None:
        request = self.undeploy_request(endpoint_id, deployed_model_id, split)
        self.client.undeploy_model(request=request).result(timeout=self.deploy_timeout_s)

    def deploy(self, endpoint_id: str, version: str, traffic: int = 100) -> list[DeployedModel]:
        """Give ``version`` ``traffic`` percent; the others share the rest in proportion to their
        current traffic, and at 100 they are undeployed (see the module docstring)."""
        if not 0 <= traffic <= 100:
            raise RegistryError("traffic is a percentage in 0..100")
        current = self.deployed(endpoint_id)
        others = [m for m in current if m.version != version]
        mine = next((m for m in current if m.version == version), None)
        if traffic < 100 and not any(m.traffic > 0 for m in others):
            raise RegistryError(
                f"nothing else serves on {endpoint_id}; deploy with traffic=100 first"
            )
        rest = (
            split_traffic({m.id: m.traffic for m in others if m.traffic > 0}, 100 - traffic)
            if traffic < 100
            else {}
        )
        if mine is None:
            self._deploy(endpoint_id, version, {"0": traffic, **rest})
        else:
            self._set_split(endpoint_id, {mine.id: traffic, **rest})
        for m in others:
            if rest.get(m.id, 0) == 0:
                self._undeploy(endpoint_id, m.id)
        return self.deployed(endpoint_id)

    def set_traffic(self, endpoint_id: str, split: Mapping[str, int]) -> list[DeployedModel]:
        """Exactly ``split`` (version → percent, summing to 100); models left at 0 are undeployed."""
        if sum(split.values()) != 100 or any(v < 0 for v in split.values()):
            raise RegistryError(
                f"traffic split must be non-negative and sum to 100, got {dict(split)}"
            )
        current = self.deployed(endpoint_id)
        ids = {m.version: m.id for m in current}
        for version, pct in split.items():
            if pct > 0 and version not in ids:
                ids[version] = self._deploy(endpoint_id, version, None)
        wanted = {ids[v]: int(p) for v, p in split.items() if p > 0}
        self._set_split(endpoint_id, wanted)
        for m in self.deployed(endpoint_id):
            if m.id not in wanted:
                self._undeploy(endpoint_id, m.id)
        return self.deployed(endpoint_id)

    def undeploy(self, endpoint_id: str, version: str) -> list[DeployedModel]:
        """Remove ``version``; the remaining models take its traffic in proportion."""
        current = self.deployed(endpoint_id)
        mine = next((m for m in current if m.version == version), None)
        if mine is None:
            raise RegistryError(f"{version} is not deployed on {endpoint_id}")
        rest = [m for m in current if m is not mine]
        split = split_traffic({m.id: m.traffic or 1 for m in rest}) if rest else {}
        self._undeploy(endpoint_id, mine.id, split)
        return self.deployed(endpoint_id)
