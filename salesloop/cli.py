"""The ``salesloop`` command line: one entry point for every step of the loop.

Sub-commands are imported lazily so ``salesloop --help`` stays fast and a Cloud Function never
imports the CLI's heavier dependencies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from salesloop.config import ENV_NAMES, SettingsError, load_settings

app = typer.Typer(
    name="salesloop",
    help="Sales forecasting taken to production and kept there: forecast on every insert, alert on drops, retrain on drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
events_app = typer.Typer(
    help="Inspect and replay event deliveries of the local environment.", no_args_is_help=True
)
settings_app = typer.Typer(
    help="Show and check the settings of an environment.", no_args_is_help=True
)
app.add_typer(events_app, name="events")
app.add_typer(settings_app, name="settings")


@app.callback()
def _main(
    env: Annotated[
        str | None,
        typer.Option(
            "--env", help=f"Environment: {', '.join(ENV_NAMES)} (default: $SALESLOOP_ENV or local)."
        ),
    ] = None,
) -> None:
    if env is not None:
        if env not in ENV_NAMES:
            raise typer.BadParameter(
                f"unknown environment {env!r}; expected one of {', '.join(ENV_NAMES)}",
                param_hint="--env",
            )
        os.environ["SALESLOOP_ENV"] = env
    from salesloop.logging import configure

    configure(os.environ.get("SALESLOOP_LOG_LEVEL", "WARNING"), json=False)


@settings_app.command("show")
def settings_show() -> None:
    """Print the merged, validated settings as JSON."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


@settings_app.command("check")
def settings_check() -> None:
    """Validate every environment's settings; exit 2 naming the file and key of the first error."""
    for name in ENV_NAMES:
        try:
            load_settings(name)
        except SettingsError as exc:
            typer.echo(f"{name}: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{name}: ok")


@events_app.command("status")
def events_status(
    run_dir: Annotated[Path, typer.Option(help="Run folder of the local environment.")] = Path(
        "runs/demo"
    ),
) -> None:
    """Counts of pending, delivered and dead-lettered events."""
    from salesloop.local.dispatcher import DeliveryStore

    state = run_dir / "dispatcher.sqlite"
    if not state.exists():
        raise typer.BadParameter(f"no dispatcher state at {state}", param_hint="--run-dir")
    typer.echo(json.dumps(DeliveryStore(state).counts()))


@events_app.command("redeliver-dead")
def events_redeliver_dead(
    run_dir: Annotated[Path, typer.Option(help="Run folder of the local environment.")] = Path(
        "runs/demo"
    ),
) -> None:
    """Put dead-lettered events back in the queue with a fresh retry budget."""
    from salesloop.local.dispatcher import DeliveryStore

    state = run_dir / "dispatcher.sqlite"
    if not state.exists():
        raise typer.BadParameter(f"no dispatcher state at {state}", param_hint="--run-dir")
    typer.echo(f"requeued {DeliveryStore(state).redeliver_dead()} dead-lettered events")


@app.command()
def demo(
    series: Annotated[
        int, typer.Option(min=20, max=30490, help="Number of item-store series to generate.")
    ] = 300,
    days: Annotated[
        int, typer.Option(min=120, max=1941, help="Days of history before the replay.")
    ] = 1000,
    replay_days: Annotated[
        int, typer.Option(min=1, max=120, help="Days replayed as live insert jobs.")
    ] = 14,
    jobs_per_day: Annotated[
        int, typer.Option(min=1, max=50, help="Insert jobs per replayed day.")
    ] = 3,
    run_dir: Annotated[Path, typer.Option(help="Run folder (wiped at start).")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option(help="Seed of the data generator.")] = 7,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print demo-summary.json on stdout instead of a table.")
    ] = False,
) -> None:
    """Run the whole loop on this machine with real local parts, then print a summary."""
    from salesloop.demo import DemoOptions, print_summary, run_demo

    summary = run_demo(
        DemoOptions(
            series=series,
            days=days,
            replay_days=replay_days,
            jobs_per_day=jobs_per_day,
            run_dir=run_dir,
            seed=seed,
            quiet=as_json,
        )
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)


def _wire_subcommands() -> None:
    """Sub-apps owned by the modules of each step (data, model, monitoring, pipeline, infra)."""
    from salesloop.data.cli import app as data_app
    from salesloop.data.cli import ingest_command
    from salesloop.infra_diff import app as infra_app
    from salesloop.model.cli import app as model_app
    from salesloop.monitoring.cli import app as monitoring_app
    from salesloop.pipeline_cli import app as pipeline_app

    app.add_typer(
        data_app, name="data", help="Generate synthetic retail data; ingest real sales files."
    )
    app.command("ingest", help="Validate and load a CSV/Parquet sales file as insert jobs.")(
        ingest_command
    )
    # train/deploy and monitor/replay/report are top-level verbs of the loop
    app.registered_commands.extend(model_app.registered_commands)
    app.registered_commands.extend(monitoring_app.registered_commands)
    app.add_typer(
        pipeline_app,
        name="pipeline",
        help="Training pipeline (kfp v2): run locally, compile, submit to Vertex AI.",
    )
    app.add_typer(
        infra_app, name="infra", help="Infrastructure: readable diffs of synthesized stacks."
    )


_wire_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
