"""The registry port on Vertex AI, tested by what it sends: the real google-cloud-aiplatform and
google-cloud-storage clients, anonymous credentials, pointed at a loopback server that keeps a
model registry's, an endpoint's and a bucket's state (``tests/training/fake_vertex.py``).

The pipeline steps (champion lookup, register, rollout) run against it through the same
``ModelRegistry`` port as locally; the canary's requests are checked call by call: DeployModel
with a 10/90 split, UpdateEndpoint to 100, UndeployModel of the old version, the alias moves and
the version labels; and the rollback: traffic back to the champion, the challenger undeployed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from google.auth.credentials import AnonymousCredentials

from salesloop.config import load_settings
from salesloop.model import to_frame
from salesloop.pipeline import steps
from salesloop.registry import RegistryError
from salesloop.rollout import ProbeResult, canary_rollout, probe_history
from salesloop.training_settings import CanarySettings, SanitySettings
from salesloop.vertex.endpoint_deployer import VertexEndpointDeployer
from salesloop.vertex.registry import VertexRegistry
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.evaluation.fakes import MeanModel
from tests.training.fake_vertex import ENDPOINT, ENDPOINT_ID, MODEL, PARENT, FakeGoogle
from tests.training.helpers import daily_sales, write_overlay

BUCKET = "salesloop-dev-pipelines"
ROOT = f"gs://{BUCKET}/root/registry"
IMAGE = "europe-west1-docker.pkg.dev/salesloop-dev/salesloop/serving:latest"
SERVING_SA = "model-serving@salesloop-dev.iam.gserviceaccount.com"
# What the rollout step reads from the overlay: no sleeping between steps, a small probe set.
FAST_ROLLOUT = {
    "canary": {"health_requests": 3, "settle_s": 0.0},
    "sanity": {"probe_series": 10},
}


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    server = FakeGoogle().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry(fake: FakeGoogle, tmp_path: Path) -> VertexRegistry:
    return VertexRegistry.from_settings(
        load_settings("dev"),
        ROOT,
        credentials=AnonymousCredentials(),
        api_endpoint=fake.url,
        storage_endpoint=fake.url,
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return to_frame(daily_sales(12, 60))


def _candidate(tmp: Path, model: MeanModel, name: str = "mean") -> Path:
    folder = model.save(tmp / "candidates" / name)
    # a binary model file next to metadata.json (CRLF and NUL bytes must survive the upload)
    (folder / "model.bin").write_bytes(b"\x00\r\n--not-a-boundary\r\n\xff" * 10)
    return folder


def _accepted(version_reason: str = "all gate checks passed") -> dict[str, Any]:
    return {
        "status": "accepted",
        "reason": version_reason,
        "candidate": "mean",
        "metrics": {"backtest": {"mean": {"rmsse": 0.7123, "mase": 0.91}}},
    }


def _champion_and_challenger(registry: VertexRegistry, tmp: Path) -> tuple[str, str]:
    v1 = registry.register(_candidate(tmp / "a", MeanModel()), _accepted())
    registry.set_alias("champion", v1, "initial")
    registry.deploy(ENDPOINT_ID, v1, 100)
    v2 = registry.register(_candidate(tmp / "b", MeanModel(window=14)), _accepted())
    registry.set_alias("challenger", v2, "passed the gate")
    return v1, v2


def test_register_uploads_the_artifact_once_then_a_version_of_the_parent_model(
    registry: VertexRegistry, fake: FakeGoogle, tmp_path: Path
) -> None:
    folder = _candidate(tmp_path, MeanModel())
    v1 = registry.register(folder, _accepted(), reason="accepted: all gate checks passed")
    assert v1 == "v0001"
    # artifact first, metadata.json (the claim of the id) before the model file, never overwriting
    uploads = fake.of("POST", r"^/upload/storage/v1/b/salesloop-dev-pipelines/o$")
    assert [c.query["ifGenerationMatch"] for c in uploads] == ["0", "0"]
    names = [json.loads(c.body.split(b"\r\n\r\n")[1].split(b"\r\n")[0])["name"] for c in uploads]
    assert names == [
        "root/registry/versions/v0001/metadata.json",
        "root/registry/versions/v0001/model.bin",
    ]
    stored = fake.state.objects[(BUCKET, "root/registry/versions/v0001/model.bin")]
    assert stored == (folder / "model.bin").read_bytes()
    meta = json.loads(fake.state.objects[(BUCKET, "root/registry/versions/v0001/metadata.json")])
    assert meta["version"] == "v0001" and meta["status"] == "accepted" and meta["registered_at"]

    (upload,) = fake.of("POST", r"/models:upload$")
    assert upload.body["modelId"] == "sales-forecast" and "parentModel" not in upload.body
    model = upload.body["model"]
    assert model["artifactUri"] == f"{ROOT}/versions/v0001"
    assert model["versionAliases"] == ["v0001"]
    assert model["containerSpec"]["imageUri"] == IMAGE
    assert model["containerSpec"]["predictRoute"] == "/predict"
    assert model["versionDescription"] == "accepted: accepted: all gate checks passed"
    assert model["labels"] == {
        "gate": "accepted",
        "app": "salesloop",
        "env": "dev",
        "status": "registered",
        "version": "v0001",
        "kind": "test_mean",
        "m_rmsse": "0_7123",
        "m_mase": "0_9100",
    }

    rejected = dict(_accepted("RMSSE not below SeasonalNaive"), status="rejected")
    v2 = registry.register(_candidate(tmp_path / "2", MeanModel(factor=3.0)), rejected)
    second = fake.of("POST", r"/models:upload$")[-1].body
    assert v2 == "v0002" and second["parentModel"] == MODEL and "modelId" not in second
    assert second["model"]["labels"]["status"] == "rejected"
    assert second["model"]["versionDescription"] == "rejected: RMSSE not below SeasonalNaive"

    # A concurrent registration claimed v0003 first: this one takes the next id.
    fake.state.objects[(BUCKET, "root/registry/versions/v0003/metadata.json")] = b"{}"
    assert registry.register(_candidate(tmp_path / "3", MeanModel()), _accepted()) == "v0004"
    assert registry.list_versions() == ["v0001", "v0002", "v0003", "v0004"]

    # get/load: resolved through the version alias, artifact downloaded from artifact_uri
    got = registry.get("v0002")
    assert got.metadata["status"] == "rejected" and got.metadata["version"] == "v0002"
    assert (got.path / "model.bin").read_bytes() == (folder / "model.bin").read_bytes()
    assert registry.load_model("v0002").metadata.params["factor"] == 3.0
    assert registry.vertex_version_id("v0002") == "2"
    assert registry.model_version_name("v0002") == f"{MODEL}@2"
    with pytest.raises(RegistryError, match="no Vertex model version"):
        registry.get("v0009")


def test_champion_lookup_for_the_backtest(
    registry: VertexRegistry, fake: FakeGoogle, tmp_path: Path, frame: pd.DataFrame
) -> None:
    assert steps.champion_of("", registry=registry) == (None, None)
    assert fake.calls[-1].path == f"/v1/{MODEL}@champion"
    v1 = registry.register(_candidate(tmp_path, MeanModel(window=3)), _accepted())
    registry.set_alias("champion", v1, "first version")
    version, model = steps.champion_of("", registry=registry)
    assert version == v1 and model is not None
    expected = MeanModel(window=3).predict(frame, 7)
    pd.testing.assert_frame_equal(model.predict(frame, 7), expected)
    # moving the alias: off the holder, then onto the new version
    v2 = registry.register(_candidate(tmp_path / "2", MeanModel()), _accepted())
    registry.set_alias("champion", v2, "promoted")
    merges = [(c.path, c.body) for c in fake.of("POST", r":mergeVersionAliases$")]
    assert merges[-2:] == [
        (f"/v1/{MODEL}@1:mergeVersionAliases", {"versionAliases": ["-champion"]}),
        (f"/v1/{MODEL}@2:mergeVersionAliases", {"versionAliases": ["champion"]}),
    ]
    assert registry.alias("champion") == v2 and registry.alias("challenger") is None


def test_register_step_writes_the_row_and_makes_the_challenger(
    registry: VertexRegistry, fake: FakeGoogle, tmp_path: Path
) -> None:
    _candidate(tmp_path, MeanModel())
    backtest = tmp_path / "backtest.json"
    backtest.write_text(
        json.dumps(
            {
                "chosen": "mean",
                "overall": {"mean": {"rmsse": 0.7, "mase": 0.9}, "SeasonalNaive": {"mase": 1.2}},
                "by_category": {},
                "plan": {"windows": 2, "horizon": 7},
                "champion_version": None,
            }
        )
    )
    decision = tmp_path / "decision.json"
    decision.write_text(
        json.dumps({"status": "accepted", "reasons": ["all gate checks passed"], "checks": {}})
    )
    wh = tmp_path / "wh.duckdb"
    DuckDBWarehouse(wh).close()
    version = steps.register_step(
        "dev",
        str(tmp_path / "candidates"),
        str(backtest),
        str(decision),
        ROOT,
        warehouse_path=str(wh),
        registry=registry,
    )
    assert version == "v0001" and registry.alias("challenger") == "v0001"
    assert fake.of("POST", r":mergeVersionAliases$")[-1].body == {"versionAliases": ["challenger"]}
    store = DuckDBWarehouse(wh, read_only=True)
    try:
        row = store.query("SELECT * FROM {{ model_versions }}").iloc[0]
    finally:
        store.close()
    assert (row["version"], row["status"], row["model_kind"]) == (
        "v0001",
        "registered",
        "test_mean",
    )
    assert row["reason"] == "accepted: all gate checks passed"
    assert json.loads(row["metrics"])["backtest"]["mean"]["mase"] == 0.9


def _rollout_step(
    registry: VertexRegistry, tmp: Path, frame: pd.DataFrame, version: str, probe: Any
) -> dict[str, Any]:
    frame_path = tmp / "frame.parquet"
    frame.to_parquet(frame_path)
    wh = tmp / "wh.duckdb"
    DuckDBWarehouse(wh).close()
    overlay = write_overlay(tmp / "overlay.yaml", FAST_ROLLOUT)
    out = steps.rollout_step(
        "dev",
        version,
        ROOT,
        ENDPOINT_ID,
        str(frame_path),
        str(tmp / "outcome.json"),
        overlay=str(overlay),
        probe=probe,
        warehouse_path=str(wh),
        registry=registry,
    )
    store = DuckDBWarehouse(wh, read_only=True)
    try:
        rows = store.query("SELECT * FROM {{ model_versions }} ORDER BY version")
    finally:
        store.close()
    out["rows"] = {r["version"]: (r["status"], r["reason"]) for r in rows.to_dict("records")}
    return out


def test_canary_on_the_endpoint_then_full_traffic_and_the_old_version_undeployed(
    registry: VertexRegistry, fake: FakeGoogle, tmp_path: Path, frame: pd.DataFrame
) -> None:
    v1, v2 = _champion_and_challenger(registry, tmp_path)
    (first,) = fake.of("POST", r":deployModel$")
    assert first.body["trafficSplit"] == {"0": 100}
    assert fake.traffic() == {"sales-forecast-v0001": 100}
    old_id = fake.state.deployed[0]["id"]
    fake.calls.clear()
    asked: list[tuple[str, int]] = []

    def probe(version: str, traffic: int, requests: int) -> ProbeResult:
        asked.append((version, traffic))
        return ProbeResult(requests, 0, [20.0] * requests, canary_responses=1)

    out = _rollout_step(registry, tmp_path, frame, v2, probe)
    assert out["promoted"] and not out["rolled_back"], out["reason"]
    # predictions on Vertex carry Vertex's version id: the probe looks for "2", not "v0002"
    assert asked == [("2", 10), ("2", 100)]
    new_id = next(d["id"] for d in fake.state.deployed)
    changes = fake.vertex_calls()
    assert changes == [
        ("POST", "endpoints/1001:deployModel"),
        ("PATCH", "endpoints/1001"),
        ("POST", "endpoints/1001:undeployModel"),
        ("POST", "models/sales-forecast@1:mergeVersionAliases"),
        ("POST", "models/sales-forecast@2:mergeVersionAliases"),
        ("POST", "models/sales-forecast@2:mergeVersionAliases"),
        ("PATCH", "models/sales-forecast@2"),
        ("PATCH", "models/sales-forecast@1"),
    ]
    (deploy,) = fake.of("POST", r":deployModel$")
    assert deploy.body["trafficSplit"] == {"0": 10, old_id: 90}
    dm = deploy.body["deployedModel"]
    assert dm["model"] == f"{MODEL}@2" and dm["displayName"] == "sales-forecast-v0002"
    assert dm["serviceAccount"] == SERVING_SA
    assert dm["dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-standard-2"},
        "minReplicaCount": 1,
        "maxReplicaCount": 2,
    }
    (update,) = fake.of("PATCH", f"^/v1/{ENDPOINT}$")
    assert update.query["updateMask"] == "trafficSplit"
    assert update.body["trafficSplit"] == {new_id: 100}
    (undeploy,) = fake.of("POST", r":undeployModel$")
    assert undeploy.body == {"deployedModelId": old_id}
    assert fake.traffic() == {"sales-forecast-v0002": 100}
    merges = [c.body["versionAliases"] for c in fake.of("POST", r":mergeVersionAliases$")]
    assert merges == [["-champion"], ["champion"], ["-challenger"]]
    assert registry.alias("champion") == v2 and registry.alias("challenger") is None
    labels = {c.path.rsplit("@", 1)[1]: c for c in fake.of("PATCH", r"/models/")}
    assert labels["2"].query["updateMask"] == "labels,versionDescription"
    assert labels["2"].body["labels"]["status"] == "champion"
    assert labels["2"].body["versionDescription"].startswith("champion: promoted after canary")
    assert labels["1"].body["labels"]["status"] == "retired"
    assert labels["1"].body["labels"]["app"] == "salesloop"  # the labels map is kept whole
    assert out["rows"] == {
        v1: ("retired", f"replaced as champion by {v2}"),
        v2: ("champion", out["reason"]),
    }


def test_failing_canary_sends_traffic_back_and_undeploys_the_challenger(
    registry: VertexRegistry, fake: FakeGoogle, tmp_path: Path, frame: pd.DataFrame
) -> None:
    v1, v2 = _champion_and_challenger(registry, tmp_path)
    old_id = fake.state.deployed[0]["id"]
    fake.calls.clear()
    fake.state.pending_polls = 1  # every operation answers "not done" once: the client polls

    def probe(version: str, traffic: int, requests: int) -> ProbeResult:
        return ProbeResult(requests, 1, [20.0] * requests, canary_responses=1, detail="(503)")

    out = _rollout_step(registry, tmp_path, frame, v2, probe)
    assert out["rolled_back"] and not out["promoted"]
    assert "endpoint_errors: 1/3 requests failed (503)" in out["reason"]
    deploy = fake.of("POST", r":deployModel$")[0]
    assert deploy.body["trafficSplit"] == {"0": 10, old_id: 90}
    (update,) = fake.of("PATCH", f"^/v1/{ENDPOINT}$")
    assert update.body["trafficSplit"] == {old_id: 100}
    (undeploy,) = fake.of("POST", r":undeployModel$")
    new_id = undeploy.body["deployedModelId"]
    assert new_id != old_id
    assert fake.traffic() == {"sales-forecast-v0001": 100}
    # both long-running operations were polled until done
    polled = fake.of("GET", r"/operations/")
    assert len(polled) >= 2
    assert registry.alias("champion") == v1 and registry.alias("challenger") is None
    merges = [(c.path, c.body) for c in fake.of("POST", r":mergeVersionAliases$")]
    assert merges == [(f"/v1/{MODEL}@2:mergeVersionAliases", {"versionAliases": ["-challenger"]})]
    (label,) = fake.of("PATCH", r"/models/")
    assert label.path.endswith("@2") and label.body["labels"]["status"] == "rolled_back"
    assert label.body["versionDescription"] == f"rolled_back: {out['reason']}"
    assert out["rows"] == {v2: ("rolled_back", out["reason"])}


def test_a_deployment_that_never_gets_healthy_rolls_back(
    registry: VertexRegistry, fake: FakeGoogle, tmp_path: Path, frame: pd.DataFrame
) -> None:
    v1, v2 = _champion_and_challenger(registry, tmp_path)
    old_id = fake.state.deployed[0]["id"]
    fake.state.fail_deploy = {"2"}
    fake.calls.clear()
    result = canary_rollout(
        registry,
        ENDPOINT_ID,
        v2,
        probe_history(frame, 10, 28),
        canary=CanarySettings(steps=(10, 100), health_requests=0, settle_s=0.0),
        sanity=SanitySettings(probe_series=10),
        horizon=7,
        levels=(80, 95),
    )
    assert result.rolled_back and "Model server never became ready" in result.reason
    assert [s.traffic for s in result.steps] == [0, 10]
    # nothing of v0002 was deployed: the champion's 100% is re-asserted, nothing undeployed
    assert [c.body["trafficSplit"] for c in fake.of("PATCH", f"^/v1/{ENDPOINT}$")] == [
        {old_id: 100}
    ]
    assert not fake.of("POST", r":undeployModel$")
    assert fake.traffic() == {"sales-forecast-v0001": 100}
    assert registry.alias("champion") == v1 and registry.alias("challenger") is None


def test_traffic_requests_are_checked_before_sending() -> None:
    deployer = VertexEndpointDeployer(
        "p", "l", model_id="m", model_of=lambda v: f"projects/p/locations/l/models/m@{v[1:]}"
    )
    req = deployer.deploy_request("7", "v0003", {"0": 25, "11": 75})
    assert req.endpoint == "projects/p/locations/l/endpoints/7"
    assert req.deployed_model.model == "projects/p/locations/l/models/m@0003"
    assert dict(req.traffic_split) == {"0": 25, "11": 75}
    assert not deployer.deploy_request("7", "v0003", None).traffic_split
    with pytest.raises(RegistryError, match="sum to 100"):
        deployer.deploy_request("7", "v0003", {"0": 25, "11": 70})
    update = deployer.traffic_request("7", {"11": 100, "12": 0})
    assert dict(update.endpoint.traffic_split) == {"11": 100}
    assert list(update.update_mask.paths) == ["traffic_split"]
    with pytest.raises(RegistryError):
        deployer.traffic_request("7", {"11": 90})
    undeploy = deployer.undeploy_request("7", "12", {"11": 100})
    assert undeploy.deployed_model_id == "12" and dict(undeploy.traffic_split) == {"11": 100}


def test_open_registry_routes_cloud_roots_to_vertex(tmp_path: Path) -> None:
    from salesloop.registry import LocalRegistry

    dev = load_settings("dev")
    reg = steps.open_registry(ROOT, dev)
    assert isinstance(reg, VertexRegistry)
    assert reg.root == ROOT and reg.env == "dev"
    assert reg.models.model_name == MODEL and reg.models.serving_image == IMAGE
    assert reg.endpoints.endpoint_name("1001") == ENDPOINT
    assert reg.endpoints.service_account == SERVING_SA
    assert reg.artifacts.project == "salesloop-dev"
    # the root `salesloop pipeline submit` passes (cloud_parameters) is the same folder
    from salesloop.training_settings import training_settings
    from salesloop.vertex.pipeline_job import cloud_parameters

    assert cloud_parameters(dev, training_settings(dev))["registry_root"] == ROOT
    short = steps.open_registry("vertex:", dev)
    assert isinstance(short, VertexRegistry) and short.root == ROOT
    with pytest.raises(ValueError, match="settings"):
        steps.open_registry(ROOT)
    assert isinstance(steps.open_registry(str(tmp_path / "r")), LocalRegistry)
    assert PARENT in reg.models.parent
