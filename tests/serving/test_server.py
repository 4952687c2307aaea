from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from salesloop.predictor.base import pretty_size
from salesloop.registry import LocalRegistry
from salesloop.serving import DeploymentWatcher, ModelServer, predict_instances
from tests.model.synthetic import fitted_model
from tests.serving.conftest import ENDPOINT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Found null values in:UserWarning"),
]


def test_aip_routes(server: ModelServer, instances: list[dict[str, Any]]) -> None:
    health = requests.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 200 and health.json()["traffic"] == {"v0001": 100}
    sample = instances[:5][::-1]
    r = requests.post(f"{server.url}/predict", json={"instances": sample}, timeout=30)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["series_id"] for p in preds] == [i["series_id"] for i in sample]
    p = preds[0]
    assert set(p) == {
        "series_id",
        "forecast_origin",
        "target_dates",
        "yhat",
        "lo_80",
        "hi_80",
        "lo_95",
        "hi_95",
    }
    assert len(p["target_dates"]) == 7 and p["target_dates"][0] > p["forecast_origin"]
    # parameters choose levels and a shorter horizon
    r = requests.post(
        f"{server.url}/predict",
        json={"instances": sample, "parameters": {"levels": [50], "horizon": 3}},
        timeout=30,
    )
    assert (
        set(r.json()["predictions"][0]) >= {"lo_50", "hi_50"}
        and len(r.json()["predictions"][0]["yhat"]) == 3
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not JSON"),
        (b'{"rows": []}', "instances"),
        (b'{"instances": []}', "empty"),
        (b'{"instances": [{"series_id": "a", "start": "2024-01-01", "units": [-1]}]}', ">= 0"),
        (
            b'{"instances": [{"series_id": "a", "start": "2024-01-01", "units": [1], "snap": [1, 0]}]}',
            "as long as",
        ),
        (
            b'{"instances": [{"series_id": "a", "start": "2024-01-01", "units": [1]}], "parameters": {"horizon": 99}}',
            "horizon",
        ),
    ],
)
def test_bad_requests_are_400(server: ModelServer, body: bytes, fragment: str) -> None:
    r = requests.post(f"{server.url}/predict", data=body, timeout=10)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and fragment in err["message"]


def test_unknown_routes_and_endpoints_are_404(server: ModelServer) -> None:
    assert requests.get(f"{server.url}/nope", timeout=5).status_code == 404
    r = requests.get(f"{server.url}/v1/projects/p/locations/l/endpoints/other", timeout=5)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"


def test_endpoint_resource(server: ModelServer) -> None:
    r = requests.get(
        f"{server.url}/v1/projects/proj-1/locations/europe-west1/endpoints/{ENDPOINT}", timeout=5
    )
    res = r.json()
    assert res["name"] == f"projects/proj-1/locations/europe-west1/endpoints/{ENDPOINT}"
    assert res["deployedModels"][0]["modelVersionId"] == "v0001"
    assert (
        res["deployedModels"][0]["model"]
        == "projects/proj-1/locations/europe-west1/models/salesloop-forecast"
    )
    assert res["trafficSplit"] == {res["deployedModels"][0]["id"]: 100}
    assert res["labels"]["salesloop-min-history"] == str(fitted_model().metadata.min_history)


def test_real_aiplatform_client(server: ModelServer, instances: list[dict[str, Any]]) -> None:
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    aiplatform.init(
        project="salesloop-local",
        location="europe-west1",
        api_endpoint=server.url,
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )
    endpoint = aiplatform.Endpoint(ENDPOINT)
    assert endpoint.traffic_split == {"1": 100}
    response = endpoint.predict(instances=instances[:20])
    assert response.model_version_id == "v0001"
    assert response.deployed_model_id == "1"
    assert str(response.model_resource_name).endswith("/models/salesloop-forecast")
    assert [p["series_id"] for p in response.predictions] == [
        i["series_id"] for i in instances[:20]
    ]
    local = predict_instances(fitted_model(), instances[:20])
    assert response.predictions == local, "JSON round trip through protobuf changes nothing"
    with pytest.raises(gexc.BadRequest):
        endpoint.predict(instances=[{"series_id": "x", "start": "2024-01-01", "units": [-5]}])
    with pytest.raises(gexc.NotFound):
        aiplatform.Endpoint("other-endpoint").predict(instances=instances[:1])


def test_no_deployment_is_503(tmp_path: Path) -> None:
    watcher = DeploymentWatcher(LocalRegistry(tmp_path).root, ENDPOINT).start()
    with ModelServer(watcher, endpoint_id=ENDPOINT) as srv:
        assert requests.get(f"{srv.url}/health", timeout=5).status_code == 503
        r = requests.post(f"{srv.url}/predict", json={"instances": [{"series_id": "a"}]}, timeout=5)
        assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"


def test_traffic_split_follows_the_percentages(
    tmp_path: Path, instances: list[dict[str, Any]]
) -> None:
    reg = LocalRegistry(tmp_path)
    v1 = reg.register(fitted_model())
    v2 = reg.register(fitted_model(seed=1))
    reg.deploy(ENDPOINT, v1)
    reg.deploy(ENDPOINT, v2, traffic=10, reason="canary")
    watcher = DeploymentWatcher(reg.root, ENDPOINT).start()
    url_path = f"/v1/projects/p/locations/l/endpoints/{ENDPOINT}:predict"
    with ModelServer(watcher, endpoint_id=ENDPOINT) as srv, requests.Session() as s:
        body = {"instances": instances[:2]}
        seen = [
            s.post(srv.url + url_path, json=body, timeout=30).json()["modelVersionId"]
            for _ in range(30)
        ]
    # a 90/10 split sends exactly 3 of 30 identical requests to the canary, evenly spaced
    assert seen.count(v2) == 3 and seen.count(v1) == 27
    positions = [i for i, v in enumerate(seen) if v == v2]
    assert all(b - a == 10 for a, b in itertools.pairwise(positions))


def test_smooth_schedule() -> None:
    from salesloop.serving.deployment import _smooth_schedule

    assert _smooth_schedule([50, 50]) == (0, 1) * 50
    sched = _smooth_schedule([72, 8, 20])
    assert [sched.count(i) for i in range(3)] == [72, 8, 20]
    assert _smooth_schedule([0, 100]) == (1,) * 100 and _smooth_schedule([0]) == ()


def test_swap_under_load_fails_no_request(tmp_path: Path, instances: list[dict[str, Any]]) -> None:
    """Clients hammer the endpoint while the deployment flips between two versions."""
    reg = LocalRegistry(tmp_path)
    v1 = reg.register(fitted_model())
    v2 = reg.register(fitted_model(seed=1))
    reg.deploy(ENDPOINT, v1)
    batch = instances[:50]
    expected = {
        v1: predict_instances(fitted_model(), batch),
        v2: predict_instances(fitted_model(seed=1), batch),
    }
    assert expected[v1] != expected[v2]
    watcher = DeploymentWatcher(reg.root, ENDPOINT, poll_s=0.05).start()
    url = f"/v1/projects/p/locations/l/endpoints/{ENDPOINT}:predict"
    failures: list[str] = []
    latencies: list[float] = []
    versions: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as s:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = s.post(srv.url + url, json={"instances": batch}, timeout=30)
                    data = r.json()
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    version = data["modelVersionId"]
                    if data["predictions"] != expected[version]:
                        failures.append(f"predictions do not match {version}")
                    versions.append(version)
                    latencies.append(time.perf_counter() - t)
                except Exception as exc:
                    failures.append(repr(exc))

    with ModelServer(watcher, endpoint_id=ENDPOINT) as srv:
        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        swaps_before = watcher.swaps
        for k in range(8):
            time.sleep(0.4)
            reg.deploy(ENDPOINT, v2 if k % 2 == 0 else v1, reason=f"swap {k}")
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        final = watcher.current()
    assert failures == []
    # Changes closer together than one load coalesce; most must have been applied, the last surely.
    assert watcher.swaps - swaps_before >= 5
    assert final is not None and [m.version for m in final.models] == [v1]
    assert {v1, v2} <= set(versions)
    assert len(latencies) > 20
    assert max(latencies) < 5.0


def _start_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m salesloop.serving``; its stderr keeps being drained (a full pipe would
    block the server) into ``proc.log`` for failure messages."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "salesloop.serving", *args],
        env={**os.environ, "SALESLOOP_LOG_LEVEL": "WARNING", **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    proc.log = lines  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if line.startswith("listening on "):
            threading.Thread(target=lines.extend, args=(proc.stderr,), daemon=True).start()
            return proc, line.split()[-1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"server did not start: rc={proc.poll()}: {''.join(lines)[-2000:]}")


def _stop_cli(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = None
    log = "".join(getattr(proc, "log", []))[-3000:]
    assert rc == 0, f"exit {rc}; stderr:\n{log}"


def _version(url: str, instances: list[dict[str, Any]]) -> str:
    r = requests.post(url, json={"instances": instances}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["modelVersionId"])


@pytest.mark.slow
def test_entry_point_prefork_workers_follow_swaps_and_sigterm(
    tmp_path: Path, instances: list[dict[str, Any]]
) -> None:
    reg = LocalRegistry(tmp_path)
    v1 = reg.register(fitted_model())
    v2 = reg.register(fitted_model(seed=1))
    reg.deploy(ENDPOINT, v1)
    args = ["--registry", str(reg.root), "--endpoint-id", ENDPOINT, "--port", "0", "--workers", "2"]
    proc, url = _start_cli(args, {})
    path = f"{url}/v1/projects/p/locations/l/endpoints/{ENDPOINT}:predict"
    try:
        assert url.startswith("http://127.0.0.1:")
        r = requests.post(path, json={"instances": instances[:3]}, timeout=30)
        assert r.status_code == 200 and r.json()["modelVersionId"] == v1
        reg.deploy(ENDPOINT, v2, reason="swap")
        deadline = time.monotonic() + 20
        seen: list[str] = []
        while time.monotonic() < deadline:
            # new connections spread over both workers; every one must switch
            seen = [_version(path, instances[:3]) for _ in range(6)]
            if set(seen) == {v2}:
                break
            time.sleep(0.2)
        assert set(seen) == {v2}
    finally:
        _stop_cli(proc)


@pytest.mark.slow
def test_entry_point_vertex_container_env(
    registry: LocalRegistry, instances: list[dict[str, Any]]
) -> None:
    """AIP_* variables only, as Vertex runs the container (the artifact folder as storage URI)."""
    env = {
        "AIP_STORAGE_URI": str(registry.get("v0001").path),
        "AIP_HTTP_PORT": "0",
        "AIP_HEALTH_ROUTE": "/v1/health-check",
        "AIP_PREDICT_ROUTE": "/v1/models/forecast:predict",
        "AIP_DEPLOYED_MODEL_ID": "4242",
    }
    proc, url = _start_cli([], env)
    try:
        assert requests.get(url + "/v1/health-check", timeout=5).status_code == 200
        r = requests.post(
            url + "/v1/models/forecast:predict", json={"instances": instances[:2]}, timeout=30
        )
        assert r.status_code == 200 and list(r.json()) == ["predictions"]
        assert requests.get(url + "/health", timeout=5).status_code == 404
    finally:
        _stop_cli(proc)


def test_pretty_size_matches_protobuf_rendering(instances: list[dict[str, Any]]) -> None:
    from google.cloud.aiplatform_v1.types import PredictRequest
    from google.protobuf import json_format

    from salesloop.predictor.base import instance_cost, request_overhead

    sample = [dict(instances[0], future={"snap": [1, 0], "sell_price": [None, 2.5]}), instances[1]]
    req = PredictRequest()
    req.instances.extend(sample)  # as PredictionServiceClient.predict builds it
    rendered = json_format.MessageToJson(PredictRequest.pb(req))

    estimate = request_overhead(None) + sum(instance_cost(i) for i in sample) - 1
    assert estimate == len(rendered.encode()), (estimate, len(rendered))
    assert pretty_size({"a": [1, 2.5, None]}) == len(json.dumps({"a": [1.0, 2.5, None]}, indent=2))


def test_short_and_brand_new_series_still_get_forecasts() -> None:
    base = {
        "store_id": "ZZ_9",
        "item_id": "NEW_1",
        "dept_id": "NEW",
        "cat_id": "NEW",
        "state_id": "ZZ",
    }
    instances = [
        {**base, "series_id": "ZZ_9/one-day", "start": "2022-08-28", "units": [3]},
        {
            **base,
            "series_id": "ZZ_9/zeros",
            "start": "2022-07-01",
            "units": [0] * 59,
            "sell_price": [None] * 59,
        },
    ]
    preds = predict_instances(fitted_model(), instances)
    assert [p["forecast_origin"] for p in preds] == ["2022-08-28", "2022-08-28"]
    for p in preds:
        assert all(
            lo <= y <= hi for lo, y, hi in zip(p["lo_95"], p["yhat"], p["hi_95"], strict=True)
        )


def test_servers_sharing_one_listening_socket_all_stop_after_connections(
    registry: LocalRegistry,
) -> None:
    """Pre-forked workers share a socket: a connection wakes every worker's select() and only one
    accept() wins. The losers must not be left blocked in accept(), where shutdown() cannot reach
    them (a worker that did not drain on SIGTERM, seen in CI). Threads stand in for the processes:
    they share the socket the same way."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    servers = [
        ModelServer(
            DeploymentWatcher(registry.root, ENDPOINT, poll_s=60).start(),
            endpoint_id=ENDPOINT,
            sock=listener,
        ).start()
        for _ in range(3)
    ]
    try:
        for _ in range(20):
            r = requests.get(f"{servers[0].url}/health", timeout=5)
            assert r.status_code == 200
        time.sleep(0.3)  # every select() has seen the readiness and returned
        stopped = []
        threads = [
            threading.Thread(
                target=lambda s=s: (s.httpd.shutdown(), stopped.append(s)), daemon=True
            )
            for s in servers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert len(stopped) == len(servers), "a server is stuck in accept()"
    finally:
        for s in servers:
            s.httpd.server_close()
            s.source.stop()
        listener.close()
