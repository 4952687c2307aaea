"""A registered AutoETS version is served like a LightGBM one (the pipeline may choose it).

The serving runtime is the project's runtime dependencies (``docker/serving.Dockerfile`` syncs
``--no-default-groups``, the function archive exports the same pins), so statsforecast must be one
of them; the entry point is started the way Vertex starts the container (``AIP_*`` variables only,
the artifact folder as ``AIP_STORAGE_URI``) in a fresh interpreter, which is where a missing
import would show.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from salesloop.config import ForecastSettings
from salesloop.evaluation.candidates import build_model
from salesloop.model import to_frame
from salesloop.predictor.codec import instances_from_frame, predictions_to_frame
from salesloop.registry import LocalRegistry
from tests.model.synthetic import synth_sales
from tests.serving.test_server import _start_cli, _stop_cli

REPO = Path(__file__).resolve().parents[2]


def test_statsforecast_is_a_runtime_dependency() -> None:
    """Runtime, not the training group: the serving image and the function install only those."""
    from modules.function_archive import runtime_requirements

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = {d.split(">")[0].split("=")[0].strip() for d in project["project"]["dependencies"]}
    assert "statsforecast" in runtime
    training = project["dependency-groups"]["training"]
    assert not [d for d in training if d.startswith("statsforecast")]
    pins = {line.split("==")[0].lower() for line in runtime_requirements(REPO).splitlines()}
    assert {"statsforecast", "lightgbm", "mlforecast"} <= pins
    dockerfile = (REPO / "docker" / "serving.Dockerfile").read_text()
    assert "--no-default-groups" in dockerfile and "--group" not in dockerfile


@pytest.mark.integration
@pytest.mark.slow
def test_a_registered_auto_ets_version_is_served_from_its_storage_uri(tmp_path: Path) -> None:
    frame = to_frame(synth_sales(n_series=6, n_days=150, seed=2))
    model = build_model("auto_ets", ForecastSettings(), stat_max_history=120)
    model.fit(frame)
    reg = LocalRegistry(tmp_path / "registry")
    version = reg.register(model, {"status": "accepted"}, reason="test")
    assert reg.get(version).model_kind == "auto_ets"
    history = frame.groupby("unique_id", observed=True).tail(63)
    instances: list[dict[str, Any]] = instances_from_frame(history)
    expected = model.predict(history, 7, [80, 95])

    env = {
        "AIP_STORAGE_URI": str(reg.get(version).path),
        "AIP_HTTP_PORT": "0",
        "AIP_HEALTH_ROUTE": "/health",
        "AIP_PREDICT_ROUTE": "/predict",
    }
    proc, url = _start_cli([], env)
    try:
        health = requests.get(url + "/health", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["traffic"] == {version: 100}
        r = requests.post(url + "/predict", json={"instances": instances}, timeout=60)
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
    finally:
        _stop_cli(proc)
    served = predictions_to_frame(preds).rename(
        columns={"series_id": "unique_id", "target_date": "ds"}
    )
    both = expected.assign(unique_id=expected["unique_id"].astype(str)).merge(
        served, on=["unique_id", "ds"], suffixes=("", "_served")
    )
    assert len(both) == len(expected) == 6 * 7
    for col in ("yhat", "lo_80", "hi_95"):
        pd.testing.assert_series_equal(
            both[col],
            both[f"{col}_served"],
            check_names=False,
            rtol=0,
            atol=6e-5,  # the codec rounds to 4 decimals
        )
