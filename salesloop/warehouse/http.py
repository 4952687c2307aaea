"""The Warehouse port over HTTP, talking to the local warehouse service.

DuckDB lets one process write a file, so in the local environment the warehouse service owns it
(as BigQuery owns its storage) and every other process (function, dispatcher, CLI) is a client.
Frames travel as Arrow IPC, parameters as tagged JSON (dates and timestamps survive the trip).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import requests

from salesloop.warehouse import (
    Exec,
    JobResult,
    Merge,
    Mutation,
    WarehouseError,
    nullable_column,
)

# -- codec shared with the server ------------------------------------------------------------


def encode_value(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return {"$ts": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "$ts" in value:
        return datetime.fromisoformat(value["$ts"])
    if isinstance(value, dict) and "$date" in value:
        return date.fromisoformat(value["$date"])
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def encode_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in (params or {}).items()}


def decode_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: decode_value(v) for k, v in (params or {}).items()}


def frame_to_ipc(frame: pd.DataFrame) -> bytes:
    return table_to_ipc(pa.Table.from_pandas(frame, preserve_index=False))


def table_to_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def ipc_to_frame(data: bytes) -> pd.DataFrame:
    with pa.ipc.open_stream(io.BytesIO(data)) as reader:
        table = reader.read_all()
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns, strict=True):
        nullable = nullable_column(column)
        if nullable is not None:
            frame[name] = nullable
    return frame


def frame_to_b64(frame: pd.DataFrame) -> str:
    return base64.b64encode(frame_to_ipc(frame)).decode()


def b64_to_frame(data: str) -> pd.DataFrame:
    return ipc_to_frame(base64.b64decode(data))


def encode_mutations(mutations: Sequence[Mutation]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in mutations:
        if isinstance(m, Merge):
            out.append(
                {
                    "kind": "merge",
                    "table": m.table,
                    "frame": frame_to_b64(m.frame),
                    "update_columns": list(m.update_columns),
                }
            )
        else:
            out.append({"kind": "exec", "sql": m.sql, "params": encode_params(m.params)})
    return out


def decode_mutations(items: Sequence[Mapping[str, Any]]) -> list[Mutation]:
    out: list[Mutation] = []
    for item in items:
        if item.get("kind") == "merge":
            out.append(
                Merge(
                    str(item["table"]),
                    b64_to_frame(item["frame"]),
                    tuple(item.get("update_columns", ())),
                )
            )
        elif item.get("kind") == "exec":
            out.append(Exec(str(item["sql"]), decode_params(item.get("params"))))
        else:
            raise WarehouseError(f"unknown mutation kind {item.get('kind')!r}")
    return out


# -- client ------------------------------------------------------------------------------------


class HttpWarehouse:
    """Client of ``salesloop.local.warehouse_server``; one keep-alive session per instance."""

    def __init__(self, url: str, *, timeout_s: float = 120.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def _post(
        self, path: str, body: dict[str, Any], *, timeout_s: float | None = None
    ) -> requests.Response:
        try:
            resp = self._session.post(
                f"{self.url}{path}",
                data=json.dumps(body),
                timeout=timeout_s or self.timeout_s,
                headers={"Content-Type": "application/json"},
            )
        except requests.RequestException as exc:
            raise WarehouseError(f"warehouse service unreachable at {self.url}: {exc}") from exc
        if resp.status_code != 200:
            try:
                detail = resp.json().get("error", resp.text)
            except ValueError:
                detail = resp.text
            raise WarehouseError(f"warehouse {path} failed ({resp.status_code}): {detail}")
        return resp

    def ensure_schema(self) -> None:
        self._post("/v1/ensure_schema", {})

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        resp = self._post("/v1/query", {"sql": sql, "params": encode_params(params)})
        return ipc_to_frame(resp.content)

    def insert_job(
        self, frames: Mapping[str, pd.DataFrame], job_id: str | None = None
    ) -> JobResult:
        resp = self._post(
            "/v1/insert_job",
            {"job_id": job_id, "frames": {k: frame_to_b64(v) for k, v in frames.items()}},
        ).json()
        return JobResult(
            resp["job_id"],
            {k: int(v) for k, v in resp["inserted"].items()},
            datetime.fromisoformat(resp["committed_at"]),
        )

    def apply(self, mutations: Sequence[Mutation]) -> None:
        self._post("/v1/apply", {"mutations": encode_mutations(mutations)})

    def audit_entries(
        self, after_seq: int = 0, limit: int = 1000, *, wait_s: float = 0.0
    ) -> pd.DataFrame:
        """Audit entries after ``after_seq``; ``wait_s`` > 0 long-polls until a job commits."""
        resp = self._post(
            "/v1/audit",
            {"after": after_seq, "limit": limit, "wait_s": wait_s},
            timeout_s=self.timeout_s + wait_s,
        )
        return ipc_to_frame(resp.content)

    def close(self) -> None:
        self._session.close()
