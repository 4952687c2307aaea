"""``salesloop pipeline run | compile | submit``: the training pipeline from the command line.

The kfp pipeline lives in the repository's ``training/`` folder (not part of the installed
package, like ``stacks/``), so these commands run from a checkout; :func:`_training` finds it from
the working directory or next to this package and says so clearly when it cannot.

Registered on the main CLI with ``app.add_typer(pipeline_app, name="pipeline")``; the global
``--env`` option of ``salesloop`` selects the environment (``SALESLOOP_ENV``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Training pipeline (kfp v2): run locally, compile for Vertex AI, submit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _training() -> Any:
    """Import the ``training`` package from the repository checkout."""
    try:
        import training.pipeline
    except ModuleNotFoundError:
        for root in (Path.cwd(), *Path(__file__).resolve().parents):
            if (root / "training" / "pipeline.py").is_file():
                sys.path.insert(0, str(root))
                break
        else:
            typer.echo("no training/ folder found: run from the repository root", err=True)
            raise typer.Exit(2) from None
        import training.pipeline
    return training


def _settings(env: str | None) -> Any:
    from salesloop.config import SettingsError, load_settings

    try:
        return load_settings(env)
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command("run")
def run(
    run_dir: Annotated[
        Path | None, typer.Option(help="Run folder (default: the environment's run_dir).")
    ] = None,
    warehouse: Annotated[
        Path | None,
        typer.Option(help="DuckDB file to read (default: the environment's warehouse)."),
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Registry folder (default: <run_dir>/registry).")
    ] = None,
    endpoint_id: Annotated[
        str, typer.Option(help="Endpoint to roll out on (default: predictor.endpoint_id).")
    ] = "",
    end_date: Annotated[
        str, typer.Option(help="Last day of history, YYYY-MM-DD (default: latest sales).")
    ] = "",
    history_days: Annotated[
        int, typer.Option(min=0, help="Days of history (0: training.history_days).")
    ] = 0,
    series_filter: Annotated[
        str, typer.Option(help="SQL LIKE pattern on series_id, e.g. 'CA_1/%'.")
    ] = "",
    overlay: Annotated[
        Path | None, typer.Option(help="Extra settings YAML applied last (e.g. training knobs).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Run the whole pipeline on this machine with kfp's local runner (offline)."""
    import os

    from salesloop.runtime import registry_dir

    env = os.environ.get("SALESLOOP_ENV") or "local"
    settings = _settings(env)
    if settings.warehouse.backend != "duckdb" and warehouse is None:
        typer.echo(
            f"{env} uses BigQuery: run it on Vertex AI (`salesloop pipeline submit`)", err=True
        )
        raise typer.Exit(2)
    base = run_dir or settings.run_dir
    reg = registry or registry_dir(settings)
    _training()
    from training.local import run_local

    # kfp.local logs every task to stdout; keep stdout for the result (``--json`` is parseable).
    with contextlib.redirect_stdout(sys.stderr):
        outcome = run_local(
            env=env,
            pipeline_root=base / "pipeline_root",
            registry_root=reg,
            endpoint_id=endpoint_id or settings.predictor.endpoint_id,
            overlay=overlay,
            warehouse_path=warehouse,
            end_date=end_date,
            history_days=history_days,
            series_filter=series_filter,
        )
    from salesloop.registry import LocalRegistry

    reg_obj = LocalRegistry(reg)
    outcome["aliases"] = reg_obj.aliases()
    outcome["version_status"] = reg_obj.get(outcome["version"]).metadata.get("status")
    outcome["reason"] = reg_obj.get(outcome["version"]).metadata.get("reason")
    if as_json:
        typer.echo(json.dumps(outcome, indent=2, default=str))
    else:
        typer.echo(
            f"{outcome['version']}: {outcome['status']} ({outcome['reason']}); "
            f"aliases {outcome['aliases']}"
        )


@app.command("compile")
def compile_(
    out: Annotated[
        Path | None,
        typer.Option(help="YAML path (default: training.vertex.template_path)."),
    ] = None,
    image: Annotated[
        str, typer.Option(help="Container image of the steps (default: training.vertex.image).")
    ] = "",
) -> None:
    """Compile the pipeline to the YAML that Vertex AI Pipelines runs."""
    import os

    from salesloop.training_settings import training_settings

    settings = _settings(os.environ.get("SALESLOOP_ENV"))
    train = training_settings(settings)
    _training()
    from training.pipeline import compile_pipeline

    path = compile_pipeline(
        out or Path(train.vertex.template_path), image or str(train.vertex.image)
    )
    typer.echo(str(path))


@app.command("submit")
def submit(
    template: Annotated[
        Path | None,
        typer.Option(help="Compiled YAML (default: training.vertex.template_path)."),
    ] = None,
    history_days: Annotated[int, typer.Option(min=0)] = 0,
    end_date: Annotated[str, typer.Option()] = "",
    series_filter: Annotated[str, typer.Option()] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build the PipelineJob and print it; do not submit.")
    ] = False,
) -> None:
    """Submit the compiled pipeline to Vertex AI Pipelines (salesloop --env dev|prod pipeline submit)."""
    import os

    from salesloop.training_settings import training_settings
    from salesloop.vertex.pipeline_job import build_pipeline_job
    from salesloop.vertex.pipeline_job import submit as submit_job

    settings = _settings(os.environ.get("SALESLOOP_ENV"))
    train = training_settings(settings)
    params: dict[str, Any] = {}
    if history_days:
        params["history_days"] = history_days
    if end_date:
        params["end_date"] = end_date
    if series_filter:
        params["series_filter"] = series_filter
    credentials = None
    if dry_run:
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    try:
        submission = build_pipeline_job(
            settings,
            template or Path(train.vertex.template_path),
            parameters=params,
            credentials=credentials,
        )
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(submission.describe(), indent=2, default=str))
    if not dry_run:
        typer.echo(submit_job(submission))


if __name__ == "__main__":  # `python -m salesloop.pipeline_cli run` before the main CLI wires it
    app()
