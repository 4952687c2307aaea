"""Predictions from a Vertex AI endpoint (or the local server speaking its protocol).

``settings.predictor.api_endpoint`` set (local): ``aiplatform.init(api_endpoint=..., api_transport=
"rest", credentials=AnonymousCredentials())``. Unset (cloud): application default credentials and
the regional Vertex endpoint. The ``aiplatform.Endpoint`` object does a GET when constructed, so one
is built per process and endpoint and shared (a Cloud Function instance serves many events).

Instances travel packed (arrays as comma-separated strings: the client library's protobuf
conversion costs ~10 µs per JSON value, see :mod:`salesloop.predictor.codec`). A batch is split
into chunks whose request body stays under ``predictor.max_payload_bytes`` (the
endpoint rejects bodies over 1.5 MB); chunks are retried on transient errors (429, 5xx, timeouts,
connection errors) with exponential backoff; predictions come back in request order, each stamped
with the model version that produced it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from salesloop.config import Settings
from salesloop.predictor.base import PredictionBatch, chunk_instances, majority_version
from salesloop.predictor.codec import pack_instances, trim_instances, unpack_predictions

log = structlog.get_logger("predictor")

LABELS_TTL_S = 300.0
_ENDPOINTS: dict[tuple[str, str, str | None, str, str], Any] = {}
_LOCK = threading.Lock()


def _transient(exc: BaseException) -> bool:
    from google.api_core import exceptions as gexc

    if isinstance(
        exc,
        (
            gexc.ServiceUnavailable,
            gexc.TooManyRequests,
            gexc.InternalServerError,
            gexc.DeadlineExceeded,
            gexc.GatewayTimeout,
            gexc.BadGateway,
        ),
    ):
        return True
    try:
        import requests

        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))


def endpoint_for(settings: Settings) -> Any:
    """The process-wide endpoint client for these settings (constructed once): an
    ``aiplatform.Endpoint``, or with ``predictor.client: http`` the lean
    :class:`~salesloop.predictor.rest.VertexRestEndpoint` speaking the same REST protocol."""
    p = settings.predictor
    key = (settings.project, settings.region, p.api_endpoint, p.endpoint_id, p.client)
    with _LOCK:
        endpoint = _ENDPOINTS.get(key)
        if endpoint is None and p.client == "http":
            from salesloop.predictor.rest import VertexRestEndpoint

            endpoint = _ENDPOINTS[key] = VertexRestEndpoint.from_settings(settings)
        if endpoint is None:
            from google.cloud import aiplatform

            if p.api_endpoint:
                from google.auth.credentials import AnonymousCredentials

                aiplatform.init(
                    project=settings.project,
                    location=settings.region,
                    api_endpoint=p.api_endpoint,
                    api_transport="rest",
                    credentials=AnonymousCredentials(),
                )
            else:
                aiplatform.init(project=settings.project, location=settings.region)
            endpoint = _construct(aiplatform, p.endpoint_id)
            _ENDPOINTS[key] = endpoint
        return endpoint


@retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(6),
    wait=wait_exponential_jitter(initial=0.2, max=5.0),
    reraise=True,
)
def _construct(aiplatform: Any, endpoint_id: str) -> Any:
    return aiplatform.Endpoint(endpoint_id)


class EndpointPredictor:
    """The Predictor port over ``aiplatform.Endpoint.predict``."""

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint: Any = None,
        max_attempts: int = 5,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self._endpoint = endpoint
        self.max_attempts = max_attempts
        self.parameters = dict(parameters) if parameters else None
        self.requests_sent = 0
        self._labels_at = float("-inf")
        self._labels_synced = False

    @property
    def endpoint(self) -> Any:
        if self._endpoint is None:
            self._endpoint = endpoint_for(self.settings)
        return self._endpoint

    @property
    def min_history(self) -> int | None:
        """History the deployed model(s) need, from the endpoint's labels (None if unknown).

        The labels are re-read every ``LABELS_TTL_S`` (a new deployment may need more history;
        the endpoint object itself is long-lived).
        """
        now = time.monotonic()
        if now - self._labels_at > LABELS_TTL_S:
            self._labels_at = now
            sync = getattr(self.endpoint, "_sync_gca_resource", None)
            if callable(sync) and self._labels_synced:
                try:
                    sync()
                except Exception as exc:  # stale labels are better than no forecast
                    log.warning("endpoint_refresh_failed", error=str(exc))
            self._labels_synced = True
        labels = getattr(self.endpoint, "labels", None) or {}
        value = labels.get("salesloop-min-history")
        return int(value) if value else None

    def predict(self, instances: list[dict[str, Any]]) -> PredictionBatch:
        if not instances:
            return PredictionBatch([], "")
        need = self.min_history
        if need:
            instances = trim_instances(instances, need, self.settings.forecast.freq)
        wire = pack_instances(instances)
        params = {**(self.parameters or {}), "packed": True}
        chunks = chunk_instances(wire, self.settings.predictor.max_payload_bytes, params)
        predictions: list[dict[str, Any]] = []
        for chunk in chunks:
            response = self._predict_chunk(list(chunk), params)
            if len(response.predictions) != len(chunk):
                raise RuntimeError(
                    f"endpoint returned {len(response.predictions)} predictions for {len(chunk)} instances"
                )
            version = str(response.model_version_id or "")
            for pred in unpack_predictions(response.predictions):
                pred["model_version"] = version
                predictions.append(pred)
        log.debug("predicted", instances=len(instances), chunks=len(chunks))
        return PredictionBatch(predictions, majority_version(predictions))

    def _predict_chunk(self, chunk: list[Mapping[str, Any]], params: dict[str, Any]) -> Any:
        @retry(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=0.2, max=5.0),
            reraise=True,
        )
        def call() -> Any:
            self.requests_sent += 1
            return self.endpoint.predict(
                instances=chunk,
                parameters=params,
                timeout=self.settings.predictor.timeout_s,
            )

        return call()
