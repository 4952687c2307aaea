"""The local warehouse service: owns the DuckDB file and serves the Warehouse port over HTTP.

It is the local stand-in for BigQuery as a service: every other process is a client, and insert
jobs into ``sales`` leave an audit-log entry in the same transaction, from which the dispatcher
delivers CloudEvents. Run: ``python -m salesloop.local.warehouse_server --db F --port N``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import structlog

from salesloop.config import load_settings
from salesloop.logging import configure
from salesloop.stop_signals import StopSignals
from salesloop.warehouse import WarehouseError
from salesloop.warehouse.duckdb import DuckDBWarehouse
from salesloop.warehouse.http import (
    b64_to_frame,
    decode_mutations,
    decode_params,
    frame_to_ipc,
    table_to_ipc,
)

log = structlog.get_logger("warehouse_server")

# A long poll of the audit log never holds a request (and a server thread) longer than this.
MAX_AUDIT_WAIT_S = 30.0


class _Handler(BaseHTTPRequestHandler):
    server: WarehouseHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        # Headers and body in one write: separate small writes stall ~40 ms on Nagle + delayed ACK.
        head = (
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, default=str).encode(), "application/json")

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": "body is not JSON"})
            return
        wh = self.server.warehouse
        try:
            if self.path == "/v1/query":
                table = wh.query_arrow(body["sql"], decode_params(body.get("params")))
                self._send(200, table_to_ipc(table), "application/vnd.apache.arrow.stream")
            elif self.path == "/v1/insert_job":
                frames = {k: b64_to_frame(v) for k, v in body["frames"].items()}
                res = wh.insert_job(frames, body.get("job_id"))
                self.server.audit_committed()
                self._json(
                    200,
                    {
                        "job_id": res.job_id,
                        "inserted": res.inserted,
                        "committed_at": res.committed_at.isoformat(),
                    },
                )
            elif self.path == "/v1/apply":
                wh.apply(decode_mutations(body["mutations"]))
                self._json(200, {"ok": True})
            elif self.path == "/v1/audit":
                frame = self.server.audit_entries(
                    int(body.get("after", 0)),
                    int(body.get("limit", 1000)),
                    min(float(body.get("wait_s", 0.0)), MAX_AUDIT_WAIT_S),
                )
                self._send(200, frame_to_ipc(frame), "application/vnd.apache.arrow.stream")
            elif self.path == "/v1/ensure_schema":
                wh.ensure_schema()
                self._json(200, {"ok": True})
            else:
                self._json(404, {"error": f"no route {self.path}"})
        except (WarehouseError, KeyError, ValueError) as exc:
            self._json(400, {"error": f"{type(exc).__name__}: {exc}"})
        except Exception as exc:  # a bug must not kill the service: report it to the caller
            log.exception("warehouse_request_failed", path=self.path)
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})


class WarehouseHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], warehouse: DuckDBWarehouse):
        super().__init__(address, _Handler)
        self.warehouse = warehouse
        self._audit_changed = threading.Condition()
        self._audit_version = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (a killed function) is a log line, not a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.warning("client_disconnected", error=type(exc).__name__)
        else:
            log.exception("request_crashed")

    def audit_committed(self) -> None:
        """Wake the long polls of the audit log: a job with sales rows may have just committed."""
        with self._audit_changed:
            self._audit_version += 1
            self._audit_changed.notify_all()

    def audit_entries(self, after: int, limit: int, wait_s: float) -> pd.DataFrame:
        """Entries after ``after``; when there are none, wait up to ``wait_s`` for a commit.

        The version is read before the query, so a commit between the query and the wait is
        seen (the wait returns at once) rather than missed until the timeout.
        """
        with self._audit_changed:
            seen = self._audit_version
        frame = self.warehouse.audit_entries(after, limit)
        if len(frame) or wait_s <= 0:
            return frame
        with self._audit_changed:
            self._audit_changed.wait_for(lambda: self._audit_version != seen, timeout=wait_s)
        return self.warehouse.audit_entries(after, limit)


def serve(db: Path, host: str, port: int, env: str | None = None) -> None:
    configure(os.environ.get("SALESLOOP_LOG_LEVEL", "INFO"))
    settings = load_settings(env)
    wh = DuckDBWarehouse(db, settings=settings)
    server = WarehouseHTTPServer((host, port), wh)
    StopSignals().install().on_stop(server.shutdown)
    log.info("warehouse_serving", host=host, port=server.server_address[1], db=str(db))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        wh.checkpoint()
        wh.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8790)
    p.add_argument("--env", default=None)
    args = p.parse_args(argv)
    serve(args.db, args.host, args.port, args.env)


if __name__ == "__main__":
    main()
