"""The local warehouse: one DuckDB file, BigQuery-dialect SQL transpiled by sqlglot.

Besides the tables of :mod:`salesloop.schemas` it keeps ``_audit_log``: one row per committed insert
job into ``sales``, written in the same transaction as the rows. It plays the part of BigQuery's
audit log: the local event dispatcher reads it and delivers one CloudEvent per entry, so an insert
can never commit without its event (and vice versa).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa

from salesloop import sql as sqlmod
from salesloop.schemas import TABLES, Table, duckdb_ddl, duckdb_type
from salesloop.warehouse import (
    Exec,
    JobResult,
    Merge,
    Mutation,
    WarehouseError,
    conform,
    merge_sql,
    new_job_id,
    table_spec,
)

if TYPE_CHECKING:
    from salesloop.config import Settings

AUDIT_DDL = """
CREATE SEQUENCE IF NOT EXISTS _audit_seq START 1;
CREATE TABLE IF NOT EXISTS _audit_log (
  seq BIGINT PRIMARY KEY DEFAULT nextval('_audit_seq'),
  event_id VARCHAR NOT NULL UNIQUE,
  job_name VARCHAR NOT NULL,
  table_name VARCHAR NOT NULL,
  inserted_rows BIGINT NOT NULL,
  committed_at TIMESTAMPTZ NOT NULL
);
"""

# Tables whose key DuckDB should not enforce with an index: sales is append-only and can be M5-sized
# (59 M rows); an ART index over it would cost gigabytes for a guarantee validation already gives.
_UNINDEXED = {"sales"}


class DuckDBWarehouse:
    """The Warehouse port on an in-process DuckDB connection (thread-safe by one lock)."""

    def __init__(
        self, path: Path | str, *, settings: Settings | None = None, read_only: bool = False
    ):
        self.path = Path(path)
        self.project = settings.project if settings else "salesloop-local"
        self.dataset = settings.warehouse.dataset if settings else "salesloop"
        self._names = {n: (settings.table(n) if settings else n) for n in TABLES}
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(path), read_only=read_only)
        self._lock = threading.RLock()
        self._views: set[str] = set()  # source views created on this connection (_register)
        if not read_only:
            self.ensure_schema()

    # -- schema ---------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        with self._lock:
            for table in TABLES.values():
                ddl = duckdb_ddl(table, self._names[table.name])
                if table.name in _UNINDEXED:
                    ddl = ddl.replace(
                        ",\n  PRIMARY KEY (" + ", ".join(f'"{k}"' for k in table.key) + ")", ""
                    )
                self._con.execute(ddl)
            self._con.execute(AUDIT_DDL)

    @property
    def tables(self) -> dict[str, str]:
        """Placeholder values: logical name → quoted physical name (BigQuery dialect)."""
        return {n: sqlmod.bq_identifier(p) for n, p in self._names.items()}

    # -- reads ----------------------------------------------------------------------------
    def duckdb_sql(self, sql: str) -> str:
        return sqlmod.to_duckdb(sqlmod.render(sql, self.tables))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        text = self.duckdb_sql(sql)
        with self._lock:
            try:
                return self._con.execute(text, dict(params or {})).df()
            except duckdb.Error as exc:
                raise WarehouseError(f"query failed: {exc}") from exc

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """:meth:`query` as an Arrow table, for the warehouse service to stream as it is.

        Skipping pandas on the service side saves two conversions of every result (DuckDB →
        pandas → Arrow): about half a second for a 3,000-series history. Dates become
        microsecond timestamps, so the client's frame has the dtypes :meth:`query` gives.
        """
        text = self.duckdb_sql(sql)
        with self._lock:
            try:
                table = self._con.sql(text, params=dict(params or {})).to_arrow_table()
            except duckdb.Error as exc:
                raise WarehouseError(f"query failed: {exc}") from exc
        dates = [i for i, f in enumerate(table.schema) if pa.types.is_date32(f.type)]
        for i in dates:
            table = table.set_column(
                i, table.schema[i].name, table.column(i).cast(pa.timestamp("us"))
            )
        return table

    # -- writes ---------------------------------------------------------------------------
    def _register(self, table: Table, frame: pd.DataFrame) -> str:
        """Register ``frame`` and a view casting it to the table's types; return the view name.

        One name per table (writes hold the lock, so two never overlap): the MERGE text is then
        the same every time and its sqlglot translation comes from the cache, instead of costing
        milliseconds per write.
        """
        raw, view = f"_src_raw_{table.name}", f"_src_{table.name}"
        self._con.register(raw, conform(table, frame))
        if view not in self._views:
            # Created once: a view binds its source by name at query time, so each write only
            # re-registers the frame under the same name (two statements less per write).
            casts = ", ".join(
                f'CAST("{c.name}" AS {duckdb_type(c.type)}) AS "{c.name}"' for c in table.columns
            )
            self._con.execute(
                f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT {casts} FROM "{raw}"'
            )
            self._views.add(view)
        return view

    def _unregister(self, view: str) -> None:
        self._con.unregister(view.replace("_src_", "_src_raw_"))

    def _insert(self, table: Table, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        view = self._register(table, frame)
        try:
            self._con.execute(f'INSERT INTO "{self._names[table.name]}" SELECT * FROM "{view}"')
        finally:
            self._unregister(view)
        return len(frame)

    def _merge(self, m: Merge) -> None:
        table = table_spec(m.table)
        if m.frame.empty:
            return
        view = self._register(table, _first_per_key(m.frame, table.key))
        try:
            text = sqlmod.to_duckdb(
                merge_sql(
                    table,
                    sqlmod.bq_identifier(self._names[table.name]),
                    sqlmod.bq_identifier(view),
                    m.update_columns,
                )
            )
            self._con.execute(text)
        finally:
            self._unregister(view)

    def _rollback(self) -> None:
        self._con.execute("ROLLBACK")
        self._views.clear()  # a view created in the rolled-back transaction is gone with it

    def _apply_one(self, mutation: Mutation) -> None:
        if isinstance(mutation, Merge):
            self._merge(mutation)
        elif isinstance(mutation, Exec):
            self._con.execute(self.duckdb_sql(mutation.sql), dict(mutation.params))
        else:  # pragma: no cover - the type says it cannot happen
            raise WarehouseError(f"unknown mutation {mutation!r}")

    def apply(self, mutations: Sequence[Mutation]) -> None:
        with self._lock:
            self._con.execute("BEGIN TRANSACTION")
            try:
                for mutation in mutations:
                    self._apply_one(mutation)
                self._con.execute("COMMIT")
            except Exception as exc:
                self._rollback()
                if isinstance(exc, WarehouseError):
                    raise
                raise WarehouseError(f"write failed, rolled back: {exc}") from exc

    def insert_job(
        self, frames: Mapping[str, pd.DataFrame], job_id: str | None = None
    ) -> JobResult:
        """Append frames in one transaction; a job that adds sales rows records its audit entry."""
        job_id = job_id or new_job_id()
        inserted: dict[str, int] = {}
        with self._lock:
            self._con.execute("BEGIN TRANSACTION")
            try:
                for name, frame in frames.items():
                    inserted[name] = self._insert(table_spec(name), frame)
                committed_at = datetime.now(UTC)
                if inserted.get("sales", 0) > 0:
                    self._con.execute(
                        "INSERT INTO _audit_log (event_id, job_name, table_name, inserted_rows, committed_at) "
                        "VALUES ($e, $j, $t, $n, $c)",
                        {
                            "e": f"{job_id}-insert",
                            "j": f"projects/{self.project}/jobs/{job_id}",
                            "t": f"projects/{self.project}/datasets/{self.dataset}/tables/{self._names['sales']}",
                            "n": inserted["sales"],
                            "c": committed_at,
                        },
                    )
                self._con.execute("COMMIT")
            except Exception as exc:
                self._rollback()
                raise WarehouseError(f"insert job {job_id} failed, rolled back: {exc}") from exc
        return JobResult(job_id=job_id, inserted=inserted, committed_at=committed_at)

    # -- the audit log (local only) --------------------------------------------------------
    def audit_entries(self, after_seq: int = 0, limit: int = 1000) -> pd.DataFrame:
        with self._lock:
            return self._con.execute(
                "SELECT * FROM _audit_log WHERE seq > $a ORDER BY seq LIMIT $l",
                {"a": after_seq, "l": limit},
            ).df()

    def checkpoint(self) -> None:
        with self._lock:
            self._con.execute("CHECKPOINT")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> DuckDBWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_per_key(frame: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """The first row per key; the frame itself when keys are unique (the usual case).

    The check on plain tuples costs microseconds where ``drop_duplicates`` costs milliseconds,
    and the event function writes three small frames per event.
    """
    cols = [frame[k].tolist() for k in key]
    keys = list(zip(*cols, strict=True))
    if len(set(keys)) == len(keys) and not any(v is None or v != v for c in cols for v in c):
        return frame
    return frame.drop_duplicates(subset=list(key), keep="first")
