"""``salesloop data ...``: generate calibrated demo sales, load the calendar, ingest a sales file.

Both commands print one JSON object on stdout (scripts and the e2e tests read it); progress and
errors go to stderr.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from salesloop.data.generate import M5_SERIES, Shock, write_parquet

app = typer.Typer(
    help="Sales data: generate calibrated demo data, load the calendar, ingest CSV/Parquet files.",
    no_args_is_help=True,
)

SHOCK_HELP = (
    "Scripted change, repeatable. KIND:TARGET:START[:FACTOR][:END] with KIND category_drop "
    "(TARGET a category or department, optionally @STORE: FOODS, FOODS_3@CA_1) or store_closure "
    "(TARGET a store; units become 0). Examples: category_drop:FOODS:2016-01-01:0.4, "
    "store_closure:CA_1:2015-12-01:2015-12-14."
)


def _date(text: str, what: str, param: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{what} {text!r} is not a date (YYYY-MM-DD)", param_hint=param
        ) from None


def parse_shock(text: str) -> Shock:
    """``KIND:TARGET:START[:FACTOR][:END]`` → :class:`Shock` (FACTOR and END in either order)."""
    parts = text.split(":")
    if len(parts) < 3 or len(parts) > 5:
        raise typer.BadParameter(
            f"{text!r}: expected KIND:TARGET:START[:FACTOR][:END], e.g. category_drop:FOODS:2016-01-01:0.4",
            param_hint="--shock",
        )
    kind, target, start = parts[0], parts[1], _date(parts[2], "shock start", "--shock")
    factor: float | None = None
    end: date | None = None
    for extra in parts[3:]:
        try:
            when = date.fromisoformat(extra)
        except ValueError:
            when = None
        if when is not None and end is None:
            end = when
            continue
        try:
            value = float(extra)
        except ValueError:
            value = None
        if value is None or factor is not None:
            raise typer.BadParameter(
                f"{text!r}: {extra!r} is not a FACTOR (a number) or an END date",
                param_hint="--shock",
            )
        factor = value
    category, store = None, None
    if kind == "category_drop":
        category, _, store_part = target.partition("@")
        store = store_part or None
        if factor is None:
            raise typer.BadParameter(
                f"{text!r}: a category_drop needs a FACTOR, e.g. :0.4", param_hint="--shock"
            )
    elif kind == "store_closure":
        store = target
    else:
        raise typer.BadParameter(
            f"{text!r}: unknown kind {kind!r}; expected category_drop or store_closure",
            param_hint="--shock",
        )
    try:
        return Shock(
            kind="category_drop" if kind == "category_drop" else "store_closure",
            start=start,
            factor=0.0 if factor is None else factor,
            category=category,
            store=store,
            end=end,
        )
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}", param_hint="--shock") from None


@app.command("generate")
def generate_command(
    series: Annotated[
        int, typer.Option("--series", help=f"Item-store series (1..{M5_SERIES}).")
    ] = 300,
    days: Annotated[int, typer.Option("--days", help="Days of history.")] = 1100,
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD.")] = "2013-01-01",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")] = Path(
        "runs/local/sales.parquet"
    ),
    shock: Annotated[list[str] | None, typer.Option("--shock", help=SHOCK_HELP)] = None,
    chunk_series: Annotated[
        int, typer.Option("--chunk-series", help="Series per row group.")
    ] = 2000,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Write M5-calibrated daily sales (deterministic for a seed) to a Parquet file."""
    if not 1 <= series <= M5_SERIES:
        raise typer.BadParameter(f"must be in 1..{M5_SERIES}, got {series}", param_hint="--series")
    if days < 1:
        raise typer.BadParameter(f"must be >= 1, got {days}", param_hint="--days")
    if chunk_series < 1:
        raise typer.BadParameter(f"must be >= 1, got {chunk_series}", param_hint="--chunk-series")
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise typer.BadParameter(
            f"{out}: the output is Parquet; use a .parquet name", param_hint="--out"
        )
    first = _date(start, "start", "--start")
    shocks = [parse_shock(s) for s in shock or []]
    stats = write_parquet(
        out, series, days, first, seed, shocks, chunk_series=chunk_series, progress=progress
    )
    typer.echo(
        json.dumps(
            {
                "path": str(stats.path),
                "series": stats.series,
                "days": stats.days,
                "rows": stats.rows,
                "bytes": stats.bytes,
                "units_total": stats.units_total,
                "wall_s": round(stats.wall_s, 3),
                "shocks": [
                    s.__dict__ | {"start": str(s.start), "end": str(s.end) if s.end else None}
                    for s in shocks
                ],
            }
        )
    )


@app.command("calendar")
def calendar_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="M5's calendar.csv, or a CSV/Parquet with date, state_id, snap[, event_name]. "
            "Without it: the generator's calendar from --start."
        ),
    ] = None,
    start: Annotated[
        str, typer.Option("--start", help="First day of the generated calendar, YYYY-MM-DD.")
    ] = "2013-01-01",
    days: Annotated[
        int, typer.Option("--days", help="Days of generated history it covers (as generate).")
    ] = 1100,
    ahead: Annotated[
        int | None,
        typer.Option(
            "--ahead", help="Days known beyond them (default: the environment's forecast horizon)."
        ),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="Environment (default SALESLOOP_ENV or local).")
    ] = None,
) -> None:
    """Load the retailer's calendar (SNAP days per state, events) into the warehouse.

    The event function sends the calendar's SNAP and events for the days it forecasts; days the
    calendar does not cover are sent as ordinary days. Reloading a day replaces it.
    """
    from salesloop.config import SettingsError, load_settings
    from salesloop.data.calendar import (
        CalendarError,
        generated_calendar,
        load_calendar,
        read_calendar_file,
    )

    try:
        settings = load_settings(env)
    except SettingsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--env") from None
    if file is not None:
        try:
            frame = read_calendar_file(file)
        except CalendarError as exc:
            raise typer.BadParameter(str(exc), param_hint="FILE") from None
    else:
        if days < 1:
            raise typer.BadParameter(f"must be >= 1, got {days}", param_hint="--days")
        extra = settings.forecast.horizon if ahead is None else ahead
        if extra < 0:
            raise typer.BadParameter(f"must be >= 0, got {extra}", param_hint="--ahead")
        frame = generated_calendar(_date(start, "start", "--start"), days + extra)

    from salesloop.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        report = load_calendar(warehouse, frame)
    finally:
        warehouse.close()
    typer.echo(json.dumps(report.to_dict()))


def ingest_command(
    file: Annotated[
        Path, typer.Argument(help="CSV (.csv, .csv.gz, .tsv) or Parquet file of sales rows.")
    ],
    mapping_file: Annotated[
        Path | None,
        typer.Option(
            "--mapping", help="YAML mapping of our column names to the file's (units: qty)."
        ),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="Environment (default SALESLOOP_ENV or local).")
    ] = None,
    job_rows: Annotated[int, typer.Option("--job-rows", help="Rows per insert job.")] = 50_000,
) -> None:
    """Validate a sales file and append it to the warehouse, one insert job per JOB_ROWS rows."""
    from salesloop.config import SettingsError, load_settings
    from salesloop.data.ingest import (
        IngestError,
        JobFailed,
        ingest_file,
        inspect_sales_file,
        load_mapping,
    )

    if job_rows < 1:
        raise typer.BadParameter(f"must be >= 1, got {job_rows}", param_hint="--job-rows")
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--env") from None
    try:
        mapping = load_mapping(mapping_file) if mapping_file is not None else None
    except IngestError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mapping") from None
    try:
        inspect_sales_file(file, mapping)
    except IngestError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None

    from salesloop.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        report = ingest_file(warehouse, file, settings=settings, mapping=mapping, job_rows=job_rows)
    except IngestError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    except JobFailed as exc:
        typer.echo(json.dumps(exc.report.to_dict()))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        warehouse.close()
    typer.echo(json.dumps(report.to_dict()))


app.command("ingest")(ingest_command)
