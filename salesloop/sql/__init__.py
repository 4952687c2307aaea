"""SQL written once, in BigQuery's dialect, and transpiled for DuckDB.

Queries live next to this module as ``<name>.sql``. Tables are referenced through Jinja
placeholders (``{{ sales }}``) so each backend can qualify them (``project.dataset.sales`` on
BigQuery, a bare name on DuckDB); parameters use BigQuery's ``@name`` syntax, which sqlglot turns
into DuckDB's ``$name``. Constructs that sqlglot translates wrongly (see DESIGN.md: DAYOFWEEK,
``WITH OFFSET``, ``ARRAY_AGG(... LIMIT)``, ``DATE_TRUNC(WEEK(...))``) are refused here rather than
allowed to return silently different numbers on one backend.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Literal

import jinja2

Backend = Literal["bigquery", "duckdb"]

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)

# Translations DESIGN.md found to be silently wrong on DuckDB: never let them through.
_FORBIDDEN = [
    (
        re.compile(r"EXTRACT\s*\(\s*DAYOFWEEK", re.I),
        "EXTRACT(DAYOFWEEK ...) is off by one on DuckDB; use FORMAT_DATE('%u', d)",
    ),
    (re.compile(r"WITH\s+OFFSET", re.I), "UNNEST ... WITH OFFSET starts at 1 on DuckDB"),
    (re.compile(r"ARRAY_AGG\s*\([^)]*\bLIMIT\b", re.I), "ARRAY_AGG(... LIMIT n) fails on DuckDB"),
    (
        re.compile(r"DATE_TRUNC\s*\([^)]*WEEK\s*\(", re.I),
        "DATE_TRUNC(.., WEEK(..)) returns TIMESTAMP on DuckDB",
    ),
]


class SqlError(ValueError):
    """A query uses a construct that does not mean the same on both backends, or is unknown."""


def check_portable(sql: str) -> None:
    for pattern, why in _FORBIDDEN:
        if pattern.search(sql):
            raise SqlError(f"non-portable SQL: {why}")


@lru_cache(maxsize=256)
def load(name: str) -> str:
    """The text of ``salesloop/sql/<name>.sql``."""
    try:
        return resources.files(__package__).joinpath(f"{name}.sql").read_text()
    except FileNotFoundError as exc:
        raise SqlError(f"no query named {name!r}") from exc


@lru_cache(maxsize=1024)
def _template(sql: str) -> jinja2.Template:
    return _ENV.from_string(sql)


def render(sql: str, tables: dict[str, str]) -> str:
    """Fill the table placeholders (already qualified for the backend).

    Templates are compiled once per text: compiling costs about a millisecond, and the warehouse
    service renders the same few queries for every event.
    """
    return _template(sql).render(**tables)


@lru_cache(maxsize=1024)
def to_duckdb(bigquery_sql: str) -> str:
    """Transpile one or more BigQuery statements to DuckDB; cached because the hot path repeats."""
    import sqlglot  # here, not at import: processes that only send SQL never load it

    check_portable(bigquery_sql)
    statements = sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")
    return ";\n".join(statements)


def bq_identifier(*parts: str) -> str:
    return "`" + ".".join(parts) + "`"
