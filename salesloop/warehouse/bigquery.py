"""The Warehouse port on BigQuery (google-cloud-bigquery), for the dev and prod environments.

Same contract as :class:`~salesloop.warehouse.duckdb.DuckDBWarehouse`; where BigQuery cannot give
the same guarantee, the difference is chosen and written down here rather than left to chance.

Reads
    One parameterized query job per :meth:`BigQueryWarehouse.query` (named parameters, typed from
    the Python values by :func:`query_job_config`). SQL stays BigQuery dialect: the ``{{ table }}``
    placeholders become ```project.dataset.table``` and nothing is transpiled. As on DuckDB, a
    parameter the SQL does not use, or a ``@name`` with no value, is an error. Results come back
    through ``RowIterator.to_arrow()`` and :func:`arrow_to_frame`, not ``to_dataframe()``: the
    latter needs ``db-dtypes`` (not a dependency) and returns ``dbdate``/``Int64`` columns, while
    every consumer of the port was written against DuckDB's frames (DATE as ``datetime64``, INT64
    and BOOL as numpy dtypes unless a NULL forces ``Int64``/``boolean``).

Insert jobs
    BigQuery has no transaction spanning load jobs, so :meth:`BigQueryWarehouse.insert_job` runs one
    load job per table and orders them so that nothing is lost: every other table first (the
    ``rejected_sales`` of the job), ``sales`` last. The ``sales`` load job's id *is* the job id the
    rows carry in their ``job_id`` column: the audit-log event names that job, and the function
    finds the rows with it (``job_history.sql``). The other tables' load jobs are
    ``<job_id>_<table>``. Job ids are unique per project, which makes a retry with the same job id
    idempotent: a load whose id already exists (HTTP 409) is not run again; the existing job is
    awaited and its row count used. A job that failed once keeps its id forever: a retry after a
    *failed* load must use a new job id (the error says so).

Writes
    :meth:`BigQueryWarehouse.apply` stages each :class:`~salesloop.warehouse.Merge` frame in a
    table ``_staging_<uuid>`` of the dataset (created with a one-hour expiration before the load, so
    a crash anywhere leaves nothing behind for long), then runs ONE script
    ``BEGIN TRANSACTION; MERGE ...; <Exec ...>; COMMIT TRANSACTION;``. Without an exception handler
    BigQuery fails the script and rolls the transaction back on any error, so a failing write has no
    effect, as on DuckDB. Each Exec's parameters are renamed ``@name`` → ``@s<i>_name`` (by the
    sqlglot tokenizer, so strings, quoted identifiers, comments and ``@@system`` variables are
    untouched) because one script has one parameter namespace. Staging tables are deleted
    afterwards, best effort.

Loads
    Parquet through ``load_table_from_dataframe`` with the explicit schema of
    :mod:`salesloop.schemas`; tables with a JSON column (``rejected_sales``, ``model_versions``)
    are loaded as CSV instead, because BigQuery's batch loads accept JSON columns only from CSV,
    Avro or JSON sources. For CSV every cell is rendered by :func:`load_frame` (``\\N`` marks NULL,
    so an empty STRING stays an empty string).

What has NOT been exercised against real BigQuery: all of it. There is no cloud access here.
``tests/warehouse/test_bigquery.py`` drives the real client library (every call this module makes:
jobs.insert for queries and the script, multipart load uploads, getQueryResults, jobs.get after a
409, tables.insert/delete, datasets.insert) against a loopback HTTP server that records the REST
requests and answers with minimal canned resources, and asserts on what is sent: query text,
``parameterMode``, parameter types and values, load configurations, schemas, job ids, the uploaded
Parquet/CSV bytes, the script, staging-table creation, expiration and deletion. Only
:meth:`BigQueryWarehouse.from_settings` is tested by replacing ``bigquery.Client`` (a real one would
look for Application Default Credentials). The pure builders (:func:`query_job_config`,
:func:`load_job_config`, :func:`load_frame`, :func:`merge_script`, :func:`prefix_parameters`,
:func:`arrow_to_frame`) are also tested directly. Result frames are compared with DuckDB's for the
same values; the canned REST responses follow the documented shapes but are written by hand.

Nothing checks that BigQuery accepts these requests or computes what DuckDB computes. Unverified in
particular: the SQL files' behaviour on BigQuery (they parse with sqlglot's BigQuery dialect,
nothing more); CSV loads into JSON columns; parameters inside multi-statement transactions;
``INTERVAL @n DAY``; the staging tables' expiration; the Storage Read API path of large results
(``google-cloud-bigquery-storage`` is not installed: reads go through REST pages, slow for the
training frame); concurrent MERGE transactions on one table (BigQuery aborts one of them: it
surfaces as :class:`WarehouseError`, and the event is redelivered); load-job and DML quotas under
the event rate; IAM (the runtime identity needs ``bigquery.jobs.create`` and
``bigquery.tables.create/getData/updateData/delete`` on the dataset).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from sqlglot.dialects.bigquery import BigQuery as _BigQueryDialect
from sqlglot.tokens import TokenType

from salesloop import sql as sqlmod
from salesloop.schemas import (
    TABLES,
    Table,
    bigquery_schema_json,
    bigquery_time_partitioning,
)
from salesloop.warehouse import (
    Exec,
    JobResult,
    Merge,
    Mutation,
    WarehouseError,
    conform,
    merge_sql,
    new_job_id,
    nullable_column,
    table_spec,
)

if TYPE_CHECKING:
    from salesloop.config import Settings

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
STAGING_PREFIX = "_staging_"
STAGING_TTL = timedelta(hours=1)
CSV_NULL = "\\N"

QueryParameter = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter


class UnsupportedParameter(WarehouseError, TypeError):
    """A query parameter whose BigQuery type cannot be told from its Python value."""


# -- parameters ----------------------------------------------------------------------------------


def _scalar(name: str, value: Any) -> tuple[str, Any]:
    """(BigQuery type, JSON-able value) of one scalar; the order of the checks matters."""
    if isinstance(value, np.generic):
        value = pd.Timestamp(value) if isinstance(value, np.datetime64) else value.item()
    if value is None or value is pd.NaT or value is pd.NA:
        raise UnsupportedParameter(
            f"parameter @{name} is NULL: BigQuery needs a type for it; write IS NULL in the SQL "
            "or pass a typed value"
        )
    if isinstance(value, bool):
        return "BOOL", value
    if isinstance(value, int):
        return "INT64", value
    if isinstance(value, float):
        return "FLOAT64", value
    if isinstance(value, str):
        return "STRING", value
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is not None:
            return "TIMESTAMP", value.tz_convert(UTC).to_pydatetime()
        if value == value.normalize():
            # How the warehouse itself returns DATE values (DuckDB: datetime64 at midnight).
            return "DATE", value.date()
        raise UnsupportedParameter(
            f"parameter @{name} is a naive Timestamp with a time of day: make it tz-aware "
            "(TIMESTAMP) or pass a date"
        )
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise UnsupportedParameter(
                f"parameter @{name} is a naive datetime: make it tz-aware (TIMESTAMP) or pass a date"
            )
        return "TIMESTAMP", value.astimezone(UTC)
    if isinstance(value, date):
        return "DATE", value
    raise UnsupportedParameter(
        f"parameter @{name}: unsupported type {type(value).__name__}; use str, bool, int, float, "
        "date, tz-aware datetime, pandas Timestamp, or a list/tuple of one of them"
    )


def query_parameter(name: str, value: Any) -> QueryParameter:
    """A typed BigQuery parameter for one Python value (lists become ARRAY<element type>)."""
    if isinstance(value, list | tuple | np.ndarray | pd.Series | pd.Index):
        typed = [_scalar(f"{name}[{i}]", v) for i, v in enumerate(value)]
        kinds = {t for t, _ in typed}
        if len(kinds) > 1:
            raise UnsupportedParameter(
                f"parameter @{name} mixes element types {sorted(kinds)}; an ARRAY has one type"
            )
        # An empty list carries no type: ARRAY<STRING> is the only choice that cannot fail silently
        # (comparing it with another type is a query error, not a wrong answer).
        kind = kinds.pop() if kinds else "STRING"
        return bigquery.ArrayQueryParameter(name, kind, [v for _, v in typed])
    kind, scalar = _scalar(name, value)
    return bigquery.ScalarQueryParameter(name, kind, scalar)


def query_job_config(params: Mapping[str, Any] | None) -> bigquery.QueryJobConfig:
    """Named, typed query parameters (``parameterMode: NAMED``) built from Python values."""
    return bigquery.QueryJobConfig(
        query_parameters=[query_parameter(k, v) for k, v in (params or {}).items()],
        use_legacy_sql=False,
    )


# -- parameter names in SQL ----------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUOTED = {
    TokenType.STRING,
    TokenType.RAW_STRING,
    TokenType.BYTE_STRING,
    TokenType.IDENTIFIER,
}


def _parameter_spans(sql: str) -> list[tuple[int, int, str]]:
    """(start of ``@``, end of name, name) of every ``@name`` parameter, found by sqlglot's tokenizer.

    Tokenizing (not a regex) is what keeps ``'@x'``, ```@x```, comments and ``@@error.message`` out.
    """
    tokens = _BigQueryDialect().tokenize(sql)
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.token_type != TokenType.PARAMETER:
            i += 1
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is not None and nxt.token_type == TokenType.PARAMETER and nxt.start == tok.end + 1:
            i += 2  # @@system_variable
            continue
        if nxt is None or nxt.start != tok.end + 1:
            raise sqlmod.SqlError(f"lone '@' at offset {tok.start}")
        if nxt.token_type in _QUOTED or not _IDENT.match(sql[nxt.start : nxt.end + 1]):
            raise sqlmod.SqlError(
                f"unsupported parameter name {sql[nxt.start : nxt.end + 1]!r} at offset {tok.start}"
            )
        spans.append((tok.start, nxt.end, sql[nxt.start : nxt.end + 1]))
        i += 2
    return spans


def parameter_names(sql: str) -> set[str]:
    """The ``@name`` parameters a BigQuery statement uses."""
    return {name for _, _, name in _parameter_spans(sql)}


def prefix_parameters(sql: str, prefix: str) -> str:
    """``@name`` → ``@<prefix>name`` everywhere it is a parameter, and nowhere else."""
    out, pos = [], 0
    for start, end, name in _parameter_spans(sql):
        out.append(sql[pos:start])
        out.append(f"@{prefix}{name}")
        pos = end + 1
    out.append(sql[pos:])
    return "".join(out)


def check_parameters(sql: str, params: Mapping[str, Any] | None, what: str = "query") -> None:
    """Exactly the parameters the SQL uses, as DuckDB insists (a typo fails before any cost)."""
    used, given = parameter_names(sql), set(params or {})
    if used != given:
        problems = []
        if used - given:
            problems.append(f"no value for {sorted(used - given)}")
        if given - used:
            problems.append(f"unused {sorted(given - used)}")
        raise WarehouseError(f"{what}: parameters do not match the SQL: {'; '.join(problems)}")


# -- schemas and loads ---------------------------------------------------------------------------


def schema_fields(table: Table) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField.from_api_repr(f) for f in bigquery_schema_json(table)]


def uses_csv(table: Table) -> bool:
    """BigQuery loads JSON columns from CSV, Avro or JSON sources only, never from Parquet."""
    return any(c.type == "JSON" for c in table.columns)


def load_job_config(table: Table) -> bigquery.LoadJobConfig:
    """Append to an existing table (Terraform owns tables: never create one with the wrong layout)."""
    config = bigquery.LoadJobConfig(
        schema=schema_fields(table),
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
    )
    if uses_csv(table):
        config.source_format = bigquery.SourceFormat.CSV
        config.null_marker = CSV_NULL
        config.allow_quoted_newlines = True
        config.skip_leading_rows = 0
    else:
        config.source_format = bigquery.SourceFormat.PARQUET
    return config


def _is_null(value: Any) -> bool:
    if value is None or isinstance(value, list | tuple | dict | np.ndarray):
        return value is None
    return bool(pd.isna(value))


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    # Naive timestamps are UTC, as in the DuckDB warehouse (its session time zone is UTC).
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def _csv_cell(type_: str, value: Any) -> str:
    if _is_null(value):
        return CSV_NULL
    if type_ == "JSON":
        return value if isinstance(value, str) else json.dumps(value, default=str)
    if type_ == "STRING":
        return str(value)
    if type_ == "BOOL":
        return "true" if bool(value) else "false"
    if type_ == "INT64":
        return str(int(value))
    if type_ == "FLOAT64":
        number = float(value)
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return repr(number)
    if type_ == "DATE":
        return pd.Timestamp(value).date().isoformat()
    if type_ == "TIMESTAMP":
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
    raise WarehouseError(f"no CSV rendering for BigQuery type {type_}")


def load_frame(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame a load job sends: the table's columns in order, and for CSV every cell rendered.

    Optional columns the caller left out become typed-less NULL columns (``object`` of None) so the
    client library's schema-driven Parquet conversion can give them any type.
    """
    out = conform(table, frame).reset_index(drop=True)
    for name in table.column_names:
        if name not in frame.columns:
            out[name] = pd.Series([None] * len(out), index=out.index, dtype=object)
    if not uses_csv(table):
        return out
    return pd.DataFrame(
        {c.name: [_csv_cell(c.type, v) for v in out[c.name].tolist()] for c in table.columns},
        columns=table.column_names,
    )


# -- results -------------------------------------------------------------------------------------


_ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "JSON": pa.string(),
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def rows_to_arrow(schema: Sequence[bigquery.SchemaField], rows: Iterable[Any]) -> pa.Table:
    """Rows of a result with JSON columns, JSON kept as text (as DuckDB returns it).

    The client library's REST ``to_arrow()`` parses JSON cells and lets pyarrow infer a type for
    them: a struct whose keys are the union over rows (missing keys become nulls) or an error when
    objects and arrays mix. JSON tables are small, so they take this row-wise path instead.
    """
    values: list[list[Any]] = [[] for _ in schema]
    for row in rows:
        for i, field in enumerate(schema):
            v = row[i]
            values[i].append(_json_text(v) if field.field_type == "JSON" else v)
    arrays = []
    for field, column in zip(schema, values, strict=True):
        kind = None if field.mode == "REPEATED" else _ARROW_TYPES.get(field.field_type)
        arrays.append(pa.array(column, type=kind))
    return pa.Table.from_arrays(arrays, names=[f.name for f in schema])


def arrow_to_frame(result: pa.Table) -> pd.DataFrame:
    """A query result as DuckDB's ``.df()`` would give it, so consumers see one kind of frame.

    DATE → ``datetime64[us]``; TIMESTAMP → ``datetime64[us, UTC]``; INT64/BOOL → numpy ``int64``/
    ``bool`` unless the column holds a NULL (then ``Int64``/``boolean``); FLOAT64 → ``float64``;
    STRING/JSON → ``object``.
    """
    columns: list[pd.Series] = []
    for col in result.columns:
        kind = col.type
        if pa.types.is_date(kind):
            s = col.to_pandas(date_as_object=False).astype("datetime64[us]")
        elif pa.types.is_timestamp(kind):
            s = col.to_pandas()
            s = s.astype("datetime64[us, UTC]" if kind.tz else "datetime64[us]")
        elif (nullable := nullable_column(col)) is not None:
            s = nullable
        elif pa.types.is_integer(kind):
            s = col.to_pandas().astype("int64")
        elif pa.types.is_boolean(kind):
            s = col.to_pandas().astype(bool)
        else:
            s = col.to_pandas()
        columns.append(s.reset_index(drop=True))
    frame = pd.concat(columns, axis=1) if columns else pd.DataFrame()
    frame.columns = pd.Index(result.column_names)
    return frame


# -- the apply script ----------------------------------------------------------------------------


def _statement(sql: str) -> str:
    """One statement's text without trailing semicolons; the caller adds ``\\n;`` (a trailing
    ``-- comment`` would swallow a ``;`` on its own line)."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def merge_script(
    mutations: Sequence[Mutation],
    *,
    tables: Mapping[str, str],
    staging: Mapping[int, str],
) -> tuple[str | None, dict[str, Any]]:
    """The one transaction of :meth:`BigQueryWarehouse.apply` and its parameters.

    ``tables``: placeholder values (qualified, backticked names); ``staging``: mutation index →
    qualified staging table of that Merge (a Merge without one has no rows and is skipped). Exec
    statement ``i`` has its parameters renamed ``@s<i>_name``. Returns ``(None, {})`` when there is
    nothing to run.
    """
    statements: list[str] = []
    params: dict[str, Any] = {}
    for i, m in enumerate(mutations):
        if isinstance(m, Merge):
            if i not in staging:
                continue
            table = table_spec(m.table)
            statements.append(merge_sql(table, tables[table.name], staging[i], m.update_columns))
        elif isinstance(m, Exec):
            text = _statement(sqlmod.render(m.sql, dict(tables)))
            sqlmod.check_portable(text)
            check_parameters(text, m.params, what=f"statement {i}")
            prefix = f"s{i}_"
            statements.append(prefix_parameters(text, prefix))
            params.update({prefix + k: v for k, v in m.params.items()})
        else:  # pragma: no cover - the type says it cannot happen
            raise WarehouseError(f"unknown mutation {m!r}")
    if not statements:
        return None, {}
    body = "".join(f"{s}\n;\n" for s in statements)
    return f"BEGIN TRANSACTION;\n{body}COMMIT TRANSACTION;\n", params


def _dedupe(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """First row per key wins, as on DuckDB; BigQuery's MERGE also refuses two source rows per target."""
    return frame.drop_duplicates(subset=list(table.key), keep="first")


# -- the adapter ---------------------------------------------------------------------------------


class BigQueryWarehouse:
    """The Warehouse port on one BigQuery dataset; see the module docstring for the guarantees."""

    def __init__(
        self,
        client: bigquery.Client,
        project: str,
        dataset: str,
        location: str,
        table_names: Mapping[str, str],
        *,
        storage_read_api: bool | None = None,
    ):
        missing = set(TABLES) - set(table_names)
        if missing:
            raise WarehouseError(f"no physical name for tables {sorted(missing)}")
        self._client = client
        self.project = project
        self.dataset = dataset
        self.location = location
        self._names = {n: str(table_names[n]) for n in TABLES}
        # The Storage Read API is what makes a training-frame read fast; use it when installed.
        self._storage_read_api = (
            importlib.util.find_spec("google.cloud.bigquery_storage") is not None
            if storage_read_api is None
            else storage_read_api
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> BigQueryWarehouse:
        location = settings.warehouse.location
        client = bigquery.Client(project=settings.project, location=location)
        return cls(
            client,
            settings.project,
            settings.warehouse.dataset,
            location,
            {n: settings.table(n) for n in TABLES},
        )

    @property
    def client(self) -> bigquery.Client:
        return self._client

    def table_id(self, logical: str) -> str:
        """``project.dataset.table`` (unquoted, as the client library takes it)."""
        return f"{self.project}.{self.dataset}.{self._names[logical]}"

    @property
    def tables(self) -> dict[str, str]:
        """Placeholder values: logical name → ```project.dataset.table```."""
        return {
            n: sqlmod.bq_identifier(self.project, self.dataset, p) for n, p in self._names.items()
        }

    # -- schema ----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create the dataset and tables if missing (tests and ops only: Terraform owns them)."""
        try:
            ds = bigquery.Dataset(f"{self.project}.{self.dataset}")
            ds.location = self.location
            self._client.create_dataset(ds, exists_ok=True)
            for table in TABLES.values():
                self._client.create_table(self._table_resource(table), exists_ok=True)
        except gexc.GoogleAPIError as exc:
            raise WarehouseError(f"ensure_schema failed: {exc}") from exc

    def _table_resource(self, table: Table) -> bigquery.Table:
        resource = bigquery.Table(self.table_id(table.name), schema=schema_fields(table))
        resource.description = table.description
        partitioning = bigquery_time_partitioning(table)
        if partitioning is not None:
            resource.time_partitioning = bigquery.TimePartitioning(
                type_=partitioning["type"], field=partitioning["field"]
            )
        if table.cluster_by:
            resource.clustering_fields = list(table.cluster_by)
        return resource

    # -- reads -----------------------------------------------------------------------------
    def bigquery_sql(self, sql: str) -> str:
        text = sqlmod.render(sql, self.tables)
        sqlmod.check_portable(text)
        return text

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        text = self.bigquery_sql(sql)
        check_parameters(text, params)
        config = query_job_config(params)
        try:
            job = self._client.query(
                text, job_config=config, location=self.location, job_id_prefix="salesloop_query_"
            )
            rows = job.result()
            if any(f.field_type == "JSON" for f in rows.schema):
                return arrow_to_frame(rows_to_arrow(rows.schema, rows))
            return arrow_to_frame(rows.to_arrow(create_bqstorage_client=self._storage_read_api))
        except Exception as exc:
            raise WarehouseError(f"query failed: {exc}") from exc

    # -- loads -----------------------------------------------------------------------------
    def _load(
        self, table: Table, frame: pd.DataFrame, destination: str, job_id: str
    ) -> bigquery.LoadJob:
        """Run one load job; an id that already exists is that same load done before: await it."""
        try:
            job = self._client.load_table_from_dataframe(
                load_frame(table, frame),
                destination,
                job_id=job_id,
                location=self.location,
                job_config=load_job_config(table),
            )
        except gexc.Conflict:
            log.info("load job %s exists already; awaiting it instead of loading again", job_id)
            existing = self._client.get_job(job_id, location=self.location)
            target = getattr(existing, "destination", None)
            if not isinstance(existing, bigquery.LoadJob) or (
                target is not None
                and f"{target.project}.{target.dataset_id}.{target.table_id}" != destination
            ):
                raise WarehouseError(
                    f"job id {job_id} is taken by another job ({type(existing).__name__} "
                    f"into {target}); use a new job id"
                ) from None
            job = existing
        try:
            job.result()
        except gexc.GoogleAPIError as exc:
            raise WarehouseError(
                f"load job {job_id} into {destination} failed ({exc}); its id is spent: "
                "retry with a new job id"
            ) from exc
        return job

    def insert_job(
        self, frames: Mapping[str, pd.DataFrame], job_id: str | None = None
    ) -> JobResult:
        """Append frames with one load job per table, ``sales`` last (see the module docstring)."""
        sales = frames.get("sales")
        if job_id is None:
            carried = (
                set(sales["job_id"].dropna().astype(str))
                if sales is not None and not sales.empty and "job_id" in sales
                else set()
            )
            job_id = carried.pop() if len(carried) == 1 else new_job_id()
        if not JOB_ID.match(job_id):
            raise WarehouseError(f"invalid BigQuery job id {job_id!r}: must match {JOB_ID.pattern}")
        if sales is not None and not sales.empty:
            carried = set(sales["job_id"].astype(str)) if "job_id" in sales else set()
            if carried != {job_id}:
                raise WarehouseError(
                    f"sales rows must carry job_id {job_id!r} (the load job's id, which the insert "
                    f"event names); they carry {sorted(carried)[:5]}"
                )
        order = [n for n in frames if n != "sales"] + (["sales"] if "sales" in frames else [])
        ids = {n: job_id if n == "sales" else f"{job_id}_{n}" for n in order}
        for name, load_id in ids.items():
            table_spec(name)
            if not JOB_ID.match(load_id):
                raise WarehouseError(f"job id {load_id!r} for {name} is too long")
        inserted: dict[str, int] = {}
        committed_at: datetime | None = None
        try:
            for name in order:
                frame = frames[name]
                if frame.empty:
                    inserted[name] = 0
                    continue
                job = self._load(table_spec(name), frame, self.table_id(name), ids[name])
                rows = job.output_rows
                inserted[name] = int(rows) if rows is not None else len(frame)
                if name == "sales":
                    committed_at = job.ended
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(f"insert job {job_id} failed: {exc}") from exc
        return JobResult(
            job_id=job_id,
            inserted={n: inserted[n] for n in frames},
            committed_at=committed_at or datetime.now(UTC),
        )

    # -- writes ----------------------------------------------------------------------------
    def apply(self, mutations: Sequence[Mutation]) -> None:
        """Stage Merge frames, then one transaction of MERGEs and Exec statements; see the docstring."""
        created: list[str] = []
        try:
            staged: dict[int, tuple[Table, pd.DataFrame, str]] = {}
            for i, m in enumerate(mutations):
                if isinstance(m, Merge):
                    table = table_spec(m.table)
                    if m.frame.empty:  # as on DuckDB: no rows, no check, no statement
                        continue
                    frame = _dedupe(table, conform(table, m.frame))
                    if not frame.empty:
                        name = f"{self.project}.{self.dataset}.{STAGING_PREFIX}{uuid.uuid4().hex}"
                        staged[i] = (table, frame, name)
            # Everything that can be checked locally is checked before anything is created.
            script, params = merge_script(
                mutations,
                tables=self.tables,
                staging={i: sqlmod.bq_identifier(name) for i, (_, _, name) in staged.items()},
            )
            if script is None:
                return
            config = query_job_config(params)
            jobs = []
            for table, frame, name in staged.values():
                self._client.create_table(self._staging_resource(table, name))
                created.append(name)
                jobs.append(
                    self._client.load_table_from_dataframe(
                        load_frame(table, frame),
                        name,
                        job_id_prefix="salesloop_stage_",
                        location=self.location,
                        job_config=load_job_config(table),
                    )
                )
            for job in jobs:  # started together, awaited together
                job.result()
            self._client.query(
                script, job_config=config, location=self.location, job_id_prefix="salesloop_apply_"
            ).result()
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(f"write failed, rolled back: {exc}") from exc
        finally:
            self._drop(created)

    def _staging_resource(self, table: Table, table_id: str) -> bigquery.Table:
        resource = bigquery.Table(table_id, schema=schema_fields(table))
        resource.expires = datetime.now(UTC) + STAGING_TTL
        resource.description = f"salesloop staging for a MERGE into {table.name}; expires in 1 h"
        return resource

    def _drop(self, table_ids: Iterable[str]) -> None:
        for table_id in table_ids:
            try:
                self._client.delete_table(table_id, not_found_ok=True)
            except Exception as exc:  # the expiration removes it anyway
                log.warning("could not delete staging table %s: %s", table_id, exc)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> BigQueryWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
