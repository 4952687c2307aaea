"""The plain-HTTP Vertex client against the real model server: same answers as the SDK, same errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from salesloop.config import PredictorSettings, Settings
from salesloop.model import to_frame
from salesloop.predictor.codec import instances_from_frame
from salesloop.predictor.endpoint import EndpointPredictor, endpoint_for
from salesloop.predictor.rest import VertexRestEndpoint
from salesloop.registry import LocalRegistry
from salesloop.serving import DeploymentWatcher, ModelServer
from tests.model.synthetic import fitted_model, sales_frame

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Found null values in:UserWarning"),
]
ENDPOINT = "sales-forecast"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"))
    reg.deploy(ENDPOINT, reg.register(fitted_model()))
    with ModelServer(DeploymentWatcher(reg.root, ENDPOINT).start(), endpoint_id=ENDPOINT) as srv:
        yield srv


@pytest.fixture(scope="module")
def instances() -> list[dict[str, Any]]:
    frame = to_frame(sales_frame())
    return instances_from_frame(frame.groupby("unique_id", observed=True).tail(60))


def _settings(url: str, client: str, endpoint_id: str = ENDPOINT) -> Settings:
    return Settings(
        project="salesloop-local",
        predictor=PredictorSettings(api_endpoint=url, endpoint_id=endpoint_id, client=client),
    )


def test_same_predictions_and_labels_as_the_sdk(
    server: ModelServer, instances: list[dict[str, Any]]
) -> None:
    rest = EndpointPredictor(_settings(server.url, "http"))
    sdk = EndpointPredictor(_settings(server.url, "aiplatform"))
    assert isinstance(rest.endpoint, VertexRestEndpoint)
    assert rest.min_history == sdk.min_history == fitted_model().metadata.min_history
    a, b = rest.predict(instances), sdk.predict(instances)
    assert a.predictions == b.predictions
    assert a.model_version == b.model_version == "v0001"


def test_one_client_per_settings(server: ModelServer) -> None:
    s = _settings(server.url, "http")
    assert endpoint_for(s) is endpoint_for(s)


def test_http_errors_keep_their_status_and_only_transient_ones_are_retried(
    server: ModelServer, instances: list[dict[str, Any]]
) -> None:
    wrong = VertexRestEndpoint(server.url, "salesloop-local", "europe-west1", "no-such-endpoint")
    with pytest.raises(gexc.NotFound):
        wrong.predict(instances[:1])
    wrong._labels = {}  # as if read at creation: the predict call is under test
    predictor = EndpointPredictor(_settings(server.url, "http"), endpoint=wrong, max_attempts=3)
    with pytest.raises(gexc.NotFound):
        predictor.predict(instances[:1])
    assert predictor.requests_sent == 1, "a 404 is permanent"
    bad = VertexRestEndpoint(server.url, "salesloop-local", "europe-west1", ENDPOINT)
    with pytest.raises(gexc.BadRequest):
        bad.predict([{"series_id": "x"}])


def test_server_down_is_a_retried_connection_error(instances: list[dict[str, Any]]) -> None:
    down = VertexRestEndpoint("http://127.0.0.1:9", "salesloop-local", "europe-west1", ENDPOINT)
    predictor = EndpointPredictor(
        _settings("http://127.0.0.1:9", "http"), endpoint=down, max_attempts=2
    )
    with pytest.raises(Exception) as err:
        predictor.predict(instances[:1])
    assert "Connection" in type(err.value).__name__
    assert predictor.requests_sent in (0, 2)  # the label read may fail first; never one attempt


def test_function_cold_path_imports_neither_the_sdk_nor_lightgbm() -> None:
    """The function's modules load without the heavy libraries its hot path does not use."""
    code = (
        "import sys, salesloop.runtime, salesloop.predictor.rest, salesloop.predictor.endpoint;"
        "heavy = [m for m in ('google.cloud.aiplatform', 'lightgbm', 'mlforecast', 'sklearn')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
