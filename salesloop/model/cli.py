"""``salesloop train`` and ``salesloop deploy``: the model's commands (wired into the main CLI)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from salesloop.config import Settings
    from salesloop.registry import LocalRegistry

app = typer.Typer(help="Train, register and deploy forecasting models.", no_args_is_help=True)

_MAX_DATE_SQL = "SELECT MAX(date) AS end_date FROM {{ sales }}"


def _registry(path: Path | None) -> tuple[Settings, LocalRegistry]:
    from salesloop.config import load_settings
    from salesloop.registry import LocalRegistry

    settings = load_settings()
    if path is None:
        from salesloop.runtime import registry_dir

        path = registry_dir(settings)
    return settings, LocalRegistry(path)


@app.command("train")
def train_command(
    end_date: Annotated[
        str | None,
        typer.Option(help="Last training day (YYYY-MM-DD); default: the last day in sales."),
    ] = None,
    history_days: Annotated[int, typer.Option(min=60, help="Days of history to train on.")] = 730,
    note: Annotated[str, typer.Option(help="Why this version exists (stored and audited).")] = "",
    registry: Annotated[
        Path | None,
        typer.Option(help="Registry folder (default: $SALESLOOP_REGISTRY or <run_dir>/registry)."),
    ] = None,
) -> None:
    """Train a LightGBM version on the warehouse's sales and register it as the challenger."""
    from salesloop import sql
    from salesloop.model.train import train_and_register
    from salesloop.warehouse import open_warehouse

    settings, reg = _registry(registry)
    wh = open_warehouse(settings)
    try:
        if end_date is None:
            last = wh.query(_MAX_DATE_SQL, {})
            value = last["end_date"].iloc[0] if len(last) else None
            if value is None or value != value:
                typer.echo("the sales table is empty: nothing to train on", err=True)
                raise typer.Exit(2)
            end = pd_date(value)
        else:
            end = date.fromisoformat(end_date)
        frame = wh.query(
            sql.load("training_frame"), {"end_date": end, "history_days": history_days}
        )
    finally:
        wh.close()
    version = train_and_register(frame, reg, settings, version_note=note or f"trained to {end}")
    meta = reg.get(version).metadata
    typer.echo(
        json.dumps(
            {
                "version": version,
                "train_start": meta.get("train_start"),
                "train_end": meta.get("train_end"),
                "n_series": meta.get("n_series"),
                "metrics": meta.get("metrics"),
                "aliases": reg.aliases(),
            },
            indent=2,
            default=str,
        )
    )


def pd_date(value: object) -> date:
    import pandas as pd

    return pd.Timestamp(value).date()  # type: ignore[arg-type]


@app.command("deploy")
def deploy_command(
    version: Annotated[str, typer.Argument(help="Registered version, e.g. v0003.")],
    endpoint_id: Annotated[
        str | None, typer.Option(help="Endpoint (default: predictor.endpoint_id).")
    ] = None,
    traffic: Annotated[
        int, typer.Option(min=1, max=100, help="Percent of traffic (100 replaces the others).")
    ] = 100,
    reason: Annotated[str, typer.Option(help="Why (audited).")] = "manual deploy",
    registry: Annotated[Path | None, typer.Option(help="Registry folder.")] = None,
) -> None:
    """Deploy a version on the endpoint; at 100% it also becomes the champion."""
    from salesloop.registry import RegistryError

    settings, reg = _registry(registry)
    endpoint = endpoint_id or settings.predictor.endpoint_id
    try:
        models = reg.deploy(endpoint, version, traffic, reason=reason)
        if traffic == 100:
            reg.set_alias("champion", version, reason=reason)
    except RegistryError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(
        json.dumps(
            {
                "endpoint_id": endpoint,
                "deployed_models": [
                    {"id": m.id, "version": m.version, "traffic": m.traffic} for m in models
                ],
                "aliases": reg.aliases(),
            },
            indent=2,
        )
    )
