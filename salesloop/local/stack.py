"""The local environment as real processes on loopback: start, health-check, stop.

Each part runs as its own OS process, as it would in the cloud: the warehouse service (BigQuery's
role), the model server (the Vertex endpoint), the SMTP mailbox, the function under
functions-framework, and the dispatcher (Eventarc). They find each other through a per-run
settings overlay (``<run>/overlay.yaml``, passed as ``SALESLOOP_OVERLAY``), and log to
``<run>/logs/<part>.log``. Stopping sends SIGTERM, waits, then SIGKILLs stragglers, so Ctrl-C
never leaves orphans holding ports or the DuckDB lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

PARTS = ("warehouse", "model_server", "mailbox", "function", "dispatcher")


class StackError(RuntimeError):
    """A local part failed to start or died; the message points at its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalStack:
    run_dir: Path
    env: str = "local"
    endpoint_id: str = "sales-forecast"
    dispatcher_args: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_overlay: dict[str, Any] = field(default_factory=dict)
    predictor_client: str = "aiplatform"

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir).resolve()
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        for part in ("warehouse", "model_server", "mailbox", "function"):
            self.ports.setdefault(part, free_port())
        self.write_overlay()

    # -- configuration -------------------------------------------------------------------------
    @property
    def overlay_path(self) -> Path:
        return self.run_dir / "overlay.yaml"

    @property
    def warehouse_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['warehouse']}"

    @property
    def function_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['function']}/"

    @property
    def model_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['model_server']}"

    @property
    def maildir(self) -> Path:
        return self.run_dir / "mailbox"

    @property
    def registry(self) -> Path:
        return self.run_dir / "registry"

    @property
    def dispatcher_state(self) -> Path:
        return self.run_dir / "dispatcher.sqlite"

    def log_text(self, part: str) -> str:
        """What ``part`` wrote to its log so far (empty before it started)."""
        path = self.run_dir / "logs" / f"{part}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_events(self, part: str) -> list[dict[str, Any]]:
        """``part``'s structured log lines (one JSON object each), in order; other lines skipped."""
        out = []
        for line in self.log_text(part).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def write_overlay(self) -> None:
        overlay: dict[str, Any] = {
            "local": {
                "run_dir": str(self.run_dir),
                "warehouse_url": self.warehouse_url,
                "function_url": self.function_url,
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": self.ports["mailbox"],
                "security": "none",
                "username": None,
            },
            # The function reaches the model server through google-cloud-aiplatform, as in the
            # cloud; "http" (salesloop.predictor.rest) is the same REST calls without the SDK.
            "predictor": {
                "api_endpoint": self.model_url,
                "endpoint_id": self.endpoint_id,
                "client": self.predictor_client,
            },
        }
        for key, value in self.extra_overlay.items():
            overlay.setdefault(key, {}).update(value)
        self.overlay_path.write_text(yaml.safe_dump(overlay, sort_keys=True))

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SALESLOOP_ENV=self.env,
            SALESLOOP_OVERLAY=str(self.overlay_path),
            SALESLOOP_REGISTRY=str(self.registry),
            PYTHONUNBUFFERED="1",
        )
        return env

    def command(self, part: str) -> list[str]:
        py = sys.executable
        if part == "warehouse":
            return [
                py,
                "-m",
                "salesloop.local.warehouse_server",
                "--db",
                str(self.run_dir / "warehouse.duckdb"),
                "--port",
                str(self.ports["warehouse"]),
            ]
        if part == "model_server":
            return [
                py,
                "-m",
                "salesloop.serving",
                "--registry",
                str(self.registry),
                "--endpoint-id",
                self.endpoint_id,
                "--port",
                str(self.ports["model_server"]),
            ]
        if part == "mailbox":
            return [
                py,
                "-m",
                "salesloop.local.mailbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports["mailbox"]),
                "--maildir",
                str(self.maildir),
            ]
        if part == "function":
            source = Path(__file__).resolve().parents[2] / "functions" / "on_sale" / "main.py"
            return [
                py,
                "-m",
                "functions_framework",
                "--target",
                "on_sale",
                "--source",
                str(source),
                "--signature-type",
                "cloudevent",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports["function"]),
            ]
        if part == "dispatcher":
            return [
                py,
                "-m",
                "salesloop.local.dispatcher",
                "--state",
                str(self.dispatcher_state),
                "--warehouse-url",
                self.warehouse_url,
                "--function-url",
                self.function_url,
                *self.dispatcher_args,
            ]
        raise StackError(f"unknown part {part!r}")

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, part: str, *, wait: bool = True, timeout_s: float = 60.0) -> None:
        if part in self.procs and self.procs[part].poll() is None:
            return
        log = open(self.run_dir / "logs" / f"{part}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[part] = subprocess.Popen(
            self.command(part),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.child_env(),
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready(part, timeout_s)

    def start_all(self, parts: tuple[str, ...] = PARTS, *, timeout_s: float = 180.0) -> None:
        """Start ``parts`` side by side (each pays its imports at once), then wait for each."""
        for part in parts:
            self.start(part, wait=False)
        for part in parts:
            self.wait_ready(part, timeout_s)

    def wait_ready(self, part: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.procs[part]
            if proc.poll() is not None:
                raise StackError(
                    f"{part} exited with {proc.returncode}; see {self.run_dir / 'logs' / (part + '.log')}"
                )
            if self._ready(part):
                return
            time.sleep(0.05)
        raise StackError(
            f"{part} not ready after {timeout_s:.0f}s; see {self.run_dir / 'logs' / (part + '.log')}"
        )

    def _ready(self, part: str) -> bool:
        try:
            if part == "warehouse":
                return requests.get(f"{self.warehouse_url}/health", timeout=1).ok
            if part == "model_server":
                return requests.get(f"{self.model_url}/health", timeout=1).status_code in (200, 503)
            if part in ("mailbox", "function"):
                with socket.create_connection(("127.0.0.1", self.ports[part]), timeout=1):
                    return True
            if part == "dispatcher":
                return self.dispatcher_state.exists()
        except (requests.RequestException, OSError):
            return False
        return False

    def stop(self, part: str, timeout_s: float = 10.0) -> None:
        proc = self.procs.pop(part, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def kill(self, part: str) -> None:
        """SIGKILL, no goodbye: for fault-injection tests."""
        proc = self.procs.pop(part, None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        # Producers first (dispatcher), the warehouse last so it can checkpoint cleanly.
        for part in ("dispatcher", "function", "model_server", "mailbox", "warehouse"):
            self.stop(part)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
