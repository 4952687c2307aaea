from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from salesloop.config import PredictorSettings, Settings
from salesloop.model import to_frame
from salesloop.predictor import PredictionBatch, open_predictor
from salesloop.predictor.base import chunk_instances, instance_cost, request_overhead
from salesloop.predictor.codec import (
    decode_instances,
    instances_from_frame,
    instances_from_history,
    predictions_to_frame,
)
from salesloop.predictor.endpoint import EndpointPredictor
from salesloop.predictor.in_process import InProcessPredictor
from salesloop.registry import LocalRegistry
from salesloop.serving import DeploymentWatcher, ModelServer
from tests.model.synthetic import fitted_model, sales_frame

pytestmark = pytest.mark.filterwarnings("ignore:Found null values in:UserWarning")
ENDPOINT = "sales-forecast"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> LocalRegistry:
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"))
    reg.deploy(ENDPOINT, reg.register(fitted_model()))
    return reg


@pytest.fixture(scope="module")
def server(registry: LocalRegistry) -> Iterator[ModelServer]:
    with ModelServer(
        DeploymentWatcher(registry.root, ENDPOINT).start(), endpoint_id=ENDPOINT
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def long_instances() -> list[dict[str, Any]]:
    """80 days per series: more than the model needs, so the predictor trims."""
    frame = to_frame(sales_frame())
    return instances_from_frame(frame.groupby("unique_id", observed=True).tail(80))


def _settings(url: str, max_bytes: int = 1_400_000) -> Settings:
    return Settings(
        project="salesloop-local",
        predictor=PredictorSettings(
            api_endpoint=url, endpoint_id=ENDPOINT, max_payload_bytes=max_bytes
        ),
    )


@pytest.mark.integration
def test_endpoint_chunks_under_the_limit_and_keeps_order(
    server: ModelServer, registry: LocalRegistry, long_instances: list[dict[str, Any]]
) -> None:
    limit = 10_000  # the smallest the settings allow: ~14 packed series per request
    predictor = EndpointPredictor(_settings(server.url, limit))
    assert predictor.min_history == fitted_model().metadata.min_history
    shuffled = long_instances[::-1]
    batch = predictor.predict(shuffled)
    assert predictor.requests_sent >= 3, "40 series must not fit in one 10 kB request"
    assert server.httpd.largest_request_bytes <= limit
    assert [p["series_id"] for p in batch.predictions] == [i["series_id"] for i in shuffled]
    assert batch.model_version == "v0001" and batch.versions == {"v0001": len(shuffled)}
    # the same forecasts as the model computes in-process from the untrimmed history
    local = InProcessPredictor(registry.root, ENDPOINT).predict(shuffled)
    assert batch.predictions == local.predictions
    assert local.model_version == "v0001"


def test_chunking_is_greedy_ordered_and_bounded(long_instances: list[dict[str, Any]]) -> None:
    limit = 15_000
    chunks = chunk_instances(long_instances, limit)
    assert [i for c in chunks for i in c] == long_instances
    for c in chunks:
        assert request_overhead(None) + sum(instance_cost(i) for i in c) <= limit
    with pytest.raises(ValueError, match="alone needs"):
        chunk_instances(long_instances[:1], 2_000)


def test_transient_errors_are_retried() -> None:
    from google.api_core import exceptions as gexc

    class Flaky:
        labels: dict[str, str] = {}

        def __init__(self) -> None:
            self.calls = 0

        def predict(self, instances: list[dict[str, Any]], parameters: Any, timeout: float) -> Any:
            self.calls += 1
            if self.calls < 3:
                raise gexc.ServiceUnavailable("warming up")
            preds = [{"series_id": i["series_id"], "yhat": [1.0]} for i in instances]
            return type("R", (), {"predictions": preds, "model_version_id": "v0007"})()

    flaky = Flaky()
    predictor = EndpointPredictor(_settings("http://127.0.0.1:9"), endpoint=flaky)
    batch = predictor.predict([{"series_id": "a", "units": [1.0], "start": "2024-01-01"}])
    assert flaky.calls == 3 and batch.model_version == "v0007"

    class Broken(Flaky):
        def predict(self, instances: list[dict[str, Any]], parameters: Any, timeout: float) -> Any:
            self.calls += 1
            raise gexc.BadRequest("bad instance")

    broken = Broken()
    with pytest.raises(gexc.BadRequest):
        EndpointPredictor(_settings("http://127.0.0.1:9"), endpoint=broken).predict(
            [{"series_id": "a", "units": [1.0], "start": "2024-01-01"}]
        )
    assert broken.calls == 1, "a 400 is not retried"


def test_open_predictor_selects_by_kind(registry: LocalRegistry) -> None:
    settings = Settings(
        project="salesloop-local",
        predictor=PredictorSettings(kind="in_process", endpoint_id=ENDPOINT),
    )
    predictor = open_predictor(settings, registry.root)
    assert isinstance(predictor, InProcessPredictor)
    assert isinstance(open_predictor(_settings("http://127.0.0.1:9")), EndpointPredictor)


def test_instances_from_history_uses_the_recent_window() -> None:
    sales = sales_frame().copy()
    sales["date"] = pd.to_datetime(sales["date"])
    origin = sales["date"].max()
    recent = sales[sales["date"] > origin - pd.Timedelta(days=63)]
    last_year = sales[
        (sales["date"] <= origin - pd.Timedelta(days=357))
        & (sales["date"] > origin - pd.Timedelta(days=364))
    ]
    history = pd.concat([recent, last_year]).sample(frac=1.0, random_state=0)
    history = history[
        ~(
            (history["series_id"] == "CA_1/FOODS_1_000")
            & (history["date"] == origin - pd.Timedelta(days=3))
        )
    ]
    history["origin"] = origin
    instances = instances_from_history(history, recent_days=63)
    assert len(instances) == sales["series_id"].nunique()
    first = next(i for i in instances if i["series_id"] == "CA_1/FOODS_1_000")
    assert len(first["units"]) == 63 and first["units"][-4] == 0.0, "a missing day is 0 units"
    assert first["start"] == str((origin - pd.Timedelta(days=62)).date())
    decoded = decode_instances(instances)
    assert str(pd.Timestamp(decoded.origins[0]).date()) == str(origin.date())
    trimmed = instances_from_history(history, recent_days=63, max_periods=34)
    assert {len(i["units"]) for i in trimmed} == {34}


def test_predictions_to_frame_is_forecasts_shaped(
    registry: LocalRegistry, long_instances: list[dict[str, Any]]
) -> None:
    batch: PredictionBatch = InProcessPredictor(registry.root, ENDPOINT).predict(long_instances[:3])
    frame = predictions_to_frame(batch.predictions, sales_frame())
    assert list(frame.columns[:7]) == [
        "series_id",
        "store_id",
        "cat_id",
        "forecast_origin",
        "horizon_day",
        "target_date",
        "yhat",
    ]
    assert {"lo_80", "hi_80", "lo_95", "hi_95", "model_version"} <= set(frame.columns)
    assert len(frame) == 21 and list(frame["horizon_day"][:7]) == list(range(1, 8))
    assert (frame["target_date"] - frame["forecast_origin"]).dt.days.tolist()[:7] == list(
        range(1, 8)
    )
    assert np.all(frame["lo_80"] <= frame["yhat"]) and np.all(frame["yhat"] <= frame["hi_80"])


def test_in_process_follows_deployments(
    tmp_path: Path, long_instances: list[dict[str, Any]]
) -> None:
    reg = LocalRegistry(tmp_path)
    v1 = reg.register(fitted_model())
    v2 = reg.register(fitted_model(seed=1))
    reg.deploy(ENDPOINT, v1)
    predictor = InProcessPredictor(reg.root, ENDPOINT)
    assert predictor.predict(long_instances[:2]).model_version == v1
    reg.deploy(ENDPOINT, v2)
    assert predictor.predict(long_instances[:2]).model_version == v2


def test_packed_wire_form_gives_identical_predictions(long_instances: list[dict[str, Any]]) -> None:
    from salesloop.predictor.codec import pack_instances, unpack_predictions
    from salesloop.serving import predict_instances

    sample = [
        dict(long_instances[0], future={"snap": [1, 0, 1], "sell_price": [None, 0.5]}),
        *long_instances[1:4],
    ]
    packed = pack_instances(sample)
    assert isinstance(packed[0]["units"], str) and packed[0]["future"]["sell_price"] == "nan,0.5"
    assert isinstance(sample[0]["units"], list), "packing copies"
    plain = predict_instances(fitted_model(), sample)
    wire = predict_instances(fitted_model(), packed, {"packed": True})
    assert isinstance(wire[0]["yhat"], str)
    assert unpack_predictions(wire) == plain
