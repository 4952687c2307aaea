"""The warehouse port: what every step of the loop needs from BigQuery, and nothing more.

Three implementations stand behind :class:`Warehouse`:

* :class:`~salesloop.warehouse.duckdb.DuckDBWarehouse`: a DuckDB file, in-process.
* :class:`~salesloop.warehouse.http.HttpWarehouse`: the same DuckDB owned by the local warehouse
  service (``salesloop.local.warehouse_server``). DuckDB allows one writer process per file, so in the
  local environment one process owns the file, as BigQuery owns its storage, and records the audit
  log from which insert events are delivered.
* :class:`~salesloop.warehouse.bigquery.BigQueryWarehouse`: google-cloud-bigquery.

Writes are expressed as :class:`Merge` / :class:`Exec` mutations applied in one transaction, so a
failing write leaves no partial effect, and MERGE on the table's natural key makes them idempotent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa

from salesloop.schemas import TABLES, Table

if TYPE_CHECKING:
    from salesloop.config import Settings


class WarehouseError(RuntimeError):
    """A warehouse operation failed; nothing of it was committed."""


@dataclass(frozen=True)
class JobResult:
    job_id: str
    inserted: dict[str, int]
    committed_at: datetime


@dataclass(frozen=True)
class Merge:
    """Upsert ``frame`` into ``table`` on the table's key.

    With no ``update_columns`` rows whose key exists are left untouched (insert-if-absent): the
    first write wins, which is what makes a redelivered event a no-op.
    """

    table: str
    frame: pd.DataFrame
    update_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exec:
    """One DML statement in BigQuery dialect with ``@params`` and ``{{ table }}`` placeholders."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)


Mutation = Merge | Exec


@runtime_checkable
class Warehouse(Protocol):
    def ensure_schema(self) -> None: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame: ...

    def insert_job(
        self, frames: Mapping[str, pd.DataFrame], job_id: str | None = None
    ) -> JobResult: ...

    def apply(self, mutations: Sequence[Mutation]) -> None: ...

    def close(self) -> None: ...


def nullable_column(column: pa.ChunkedArray) -> pd.Series | None:
    """An INT or BOOL column holding NULLs as DuckDB's ``.df()`` gives it; None for any other.

    Arrow's own conversion turns such a column into float64 or object; DuckDB gives pandas'
    nullable ``Int64`` or ``boolean``. Every Arrow → frame path of the port (BigQuery results, the
    local warehouse service's IPC frames) goes through this one rule, so consumers see one kind
    of frame whatever the warehouse.
    """
    if not column.null_count:
        return None
    kind = column.type
    if pa.types.is_integer(kind):
        return column.to_pandas(types_mapper={kind: pd.Int64Dtype()}.get)
    if pa.types.is_boolean(kind):
        return column.to_pandas(types_mapper={kind: pd.BooleanDtype()}.get)
    return None


def new_job_id(prefix: str = "salesloop") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def table_spec(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise WarehouseError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None


def conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of ``frame`` in the table's order; a missing REQUIRED column is an error."""
    missing = [
        c.name for c in table.columns if c.name not in frame.columns and c.mode == "REQUIRED"
    ]
    if missing:
        raise WarehouseError(f"{table.name}: frame lacks required columns {missing}")
    out = frame.reindex(columns=table.column_names)
    return out


def merge_sql(table: Table, target: str, source: str, update_columns: Sequence[str]) -> str:
    """A BigQuery MERGE on the table's natural key (transpiled for DuckDB by the caller)."""
    if not table.key:
        raise WarehouseError(f"{table.name} has no key to merge on")
    cols = table.column_names
    on = " AND ".join(f"T.`{k}` = S.`{k}`" for k in table.key)
    insert = f"INSERT ({', '.join(f'`{c}`' for c in cols)}) VALUES ({', '.join(f'S.`{c}`' for c in cols)})"
    sql = f"MERGE {target} AS T USING {source} AS S ON {on}"
    if update_columns:
        sets = ", ".join(f"`{c}` = S.`{c}`" for c in update_columns)
        sql += f" WHEN MATCHED THEN UPDATE SET {sets}"
    return sql + f" WHEN NOT MATCHED THEN {insert}"


def open_warehouse(settings: Settings) -> Warehouse:
    """The warehouse of this environment: BigQuery in the cloud, DuckDB (served or in-process) locally."""
    if settings.warehouse.backend == "bigquery":
        from salesloop.warehouse.bigquery import BigQueryWarehouse

        return BigQueryWarehouse.from_settings(settings)
    if settings.local.warehouse_url:
        from salesloop.warehouse.http import HttpWarehouse

        return HttpWarehouse(settings.local.warehouse_url)
    from salesloop.warehouse.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(settings.run_dir / "warehouse.duckdb", settings=settings)
