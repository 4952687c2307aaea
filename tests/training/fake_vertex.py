"""A loopback server speaking the few Vertex AI and Cloud Storage REST calls the registry makes.

It keeps state (model versions with aliases and labels, one endpoint's deployed models and traffic
split, long-running operations, bucket objects) so a whole canary rollout can run through the real
client libraries, and records every request for the tests to check what was sent.

What it enforces is what the Vertex and Cloud Storage documentation says the services enforce, as
far as the rollout depends on it: a traffic split sums to 100 and names deployed models ("0" being
the model a DeployModel deploys); a model with traffic cannot be undeployed; a version alias is held
by one version at a time; ``ifGenerationMatch=0`` refuses to overwrite an object (412). The
response bodies are minimal and written by hand from the documented shapes; agreement with the
real services is assumed, not verified (no cloud access here).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROJECT = "salesloop-dev"
LOCATION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
MODEL = f"{PARENT}/models/sales-forecast"
ENDPOINT_ID = "1001"
ENDPOINT = f"{PARENT}/endpoints/{ENDPOINT_ID}"
_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class ApiError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


@dataclass
class State:
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)  # version id → Model
    deployed: list[dict[str, Any]] = field(default_factory=list)  # DeployedModel resources
    split: dict[str, int] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    next_deployed_id: int = 101
    next_operation: int = 1
    # Test knobs: LROs answered "not done" this many times before done; versions whose
    # deployment fails (the container never becomes healthy).
    pending_polls: int = 0
    fail_deploy: set[str] = field(default_factory=set)
    polls: dict[str, int] = field(default_factory=dict)


class FakeGoogle:
    """Start with :meth:`start`; ``url`` serves both the Vertex and the Cloud Storage paths."""

    def __init__(self) -> None:
        self.state = State()
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(_Handler):
            owner = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeGoogle:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, method: str, pattern: str) -> list[Call]:
        """Recorded calls with this method whose path matches ``pattern`` (re.search)."""
        return [c for c in self.calls if c.method == method and re.search(pattern, c.path)]

    def vertex_calls(self) -> list[tuple[str, str]]:
        """(method, path) of the Vertex calls that change something, in order."""
        return [
            (c.method, c.path.removeprefix(f"/v1/{PARENT}/"))
            for c in self.calls
            if c.path.startswith("/v1/") and c.method in ("POST", "PATCH")
        ]

    def traffic(self) -> dict[str, int]:
        """Display name → percent of what the endpoint serves now."""
        return {d["displayName"]: self.state.split.get(d["id"], 0) for d in self.state.deployed}

    # -- Vertex: models --------------------------------------------------------------------------
    def _version(self, ref: str) -> dict[str, Any]:
        s = self.state
        if ref.isdigit() and ref in s.versions:
            return s.versions[ref]
        for v in s.versions.values():
            if ref in v["versionAliases"]:
                return v
        raise ApiError(404, "NOT_FOUND", f"model {MODEL}@{ref} not found")

    def get_model(self, name: str) -> dict[str, Any]:
        base, _, ref = name.partition("@")
        if base != MODEL or not self.state.versions:
            raise ApiError(404, "NOT_FOUND", f"{name} not found")
        if not ref:
            return self.state.versions[max(self.state.versions, key=int)]
        return self._version(ref)

    def _check_alias_free(self, alias: str, version_id: str) -> None:
        for vid, v in self.state.versions.items():
            if vid != version_id and alias in v["versionAliases"]:
                raise ApiError(400, "FAILED_PRECONDITION", f"alias {alias} is held by {vid}")

    def upload(self, body: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        if body.get("modelId"):
            if s.versions:
                raise ApiError(409, "ALREADY_EXISTS", f"{MODEL} exists")
        elif body.get("parentModel") != MODEL or not s.versions:
            raise ApiError(404, "NOT_FOUND", f"parent model {body.get('parentModel')} not found")
        model = body["model"]
        vid = str(len(s.versions) + 1)
        for alias in model.get("versionAliases", []):
            self._check_alias_free(alias, vid)
        s.versions[vid] = {
            **model,
            "name": MODEL,
            "versionId": vid,
            "versionAliases": list(model.get("versionAliases", [])),
        }
        return self._operation(
            MODEL, {"@type": _TYPE + "UploadModelResponse", "model": MODEL, "modelVersionId": vid}
        )

    def merge_aliases(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        model = self.get_model(name)
        for alias in body["versionAliases"]:
            if alias.startswith("-"):
                if alias[1:] in model["versionAliases"]:
                    model["versionAliases"].remove(alias[1:])
            else:
                self._check_alias_free(alias, model["versionId"])
                if alias not in model["versionAliases"]:
                    model["versionAliases"].append(alias)
        return model

    def update_model(self, name: str, mask: str, body: dict[str, Any]) -> dict[str, Any]:
        if "@" not in name:
            raise ApiError(400, "INVALID_ARGUMENT", "expected a version-level update")
        model = self.get_model(name)
        for path in mask.split(","):
            model[path] = body.get(path)
        return model

    # -- Vertex: endpoint ------------------------------------------------------------------------
    def endpoint(self) -> dict[str, Any]:
        return {
            "name": ENDPOINT,
            "displayName": "sales-forecast",
            "deployedModels": self.state.deployed,
            "trafficSplit": self.state.split,
        }

    def _check_split(self, split: dict[str, int], ids: set[str]) -> None:
        unknown = set(split) - ids
        if unknown:
            raise ApiError(400, "INVALID_ARGUMENT", f"traffic split names unknown ids {unknown}")
        if split and sum(split.values()) != 100:
            raise ApiError(400, "INVALID_ARGUMENT", f"traffic split sums to {sum(split.values())}")

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        dm = dict(body["deployedModel"])
        version = self.get_model(dm["model"])
        ids = {d["id"] for d in s.deployed}
        split = {k: int(v) for k, v in body.get("trafficSplit", {}).items()}
        self._check_split(split, ids | {"0"})
        if version["versionId"] in s.fail_deploy:
            return self._operation(
                ENDPOINT, None, error={"code": 9, "message": "Model server never became ready"}
            )
        dm["id"] = str(s.next_deployed_id)
        dm["modelVersionId"] = version["versionId"]
        s.next_deployed_id += 1
        s.deployed.append(dm)
        if split:
            s.split = {(dm["id"] if k == "0" else k): v for k, v in split.items() if v > 0}
        return self._operation(
            ENDPOINT, {"@type": _TYPE + "DeployModelResponse", "deployedModel": dm}
        )

    def undeploy(self, body: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        dm_id = str(body["deployedModelId"])
        if dm_id not in {d["id"] for d in s.deployed}:
            raise ApiError(404, "NOT_FOUND", f"deployed model {dm_id} not found")
        split = {k: int(v) for k, v in body.get("trafficSplit", {}).items()} or dict(s.split)
        if split.get(dm_id, 0) > 0:
            raise ApiError(
                400, "FAILED_PRECONDITION", f"deployed model {dm_id} still has {split[dm_id]}%"
            )
        s.deployed = [d for d in s.deployed if d["id"] != dm_id]
        self._check_split(split, {d["id"] for d in s.deployed})
        s.split = {k: v for k, v in split.items() if v > 0}
        return self._operation(ENDPOINT, {"@type": _TYPE + "UndeployModelResponse"})

    def update_endpoint(self, mask: str, body: dict[str, Any]) -> dict[str, Any]:
        if mask != "trafficSplit":
            raise ApiError(400, "INVALID_ARGUMENT", f"unexpected update mask {mask!r}")
        split = {k: int(v) for k, v in body.get("trafficSplit", {}).items()}
        self._check_split(split, {d["id"] for d in self.state.deployed})
        self.state.split = {k: v for k, v in split.items() if v > 0}
        return self.endpoint()

    # -- operations ------------------------------------------------------------------------------
    def _operation(
        self, parent: str, response: dict[str, Any] | None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A long-running operation named like Vertex names them (under the resource)."""
        s = self.state
        name = f"{parent}/operations/{s.next_operation}"
        s.next_operation += 1
        done: dict[str, Any] = {"name": name, "done": True}
        if error is not None:
            done["error"] = error
        else:
            done["response"] = response
        s.operations[name] = done
        s.polls[name] = s.pending_polls
        return self.get_operation(name)

    def get_operation(self, name: str) -> dict[str, Any]:
        s = self.state
        if name not in s.operations:
            raise ApiError(404, "NOT_FOUND", name)
        if s.polls.get(name, 0) > 0:
            s.polls[name] -= 1
            return {"name": name, "done": False}
        return s.operations[name]

    # -- Cloud Storage ---------------------------------------------------------------------------
    def list_objects(self, bucket: str, prefix: str, delimiter: str) -> dict[str, Any]:
        items, prefixes = [], set()
        for (b, name), data in sorted(self.state.objects.items()):
            if b != bucket or not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
                continue
            items.append(
                {"kind": "storage#object", "name": name, "bucket": b, "size": str(len(data))}
            )
        return {"kind": "storage#objects", "items": items, "prefixes": sorted(prefixes)}

    def insert_object(self, bucket: str, query: dict[str, str], body: bytes, ctype: str) -> Any:
        """A multipart upload (metadata part, media part), split by hand: binary-safe."""
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        if not m:
            raise ApiError(400, "INVALID_ARGUMENT", f"not multipart: {ctype}")
        parts = body.split(b"--" + m.group(1).encode())[1:-1]
        meta_part, media_part = (p.partition(b"\r\n\r\n")[2][:-2] for p in parts)
        meta = json.loads(meta_part)
        key = (bucket, meta["name"])
        if query.get("ifGenerationMatch") == "0" and key in self.state.objects:
            raise ApiError(412, "PRECONDITION_FAILED", f"{meta['name']} exists")
        self.state.objects[key] = media_part
        return {"kind": "storage#object", "name": meta["name"], "bucket": bucket, "generation": "1"}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGoogle
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: Any, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        head = (
            f"{self.protocol_version} {code} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + data)  # one write: no Nagle stall (DESIGN.md)

    def _handle(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ctype = self.headers.get("Content-Type", "")
        body: Any = raw
        if raw and ctype.startswith("application/json"):
            body = json.loads(raw)
        fake = self.owner
        with fake.lock:
            fake.calls.append(Call(method, path, query, body))
            try:
                code, out, out_type = 200, self._route(method, path, query, body, ctype), None
            except ApiError as exc:
                code = exc.code
                out = {"error": {"code": exc.code, "message": exc.message, "status": exc.status}}
                out_type = None
        if isinstance(out, bytes):
            self._reply(code, out, "application/octet-stream")
        else:
            self._reply(code, out, out_type or "application/json")

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, ctype: str) -> Any:
        fake = self.owner
        if method == "GET" and path.startswith(("/v1/", "/ui/")) and "/operations/" in path:
            # the operations client uses the first matching HTTP rule, which is /ui/...
            return fake.get_operation(path[len("/v1/") :])
        if path.startswith("/v1/"):
            name = path[len("/v1/") :]
            if method == "GET" and name.startswith(f"{PARENT}/models/"):
                return fake.get_model(name)
            if method == "POST" and name == f"{PARENT}/models:upload":
                return fake.upload(body)
            if method == "POST" and name.endswith(":mergeVersionAliases"):
                return fake.merge_aliases(name.removesuffix(":mergeVersionAliases"), body)
            if method == "PATCH" and name.startswith(f"{PARENT}/models/"):
                return fake.update_model(name, query.get("updateMask", ""), body)
            if method == "GET" and name == ENDPOINT:
                return fake.endpoint()
            if method == "POST" and name == f"{ENDPOINT}:deployModel":
                return fake.deploy(body)
            if method == "POST" and name == f"{ENDPOINT}:undeployModel":
                return fake.undeploy(body)
            if method == "PATCH" and name == ENDPOINT:
                return fake.update_endpoint(query.get("updateMask", ""), body)
        m = re.match(r"^/storage/v1/b/([^/]+)/o$", path)
        if m and method == "GET":
            return fake.list_objects(
                m.group(1), query.get("prefix", ""), query.get("delimiter", "")
            )
        m = re.match(r"^/download/storage/v1/b/([^/]+)/o/(.+)$", path)
        if m and method == "GET":
            key = (m.group(1), m.group(2))
            if key not in fake.state.objects:
                raise ApiError(404, "NOT_FOUND", f"{key} not found")
            return fake.state.objects[key]
        m = re.match(r"^/upload/storage/v1/b/([^/]+)/o$", path)
        if m and method == "POST":
            return fake.insert_object(m.group(1), query, body, ctype)
        m = re.match(r"^/storage/v1/b/([^/]+)$", path)
        if m and method == "GET":
            return {"kind": "storage#bucket", "name": m.group(1)}
        raise ApiError(404, "NOT_FOUND", f"{method} {path}")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")
