"""The one source of truth for every warehouse table.

DuckDB DDL, BigQuery ``SchemaField`` lists and the Terraform table definitions (``modules/``) are all
derived from :data:`TABLES`, so a column added here reaches every environment in the same change.
Types are BigQuery's standard SQL names; :func:`duckdb_type` maps them for the local warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

BqType = Literal["STRING", "INT64", "FLOAT64", "BOOL", "DATE", "TIMESTAMP", "JSON"]
Mode = Literal["REQUIRED", "NULLABLE"]

_DUCKDB_TYPES: dict[str, str] = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "BOOL": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMPTZ",
    "JSON": "VARCHAR",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: BqType
    mode: Mode = "NULLABLE"
    description: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    # The natural key: MERGE statements match on it; DuckDB enforces it as a primary key.
    key: tuple[str, ...] = ()
    partition_by: str | None = None
    cluster_by: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, type_: BqType, mode: Mode = "NULLABLE", description: str = "") -> Column:
    return Column(name, type_, mode, description)


SALES = Table(
    name="sales",
    description="Daily unit sales per item and store; append-only, one insert job per load.",
    columns=(
        _c("job_id", "STRING", "REQUIRED", "Insert job that loaded the row"),
        _c("row_num", "INT64", "REQUIRED", "Position of the row in its job"),
        _c("series_id", "STRING", "REQUIRED", "store_id + '/' + item_id"),
        _c("store_id", "STRING", "REQUIRED"),
        _c("item_id", "STRING", "REQUIRED"),
        _c("dept_id", "STRING", "REQUIRED"),
        _c("cat_id", "STRING", "REQUIRED"),
        _c("state_id", "STRING", "REQUIRED"),
        _c("date", "DATE", "REQUIRED", "Sales day (or period start for weekly/monthly data)"),
        _c("units", "FLOAT64", "REQUIRED", "Units sold, >= 0"),
        _c("sell_price", "FLOAT64", "NULLABLE", "Shelf price that day"),
        _c("snap", "BOOL", "NULLABLE", "SNAP-like benefit day in the store's state"),
        _c("event_name", "STRING", "NULLABLE", "Calendar event of the day"),
        _c("inserted_at", "TIMESTAMP", "REQUIRED"),
    ),
    key=("series_id", "date", "job_id"),
    partition_by="date",
    cluster_by=("store_id", "item_id"),
)

REJECTED_SALES = Table(
    name="rejected_sales",
    description="Rows of an insert job that failed validation, with the reason; never silently dropped.",
    columns=(
        _c("job_id", "STRING", "REQUIRED"),
        _c("row_num", "INT64", "REQUIRED"),
        _c("reason", "STRING", "REQUIRED", "Validation class and detail"),
        _c("raw", "JSON", "REQUIRED", "The row as received"),
        _c("rejected_at", "TIMESTAMP", "REQUIRED"),
    ),
    key=("job_id", "row_num"),
    partition_by="rejected_at",
    cluster_by=("job_id",),
)

FORECASTS = Table(
    name="forecasts",
    description="Forecast per series, origin, horizon day and model version; written by MERGE only.",
    columns=(
        _c("series_id", "STRING", "REQUIRED"),
        _c("store_id", "STRING", "REQUIRED"),
        _c("cat_id", "STRING", "REQUIRED"),
        _c("forecast_origin", "DATE", "REQUIRED", "Last day of actuals the forecast saw"),
        _c("horizon_day", "INT64", "REQUIRED", "1..horizon"),
        _c("target_date", "DATE", "REQUIRED"),
        _c("model_version", "STRING", "REQUIRED"),
        _c("yhat", "FLOAT64", "REQUIRED"),
        _c("lo_80", "FLOAT64", "NULLABLE"),
        _c("hi_80", "FLOAT64", "NULLABLE"),
        _c("lo_95", "FLOAT64", "NULLABLE"),
        _c("hi_95", "FLOAT64", "NULLABLE"),
        _c("event_id", "STRING", "REQUIRED", "Event that first produced the row"),
        _c("job_id", "STRING", "REQUIRED", "Insert job that triggered it"),
        _c("created_at", "TIMESTAMP", "REQUIRED"),
    ),
    key=("series_id", "forecast_origin", "horizon_day", "model_version"),
    partition_by="forecast_origin",
    cluster_by=("store_id", "series_id"),
)

PROCESSED_EVENTS = Table(
    name="processed_events",
    description="Events whose effects are committed: the dedup ledger of at-least-once delivery.",
    columns=(
        _c("event_id", "STRING", "REQUIRED"),
        _c("job_name", "STRING", "REQUIRED"),
        _c("rows_read", "INT64", "REQUIRED"),
        _c("series_forecast", "INT64", "REQUIRED"),
        _c("alerts_raised", "INT64", "REQUIRED"),
        _c("model_version", "STRING", "NULLABLE"),
        _c("job_committed_at", "TIMESTAMP", "NULLABLE", "When the insert job committed"),
        _c("processed_at", "TIMESTAMP", "REQUIRED"),
    ),
    key=("event_id", "job_name"),
    partition_by="processed_at",
    cluster_by=("job_name",),
)

ALERTS = Table(
    name="alerts",
    description="Drop alerts: one row per (subject, week, rule); the email goes out once per row.",
    columns=(
        _c("alert_key", "STRING", "REQUIRED", "subject|week_start|rule"),
        _c("scope", "STRING", "REQUIRED", "series | store_category"),
        _c("subject_id", "STRING", "REQUIRED"),
        _c("store_id", "STRING", "NULLABLE"),
        _c("cat_id", "STRING", "NULLABLE"),
        _c("rule", "STRING", "REQUIRED"),
        _c("week_start", "DATE", "REQUIRED", "First forecast day"),
        _c("forecast_origin", "DATE", "REQUIRED"),
        _c("baseline", "FLOAT64", "REQUIRED"),
        _c("baseline_kind", "STRING", "REQUIRED", "trailing_7d | same_week_last_year"),
        _c("forecast", "FLOAT64", "REQUIRED"),
        _c("lo", "FLOAT64", "REQUIRED"),
        _c("hi", "FLOAT64", "REQUIRED"),
        _c("drop_pct", "FLOAT64", "REQUIRED"),
        _c("model_version", "STRING", "REQUIRED"),
        _c("recipients", "STRING", "REQUIRED", "Comma-separated addresses"),
        _c("event_id", "STRING", "REQUIRED"),
        _c("status", "STRING", "REQUIRED", "pending | sent"),
        _c("message_id", "STRING", "NULLABLE", "RFC 5322 Message-ID of the email"),
        _c("created_at", "TIMESTAMP", "REQUIRED"),
        _c("sent_at", "TIMESTAMP", "NULLABLE"),
    ),
    key=("alert_key",),
    partition_by="week_start",
    cluster_by=("scope", "subject_id"),
)

MODEL_VERSIONS = Table(
    name="model_versions",
    description="Registered model versions, their backtests and rollout decisions.",
    columns=(
        _c("version", "STRING", "REQUIRED"),
        _c(
            "status",
            "STRING",
            "REQUIRED",
            "registered | champion | rejected | rolled_back | retired (replaced as champion)",
        ),
        _c("model_kind", "STRING", "REQUIRED"),
        _c("train_start", "DATE", "NULLABLE"),
        _c("train_end", "DATE", "NULLABLE"),
        _c("metrics", "JSON", "NULLABLE"),
        _c("reason", "STRING", "NULLABLE", "Why it has its status (gate checks, canary outcome)"),
        _c("created_at", "TIMESTAMP", "REQUIRED", "Registered at"),
        _c("promoted_at", "TIMESTAMP", "NULLABLE", "Became the champion at"),
        _c("updated_at", "TIMESTAMP", "NULLABLE", "Last status change"),
    ),
    key=("version",),
    partition_by="created_at",
)

MONITORING_METRICS = Table(
    name="monitoring_metrics",
    description="Drift and accuracy measured by the monitoring job, with thresholds and breaches.",
    columns=(
        _c("run_id", "STRING", "REQUIRED"),
        _c("computed_at", "TIMESTAMP", "REQUIRED"),
        _c("model_version", "STRING", "NULLABLE"),
        _c("metric", "STRING", "REQUIRED"),
        _c("scope", "STRING", "REQUIRED", "overall | cat:X | store:Y | feature:F"),
        _c("value", "FLOAT64", "NULLABLE"),
        _c("threshold", "FLOAT64", "NULLABLE"),
        _c("breached", "BOOL", "REQUIRED"),
        _c("window_start", "DATE", "NULLABLE"),
        _c("window_end", "DATE", "NULLABLE"),
    ),
    key=("run_id", "metric", "scope"),
    partition_by="computed_at",
    cluster_by=("metric",),
)

CALENDAR = Table(
    name="calendar",
    description=(
        "The retailer's calendar per day and state (SNAP days, events), known ahead of time: "
        "the horizon's SNAP and event features at serving time."
    ),
    columns=(
        _c("date", "DATE", "REQUIRED"),
        _c("state_id", "STRING", "REQUIRED", "State whose SNAP schedule the row gives"),
        _c("snap", "BOOL", "REQUIRED", "SNAP-like benefit day in the state"),
        _c("event_name", "STRING", "NULLABLE", "Calendar event of the day ('A|B' for two)"),
        _c("loaded_at", "TIMESTAMP", "REQUIRED"),
    ),
    key=("date", "state_id"),
    cluster_by=("state_id", "date"),
)
"""One row per (day, state), not M5's one row per day with ``snap_CA, snap_TX, snap_WI``.

Why long: the row has exactly the ``state_id, snap, event_name`` of a SALES row, so the event
function joins it on the series' state with a plain equality, and a retailer in another state adds
rows, not columns (a wide table would change its schema, and the Terraform table, per state).
M5's two event columns become one ``event_name`` joined by ``|`` (the generator's convention): the
model only uses whether a day has an event. ``salesloop.data.calendar`` converts M5's
``calendar.csv``. No partitioning: a decade is ~11k rows for three states, below any partition's
worth and far from BigQuery's per-table partition limits; clustering on the state keeps the
function's lookup (one state, a week of days) to a small read.
"""

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        SALES,
        REJECTED_SALES,
        FORECASTS,
        PROCESSED_EVENTS,
        ALERTS,
        MODEL_VERSIONS,
        MONITORING_METRICS,
        CALENDAR,
    )
}


def duckdb_type(bq_type: str) -> str:
    return _DUCKDB_TYPES[bq_type]


def duckdb_ddl(table: Table, physical_name: str | None = None) -> str:
    """CREATE TABLE IF NOT EXISTS for DuckDB; the natural key becomes the primary key."""
    cols = [
        f'"{c.name}" {duckdb_type(c.type)}{" NOT NULL" if c.mode == "REQUIRED" else ""}'
        for c in table.columns
    ]
    if table.key:
        cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in table.key) + ")")
    return (
        f'CREATE TABLE IF NOT EXISTS "{physical_name or table.name}" (\n  '
        + ",\n  ".join(cols)
        + "\n)"
    )


def bigquery_schema_json(table: Table) -> list[dict[str, str]]:
    """The schema as BigQuery's JSON form (used by Terraform and the BigQuery adapter)."""
    return [
        {"name": c.name, "type": c.type, "mode": c.mode, "description": c.description}
        for c in table.columns
    ]


def bigquery_time_partitioning(table: Table) -> dict[str, str] | None:
    if table.partition_by is None:
        return None
    col = table.column(table.partition_by)
    return {"type": "DAY", "field": col.name}
