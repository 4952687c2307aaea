"""The model server: one program for the local environment and for Vertex AI's serving container.

Routes:

* ``GET  $AIP_HEALTH_ROUTE`` (``/health``): 200 once a model is loaded, else 503.
* ``POST $AIP_PREDICT_ROUTE`` (``/predict``): ``{"instances": [...], "parameters": {...}}`` →
  ``{"predictions": [...]}``: the Vertex custom-container contract.
* ``GET  /v1/projects/{p}/locations/{l}/endpoints/{e}``: an Endpoint resource (deployed models,
  traffic split, labels with the history length callers should send).
* ``POST /v1/projects/{p}/locations/{l}/endpoints/{e}:predict``: Vertex's online prediction
  response (``predictions``, ``deployedModelId``, ``model``, ``modelVersionId``,
  ``modelDisplayName``), so the real ``google-cloud-aiplatform`` client works against it with
  ``api_transport="rest"`` and anonymous credentials.

Model source: ``--registry DIR --endpoint-id E`` serves what the registry deploys on ``E`` and
follows changes (:class:`~salesloop.serving.deployment.DeploymentWatcher`); ``AIP_STORAGE_URI``
(Vertex) serves one artifact folder.

Speed: a thread per connection (HTTP/1.1 keep-alive), JSON through orjson when installed, and each
response written with a single ``sendall`` with ``TCP_NODELAY`` set: with headers and body in
separate writes, Nagle's algorithm and delayed ACKs add ~40 ms to every response.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import structlog

from salesloop.predictor.codec import InstanceError
from salesloop.serving.deployment import (
    MODEL_RESOURCE_ID,
    Deployment,
    DeploymentWatcher,
    NoModelDeployed,
    StaticDeployment,
    fetch_storage_uri,
    predict_instances,
)
from salesloop.stop_signals import StopSignals

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - the slim container may not ship orjson

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


log = structlog.get_logger("serving")

MAX_BODY_BYTES = 32 * 1024 * 1024
_ENDPOINT_RE = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/endpoints/([^/:]+)(:predict)?$")
_STATUS = {
    400: ("Bad Request", "INVALID_ARGUMENT"),
    404: ("Not Found", "NOT_FOUND"),
    405: ("Method Not Allowed", "UNIMPLEMENTED"),
    411: ("Length Required", "INVALID_ARGUMENT"),
    413: ("Payload Too Large", "INVALID_ARGUMENT"),
    500: ("Internal Server Error", "INTERNAL"),
    503: ("Service Unavailable", "UNAVAILABLE"),
}


class DeploymentSource(Protocol):
    def current(self) -> Deployment | None: ...

    def stop(self) -> None: ...


class HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "salesloop-serving"
    sys_version = ""
    # Idle keep-alive connections are closed after this long (frees their threads).
    timeout = 60
    server: ModelHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        reason = _STATUS.get(code, ("OK", ""))[0] if code != 200 else "OK"
        head = [
            f"HTTP/1.1 {code} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def _error(self, code: int, message: str) -> None:
        status = _STATUS.get(code, ("Error", "UNKNOWN"))[1]
        self._send(code, _dumps({"error": {"code": code, "message": message, "status": status}}))

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise HttpError(411, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise HttpError(400, f"bad Content-Length {length!r}") from None
        self.server.largest_request_bytes = max(self.server.largest_request_bytes, n)
        if n > MAX_BODY_BYTES:
            self.close_connection = True
            raise HttpError(413, f"request body of {n} bytes exceeds {MAX_BODY_BYTES}")
        return self.rfile.read(n)

    def _dispatch(self, fn: Callable[[], None]) -> None:
        self.server.request_started()
        try:
            fn()
        except HttpError as exc:
            self._error(exc.code, exc.message)
        except InstanceError as exc:
            self._error(400, str(exc))
        except NoModelDeployed as exc:
            self._error(503, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("request_failed", path=self.path)
            self._error(500, f"{type(exc).__name__}: {exc}")
        finally:
            self.server.request_finished()

    # -- routes --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == self.server.health_route:
            dep = self.server.source.current()
            if dep is None or not dep.models:
                self._send(503, _dumps({"status": "no model"}))
            else:
                versions = {m.version: m.traffic for m in dep.models}
                self._send(
                    200,
                    _dumps({"status": "ok", "endpoint_id": dep.endpoint_id, "traffic": versions}),
                )
            return
        m = _ENDPOINT_RE.match(path)
        if m and not m.group(4):
            project, location, endpoint = m.group(1), m.group(2), m.group(3)
            self._send(200, _dumps(self._endpoint_resource(project, location, endpoint)))
            return
        raise HttpError(404, f"no route for GET {path}")

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == self.server.predict_route:
            body = self._body()
            predictions, _, _ = self._predict(body)
            self._send(200, _dumps({"predictions": predictions}))
            return
        m = _ENDPOINT_RE.match(path)
        if m and m.group(4):
            project, location, endpoint = m.group(1), m.group(2), m.group(3)
            self._check_endpoint(endpoint)
            body = self._body()
            predictions, chosen, _ = self._predict(body)
            self._send(
                200,
                _dumps(
                    {
                        "predictions": predictions,
                        "deployedModelId": chosen.deployed_model_id,
                        "model": f"projects/{project}/locations/{location}/models/{MODEL_RESOURCE_ID}",
                        "modelVersionId": chosen.version,
                        "modelDisplayName": MODEL_RESOURCE_ID,
                    }
                ),
            )
            return
        raise HttpError(404, f"no route for POST {path}")

    def _check_endpoint(self, endpoint: str) -> None:
        expected = self.server.endpoint_id
        if expected is not None and endpoint != expected:
            raise HttpError(
                404, f"endpoint {endpoint!r} not found (this server serves {expected!r})"
            )

    def _predict(self, body: bytes) -> tuple[list[dict[str, Any]], Any, Deployment]:
        try:
            payload = _loads(body)
        except ValueError as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from None
        if not isinstance(payload, dict) or "instances" not in payload:
            raise HttpError(400, 'body must be {"instances": [...], "parameters": {...}}')
        dep = self.server.source.current()
        if dep is None:
            raise NoModelDeployed("no model loaded yet")
        chosen = dep.pick()
        params = payload.get("parameters") or {}
        if not isinstance(params, dict):
            raise HttpError(400, "parameters must be an object")
        predictions = predict_instances(chosen.model, payload["instances"], params)
        return predictions, chosen, dep

    def _endpoint_resource(self, project: str, location: str, endpoint: str) -> dict[str, Any]:
        self._check_endpoint(endpoint)
        dep = self.server.source.current()
        models = dep.models if dep is not None else ()
        model_name = f"projects/{project}/locations/{location}/models/{MODEL_RESOURCE_ID}"
        updated = _rfc3339(dep.updated_at if dep is not None else self.server.started_at)
        return {
            "name": f"projects/{project}/locations/{location}/endpoints/{endpoint}",
            "displayName": endpoint,
            "deployedModels": [
                {
                    "id": m.deployed_model_id,
                    "model": model_name,
                    "modelVersionId": m.version,
                    "displayName": m.display_name,
                    "createTime": updated,
                    "dedicatedResources": {
                        "machineSpec": {"machineType": "local"},
                        "minReplicaCount": 1,
                        "maxReplicaCount": 1,
                    },
                }
                for m in models
            ],
            "trafficSplit": {m.deployed_model_id: m.traffic for m in models},
            "labels": dep.labels() if dep is not None else {},
            "createTime": _rfc3339(self.server.started_at),
            "updateTime": updated,
            "etag": f"{int((dep.updated_at if dep else 0) * 1e6):x}",
        }


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        source: DeploymentSource,
        *,
        endpoint_id: str | None,
        health_route: str = "/health",
        predict_route: str = "/predict",
        sock: socket.socket | None = None,
    ) -> None:
        if sock is None:
            super().__init__(address, _Handler)
        else:  # a listening socket shared by pre-forked workers
            super().__init__(address, _Handler, bind_and_activate=False)
            self.socket.close()
            # Every worker's select() wakes for a new connection and only one accept() gets it;
            # on a blocking socket the others would sit in accept() where shutdown() cannot reach
            # them (a worker that never drained on SIGTERM). Non-blocking, they get EAGAIN, which
            # socketserver treats as "no request this time".
            sock.setblocking(False)
            self.socket = sock
            self.server_address = sock.getsockname()
        self.source = source
        self.endpoint_id = endpoint_id
        self.health_route = health_route
        self.predict_route = predict_route
        self.started_at = time.time()
        self.largest_request_bytes = 0
        self._inflight = 0
        self._cond = threading.Condition()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        conn.setblocking(True)  # whatever the listening socket's mode; the handler sets a timeout
        return conn, addr

    def request_started(self) -> None:
        with self._cond:
            self._inflight += 1

    def request_finished(self) -> None:
        with self._cond:
            self._inflight -= 1
            if self._inflight == 0:
                self._cond.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until no request is in flight (or the timeout); True if drained."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class ModelServer:
    """The server plus its model source, runnable in a background thread (tests, benchmarks)."""

    def __init__(
        self,
        source: DeploymentSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        endpoint_id: str | None = None,
        health_route: str = "/health",
        predict_route: str = "/predict",
        sock: socket.socket | None = None,
    ) -> None:
        self.source = source
        self.httpd = ModelHTTPServer(
            (host, port),
            source,
            endpoint_id=endpoint_id,
            health_route=health_route,
            predict_route=predict_route,
            sock=sock,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``grace_s``), release the port."""
        self.httpd.shutdown()
        drained = self.httpd.drain(grace_s)
        self.httpd.server_close()
        self.source.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        log.info("server_stopped", drained=drained)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    # Vertex sets AIP_MODE=PREDICTION in serving containers, which must listen on all interfaces;
    # anywhere else the server stays on loopback.
    default_host = "0.0.0.0" if env.get("AIP_MODE") == "PREDICTION" else "127.0.0.1"
    p = argparse.ArgumentParser(
        prog="python -m salesloop.serving", description=__doc__.split("\n")[0]
    )
    p.add_argument("--registry", default=env.get("SALESLOOP_REGISTRY"), help="registry folder")
    p.add_argument(
        "--endpoint-id",
        default=env.get("SALESLOOP_ENDPOINT_ID") or env.get("AIP_ENDPOINT_ID"),
        help="endpoint whose deployment to serve (with --registry)",
    )
    p.add_argument(
        "--storage-uri",
        default=env.get("AIP_STORAGE_URI"),
        help="one model artifact folder (local path or gs://); Vertex sets AIP_STORAGE_URI",
    )
    p.add_argument("--host", default=env.get("SALESLOOP_SERVE_HOST", default_host))
    p.add_argument("--port", type=int, default=int(env.get("AIP_HTTP_PORT", "8080")))
    p.add_argument("--health-route", default=env.get("AIP_HEALTH_ROUTE", "/health"))
    p.add_argument("--predict-route", default=env.get("AIP_PREDICT_ROUTE", "/predict"))
    p.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between endpoint checks"
    )
    p.add_argument("--grace", type=float, default=20.0, help="seconds to drain on SIGTERM")
    in_vertex = env.get("AIP_MODE") == "PREDICTION"
    p.add_argument(
        "--workers",
        type=int,
        default=int(
            env.get("SALESLOOP_SERVE_WORKERS") or ((os.cpu_count() or 1) if in_vertex else 1)
        ),
        help="pre-forked processes sharing the port (default 1; all CPUs in a Vertex container)",
    )
    return p.parse_args(argv)


def build_source(args: argparse.Namespace) -> tuple[DeploymentSource, str | None]:
    if args.registry:
        if not args.endpoint_id:
            raise SystemExit("--endpoint-id is required with --registry")
        return DeploymentWatcher(
            args.registry, args.endpoint_id, poll_s=args.poll_interval
        ).start(), args.endpoint_id
    if args.storage_uri:
        directory = fetch_storage_uri(args.storage_uri)  # a no-op for a local path
        return StaticDeployment(
            directory, endpoint_id=args.endpoint_id or "local"
        ), args.endpoint_id
    raise SystemExit(
        "nothing to serve: pass --registry DIR --endpoint-id E, or set AIP_STORAGE_URI"
    )


def _serve(args: argparse.Namespace, sock: socket.socket | None, stop: StopSignals) -> int:
    """One serving process: load the source, serve until ``stop``, drain."""
    source, endpoint_id = build_source(args)
    server = ModelServer(
        source,
        host=args.host,
        port=args.port,
        endpoint_id=endpoint_id,
        health_route=args.health_route,
        predict_route=args.predict_route,
        sock=sock,
    )
    server.start()
    if sock is None:
        log.info("listening", url=server.url, endpoint_id=endpoint_id, pid=os.getpid())
        print(f"listening on {server.url}", file=sys.stderr, flush=True)
    stop.wait()
    log.info("stopping", signal=stop.signal_name, pid=os.getpid())
    server.stop(grace_s=args.grace)
    return 0


def _prefork(args: argparse.Namespace, stop: StopSignals) -> int:
    """N processes accept on one socket: Python work is GIL-bound, so threads alone use ~one core.

    Each worker loads and watches the deployment itself (a swap reaches every worker within a
    poll interval); a worker that dies is replaced; SIGTERM is forwarded and waited for.
    """
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.create_server((args.host, args.port), family=family, backlog=256)
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    children: dict[int, int] = {}

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # worker
            child_stop = StopSignals().install(signal.SIGTERM)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            code = 1
            try:
                code = _serve(args, sock, child_stop)
            finally:
                os._exit(code)
        children[pid] = slot

    for slot in range(args.workers):
        spawn(slot)
    log.info("listening", url=url, workers=args.workers, pid=os.getpid())
    print(f"listening on {url}", file=sys.stderr, flush=True)
    while not stop.wait(0.2):
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            slot = children.pop(pid, -1)
            if slot >= 0:
                log.error("worker_died", pid=pid, status=status, slot=slot)
                spawn(slot)
    log.info("stopping", signal=stop.signal_name, workers=len(children), pid=os.getpid())
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.grace + 5
    code = 0
    for pid in list(children):
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                exit_code = os.waitstatus_to_exitcode(status)
                if exit_code:
                    print(f"worker {pid} exited with {exit_code}", file=sys.stderr, flush=True)
                code = code or (1 if exit_code else 0)
                break
            if time.monotonic() > deadline:
                print(f"worker {pid} did not drain in time: killed", file=sys.stderr, flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                code = 1
                break
            time.sleep(0.05)
    sock.close()
    return code


def main(argv: list[str] | None = None) -> int:
    from salesloop.logging import configure

    configure(os.environ.get("SALESLOOP_LOG_LEVEL", "INFO"))
    args = _parse_args(argv)
    stop = StopSignals().install()
    if args.storage_uri and not args.registry:
        args.storage_uri = str(fetch_storage_uri(args.storage_uri))  # once, before any fork
    if args.workers > 1:
        return _prefork(args, stop)
    return _serve(args, None, stop)
