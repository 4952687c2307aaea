"""Vertex online prediction over plain HTTP: the two REST calls the function needs, nothing more.

``google-cloud-aiplatform`` costs ~9 s of CPU to import and, per call, renders the request as
indented protobuf JSON and converts every response value through protobuf ``Value`` messages:
measured on the function path, ~50 ms of a one-series event and most of a cold start. This
client sends the same REST requests (``GET .../endpoints/E`` once for the labels,
``POST .../endpoints/E:predict``) with a keep-alive ``requests`` session per thread, and answers
like ``aiplatform.Endpoint`` does (``labels``; ``predict()`` → ``predictions``,
``model_version_id``), so :class:`~salesloop.predictor.endpoint.EndpointPredictor` keeps its
chunking, trimming and retries unchanged. HTTP errors become ``google.api_core`` exceptions of
the same status, so the predictor's notion of a transient error is the same for both clients.

Selected with ``predictor.client: http``. With ``api_endpoint`` set (local) requests go there
unauthenticated; without it they go to ``https://{region}-aiplatform.googleapis.com`` with the
application default credentials (``google.auth``), which has not been exercised against Google
Cloud from this repository.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

from salesloop.config import Settings


@dataclass(frozen=True)
class RestPrediction:
    predictions: list[dict[str, Any]]
    model_version_id: str | None
    deployed_model_id: str | None = None


@dataclass
class VertexRestEndpoint:
    """``aiplatform.Endpoint``'s ``labels`` and ``predict`` over the Vertex REST paths."""

    base_url: str
    project: str
    location: str
    endpoint_id: str
    authorized: bool = False
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _labels: dict[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> VertexRestEndpoint:
        p = settings.predictor
        base = p.api_endpoint or f"https://{settings.region}-aiplatform.googleapis.com"
        if "://" not in base:
            base = f"https://{base}"
        return cls(
            base.rstrip("/"),
            settings.project,
            settings.region,
            p.endpoint_id,
            authorized=p.api_endpoint is None,
        )

    @property
    def resource_url(self) -> str:
        return (
            f"{self.base_url}/v1/projects/{self.project}/locations/{self.location}"
            f"/endpoints/{self.endpoint_id}"
        )

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            if self.authorized:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials, _ = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/cloud-platform"]
                )
                session = AuthorizedSession(credentials)
            else:
                session = requests.Session()
            self._local.session = session
        return session

    def _call(
        self, method: str, url: str, body: bytes | None, timeout: float | None
    ) -> dict[str, Any]:
        resp = self._session().request(
            method,
            url,
            data=body,
            headers={"Content-Type": "application/json"} if body is not None else None,
            timeout=timeout,
        )
        if resp.status_code != 200:
            from google.api_core import exceptions as gexc

            # A server that refuses a request early may not have read its body; a keep-alive
            # connection would then parse that body as the next request. Start afresh.
            self._session().close()

            try:
                message = resp.json().get("error", {}).get("message") or resp.text
            except (ValueError, AttributeError):
                message = resp.text
            raise gexc.from_http_status(resp.status_code, str(message)[:500])
        out: dict[str, Any] = resp.json()
        return out

    @property
    def labels(self) -> dict[str, str]:
        """The endpoint's labels, read once (as ``aiplatform.Endpoint`` reads them at creation)."""
        if self._labels is None:
            resource = self._call("GET", self.resource_url, None, 30.0)
            self._labels = dict(resource.get("labels") or {})
        return self._labels

    def _sync_gca_resource(self) -> None:
        """Re-read the resource (the name ``aiplatform`` uses; the predictor calls it on a TTL)."""
        self._labels = None
        _ = self.labels

    def predict(
        self,
        instances: list[Any],
        parameters: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> RestPrediction:
        body: dict[str, Any] = {"instances": instances}
        if parameters:
            body["parameters"] = parameters
        out = self._call(
            "POST",
            f"{self.resource_url}:predict",
            json.dumps(body, separators=(",", ":")).encode(),
            timeout,
        )
        return RestPrediction(
            list(out.get("predictions") or []),
            out.get("modelVersionId"),
            out.get("deployedModelId"),
        )
