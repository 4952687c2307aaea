from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesloop.model import to_frame
from salesloop.predictor.codec import instances_from_frame
from salesloop.registry import LocalRegistry
from salesloop.serving import DeploymentWatcher, ModelServer
from tests.model.synthetic import fitted_model, sales_frame

ENDPOINT = "sales-forecast"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> LocalRegistry:
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"))
    version = reg.register(fitted_model(), {"note": "serving tests"})
    reg.deploy(ENDPOINT, version, reason="test")
    return reg


@pytest.fixture(scope="module")
def server(registry: LocalRegistry) -> Iterator[ModelServer]:
    watcher = DeploymentWatcher(registry.root, ENDPOINT, poll_s=0.05).start()
    with ModelServer(watcher, endpoint_id=ENDPOINT) as srv:
        yield srv


@pytest.fixture(scope="module")
def instances() -> list[dict]:
    frame = to_frame(sales_frame())
    n = fitted_model().metadata.min_history
    return instances_from_frame(frame.groupby("unique_id", observed=True).tail(n))


@pytest.fixture
def registry_path(registry: LocalRegistry) -> Path:
    return registry.root
