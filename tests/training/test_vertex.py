"""The Vertex adapters, tested by what they build: request objects, the HTTP requests the real
client sends (to a local server, anonymous credentials), and the PipelineJob (never submitted)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from salesloop.config import load_settings
from salesloop.vertex.model_registry import VertexModelRegistry, VertexRegistryError
from salesloop.vertex.pipeline_job import build_pipeline_job

PARENT = "projects/salesloop-dev/locations/europe-west1"
MODEL = f"{PARENT}/models/sales-forecast"
IMAGE = "europe-west1-docker.pkg.dev/salesloop-dev/salesloop/serving:1"


def _registry(**kw: Any) -> VertexModelRegistry:
    return VertexModelRegistry(
        "salesloop-dev", "europe-west1", "sales-forecast", serving_image=IMAGE, **kw
    )


def test_upload_request_for_a_new_version_of_the_parent_model() -> None:
    req = _registry().upload_request(
        artifact_uri="gs://salesloop-dev-pipelines/root/run-1/candidates/lightgbm",
        version_description="accepted: all gate checks passed",
        aliases=["challenger"],
        labels={"gate": "accepted", "Run": "Run 1/2"},
    )
    assert req.parent == PARENT
    assert req.parent_model == MODEL and not req.model_id
    assert list(req.model.version_aliases) == ["challenger"]
    assert req.model.artifact_uri.endswith("/candidates/lightgbm")
    assert dict(req.model.labels) == {"gate": "accepted", "Run": "run-1-2"}
    assert req.model.container_spec.image_uri == IMAGE
    assert req.model.container_spec.predict_route == "/predict"
    first = _registry().upload_request(
        artifact_uri="gs://b/a", version_description="x", first_version=True
    )
    assert first.model_id == "sales-forecast" and not first.parent_model


@pytest.mark.parametrize("alias", ["default", "Champion", "1st", "x", "a_b"])
def test_aliases_vertex_would_reject_are_refused(alias: str) -> None:
    with pytest.raises(VertexRegistryError):
        _registry().upload_request(artifact_uri="gs://b/a", version_description="", aliases=[alias])


def test_local_artifacts_and_bad_model_ids_are_refused() -> None:
    with pytest.raises(VertexRegistryError, match="gs://"):
        _registry().upload_request(artifact_uri="/tmp/model", version_description="")
    with pytest.raises(VertexRegistryError, match="model id"):
        VertexModelRegistry("p", "l", "Sales Forecast", serving_image=IMAGE)


def test_merge_aliases_request_moves_and_removes() -> None:
    req = _registry().merge_aliases_request("7", add=["champion"], remove=["challenger"])
    assert req.name == f"{MODEL}@7"
    assert list(req.version_aliases) == ["champion", "-challenger"]
    with pytest.raises(VertexRegistryError):
        _registry().merge_aliases_request("7")


class _FakeVertex(BaseHTTPRequestHandler):
    """Answers the three Model Registry calls the adapter makes; records every request."""

    calls: list[tuple[str, str, Any]] = []
    champion: str | None = "2"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @property
    def url(self) -> str:
        return urllib.parse.unquote(self.path.split("?")[0])

    def do_GET(self) -> None:
        self.calls.append(("GET", self.url, None))
        if self.url == f"/v1/{MODEL}@champion":
            if self.champion is None:
                self._reply(404, {"error": {"code": 404, "message": "no", "status": "NOT_FOUND"}})
            else:
                self._reply(200, {"name": MODEL, "versionId": self.champion})
            return
        self._reply(404, {"error": {"code": 404, "message": self.url, "status": "NOT_FOUND"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.calls.append(("POST", self.url, body))
        if self.url == f"/v1/{PARENT}/models:upload":
            self._reply(
                200,
                {
                    "name": f"{PARENT}/operations/1",
                    "done": True,
                    "response": {
                        "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                        "model": MODEL,
                        "modelVersionId": "3",
                    },
                },
            )
            return
        if self.url.endswith(":mergeVersionAliases"):
            self._reply(200, {"name": MODEL, "versionAliases": body["versionAliases"]})
            return
        self._reply(404, {"error": {"code": 404, "message": self.url, "status": "NOT_FOUND"}})


@pytest.fixture
def fake_vertex() -> Iterator[str]:
    _FakeVertex.calls = []
    _FakeVertex.champion = "2"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVertex)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_client_sends_upload_and_alias_moves(fake_vertex: str) -> None:
    reg = _registry(credentials=AnonymousCredentials(), api_endpoint=fake_vertex)
    version = reg.register(
        artifact_uri="gs://salesloop-dev-pipelines/root/r/candidates/lightgbm",
        status="accepted",
        reason="all gate checks passed",
        metrics={"rmsse": 0.6412},
        aliases=["challenger"],
    )
    assert version.version_id == "3" and version.name == f"{MODEL}@3"
    method, path, body = _FakeVertex.calls[0]
    assert (method, path) == ("POST", f"/v1/{PARENT}/models:upload")
    assert body["parentModel"] == MODEL
    assert body["model"]["versionAliases"] == ["challenger"]
    assert body["model"]["labels"] == {"gate": "accepted", "app": "salesloop", "m_rmsse": "0_6412"}
    assert body["model"]["versionDescription"] == "accepted: all gate checks passed"

    previous = reg.set_alias("champion", "3")
    assert previous == "2"
    merges = [(p, b) for _, p, b in _FakeVertex.calls if p.endswith(":mergeVersionAliases")]
    assert merges == [
        (f"/v1/{MODEL}@2:mergeVersionAliases", {"versionAliases": ["-champion"]}),
        (f"/v1/{MODEL}@3:mergeVersionAliases", {"versionAliases": ["champion"]}),
    ]
    _FakeVertex.champion = None
    _FakeVertex.calls = []
    assert reg.set_alias("champion", "4") is None
    assert sum(":mergeVersionAliases" in p for _, p, _ in _FakeVertex.calls) == 1


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.pipeline import compile_pipeline

    return compile_pipeline(tmp_path_factory.mktemp("tpl") / "training.yaml", "img/training:7")


def test_compiled_template_wires_the_gate_and_the_image(template: Path) -> None:
    import yaml

    spec = yaml.safe_load(template.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 7
    assert {e["container"]["image"] for e in executors.values()} == {"img/training:7"}
    assert all("pip install" not in " ".join(e["container"]["command"]) for e in executors.values())
    tasks = spec["root"]["dag"]["tasks"]
    cond = tasks["condition-1"]
    assert cond["componentRef"]["name"] == "comp-condition-1"
    assert "gate-challenger" in json.dumps(cond["triggerPolicy"]) and "accepted" in json.dumps(cond)
    assert tasks["extract-frame"]["cachingOptions"] == {}  # caching off (enableCache omitted)


def test_pipeline_job_for_dev_is_built_offline(template: Path) -> None:
    settings = load_settings("dev")
    sub = build_pipeline_job(
        settings,
        template,
        parameters={"history_days": 500},
        credentials=AnonymousCredentials(),
        job_id="salesloop-training-test",
    )
    assert sub.service_account == "pipelines@salesloop-dev.iam.gserviceaccount.com"
    assert sub.pipeline_root == "gs://salesloop-dev-pipelines/root"
    resource = sub.job._gca_resource
    assert resource.runtime_config.gcs_output_directory == "gs://salesloop-dev-pipelines/root"
    values = dict(resource.runtime_config.parameter_values)
    assert values["env"] == "dev" and values["history_days"] == 500
    assert values["endpoint_id"] == "1001"
    assert dict(resource.labels) == {"app": "salesloop", "env": "dev", "component": "training"}
    assert sub.job.job_id == "salesloop-training-test"
    assert sub.project == "salesloop-dev" and sub.location == "europe-west1"
    assert "salesloop-training" in json.dumps(sub.describe())


def test_pipeline_job_refuses_local_and_missing_templates(tmp_path: Path, template: Path) -> None:
    with pytest.raises(ValueError, match="pipeline run"):
        build_pipeline_job(load_settings("local"), template, credentials=AnonymousCredentials())
    with pytest.raises(FileNotFoundError, match="pipeline compile"):
        build_pipeline_job(
            load_settings("dev"), tmp_path / "nope.yaml", credentials=AnonymousCredentials()
        )
