"""``salesloop monitor | replay | report``: the monitoring job, replay/backfill and the system report.

A typer ``app`` the main CLI mounts (its commands are added at the top level). Each command takes
``--env`` itself, so ``salesloop monitor --env prod`` works as the scheduler calls it, and
``--run-dir`` for the local environment: a running local stack is reached through the run's
``overlay.yaml`` (the served warehouse); a stopped one through its DuckDB file.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from salesloop.config import ENV_NAMES, Settings, SettingsError, load_settings

app = typer.Typer(
    help="Monitoring: drift and accuracy, replay of insert events, the system report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env", help=f"Environment: {', '.join(ENV_NAMES)} (default: $SALESLOOP_ENV or local)."
    ),
]
RunDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Run folder of the local environment (uses its overlay.yaml when the stack runs).",
    ),
]


@app.callback()
def _standalone() -> None:
    """Logs to stderr (stdout carries --json output) when this app runs on its own; mounted in
    the main CLI, the main callback does the same."""
    from salesloop.logging import configure

    configure(os.environ.get("SALESLOOP_LOG_LEVEL", "WARNING"), json=False)


# -- wiring ---------------------------------------------------------------------------------------
def cli_settings(env: str | None, run_dir: Path | None) -> Settings:
    """Settings of ``env``; with ``run_dir``, the local run's overlay (ports, paths) or folder."""
    if env is not None and env not in ENV_NAMES:
        raise typer.BadParameter(f"unknown environment {env!r}", param_hint="--env")
    overlay = None
    if run_dir is not None and not os.environ.get("SALESLOOP_OVERLAY"):
        candidate = run_dir / "overlay.yaml"
        overlay = candidate if candidate.is_file() else None
    try:
        settings = load_settings(env, extra_overlay=overlay)
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if run_dir is not None:
        settings = settings.model_copy(
            update={"local": settings.local.model_copy(update={"run_dir": run_dir})}
        )
    return settings


def open_cli_warehouse(settings: Settings) -> Any:
    """The environment's warehouse; a local run whose warehouse server is down falls back to the
    DuckDB file it left behind (reports and replays after the demo has stopped)."""
    from salesloop.warehouse import open_warehouse

    url = settings.local.warehouse_url
    if settings.warehouse.backend == "duckdb" and url:
        import requests

        try:
            requests.get(f"{url.rstrip('/')}/health", timeout=2).raise_for_status()
        except requests.RequestException:
            from salesloop.warehouse.duckdb import DuckDBWarehouse

            path = settings.run_dir / "warehouse.duckdb"
            typer.echo(f"warehouse server {url} not reachable; using {path}", err=True)
            return DuckDBWarehouse(path, settings=settings)
    return open_warehouse(settings)


def parse_now(value: str | None, warehouse: Any) -> datetime:
    """``--now``: a date or ISO datetime (UTC if naive), ``data`` (the day after the latest sale:
    replayed or generated history lives in the past), or the current time."""
    if value is None:
        return datetime.now(UTC)
    if value == "data":
        from salesloop import sql

        latest = warehouse.query(sql.load("monitoring_latest_sale"))["latest"].iloc[0]
        if latest is None or str(latest) in ("NaT", "None"):
            raise typer.BadParameter("no sales in the warehouse", param_hint="--now")
        day = date.fromisoformat(str(latest)[:10]) + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date, an ISO datetime or 'data'", param_hint="--now"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def resolve_hook(spec: str) -> Callable[..., Any]:
    """``module:function`` → the function (the training pipeline's retrain entry point)."""
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise typer.BadParameter(f"cannot load retrain hook {spec!r}: {exc}") from None
    if not callable(fn):
        raise typer.BadParameter(f"retrain hook {spec!r} is not callable")
    return fn


def smtp_sender(settings: Settings) -> Callable[[Any], None]:
    from salesloop.logging import register_secret
    from salesloop.mail.smtp import SmtpMailer

    password = None
    if settings.smtp.username:
        from salesloop.secrets import open_secret_store

        password = open_secret_store(settings).get(settings.smtp.secret_name)
        register_secret(password)
    mailer = SmtpMailer(settings.smtp, password)

    def send(msg: Any) -> None:
        mailer.send(msg)

    return send


def registry_folder(settings: Settings, explicit: Path | None) -> Path:
    """The local model registry: ``--registry``, ``$SALESLOOP_REGISTRY`` or ``<run-dir>/registry``."""
    return explicit or Path(os.environ.get("SALESLOOP_REGISTRY", settings.run_dir / "registry"))


def _date(value: str, hint: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=hint) from None


# -- commands -------------------------------------------------------------------------------------
@app.command("monitor")
def monitor_command(
    env: EnvOption = None,
    now: Annotated[
        str | None,
        typer.Option(
            help="Instant to monitor at: YYYY-MM-DD, an ISO datetime, or 'data' (day after the "
            "latest sale). Default: now."
        ),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(help="Version to judge (default: the one that wrote the latest forecast)."),
    ] = None,
    email: Annotated[
        bool, typer.Option("--email/--no-email", help="Email the ML owner on a breach.")
    ] = True,
    retrain_hook: Annotated[
        str | None,
        typer.Option(
            help="module:function run on a retrain decision (default: monitoring.retrain_hook)."
        ),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(help="Local model registry (training window, backtest of the version)."),
    ] = None,
    run_dir: RunDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Measure drift and accuracy, record them in monitoring_metrics, decide about retraining."""
    from salesloop.monitoring.monitor import run_monitor
    from salesloop.monitoring.settings import monitoring_settings

    settings = cli_settings(env, run_dir)
    try:
        ms = monitoring_settings(settings)
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    warehouse = open_cli_warehouse(settings)
    try:
        hook_spec = retrain_hook or ms.retrain_hook
        result = run_monitor(
            warehouse,
            settings,
            now=parse_now(now, warehouse),
            model_version=model_version,
            send_email=smtp_sender(settings) if email and ms.notify else None,
            on_retrain=resolve_hook(hook_spec) if hook_spec else None,
            registry=registry_folder(settings, registry),
        )
    finally:
        warehouse.close()
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(
            f"{result.run_id}: model {result.model_version or '-'}, "
            f"{len(result.breaches)} breach(es), retrain={'yes' if result.retrain else 'no'}"
            + (f" ({result.suppressed_by})" if result.suppressed_by else "")
        )
        for line in summary["breaches"]:
            typer.echo(f"  {line}")
        if result.retrain and not hook_spec:
            typer.echo("  retraining decided; no retrain_hook configured, nothing was started")
        if result.outcome is not None:
            typer.echo(f"  retraining: {result.outcome.status} {result.outcome.version or ''}")
    if result.outcome is not None and result.outcome.status == "failed":
        raise typer.Exit(1)


@app.command("replay")
def replay_command(
    date_from: Annotated[str, typer.Option("--from", help="First sales date (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last sales date (YYYY-MM-DD).")],
    tag: Annotated[
        str | None,
        typer.Option(
            help="Replay tag (event ids <job>-replay-<tag>); reuse it to make a repeat a no-op. Default: a UTC timestamp."
        ),
    ] = None,
    env: EnvOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """Re-emit the insert events of the jobs that loaded sales in a period; the function
    regenerates their forecasts idempotently."""
    from salesloop.local.dispatcher import DeliveryStore
    from salesloop.monitoring.replay import default_tag, replay

    settings = cli_settings(env, run_dir)
    if settings.warehouse.backend != "duckdb":
        typer.echo(
            "replay queues events in the local dispatcher; in the cloud re-run the function on "
            "the jobs instead (not implemented here)",
            err=True,
        )
        raise typer.Exit(2)
    d1, d2 = _date(date_from, "--from"), _date(date_to, "--to")
    tag = tag or default_tag()
    warehouse = open_cli_warehouse(settings)
    try:
        store = DeliveryStore(settings.run_dir / "dispatcher.sqlite")
        try:
            queued = replay(warehouse, store, settings, d1, d2, tag=tag)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    finally:
        warehouse.close()
    typer.echo(f"queued {queued} replayed event(s) with tag {tag}")


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("runs/report.html"),
    since: Annotated[
        str | None, typer.Option(help="Oldest monitoring run and alert shown (YYYY-MM-DD).")
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(
            help="Model registry folder (metadata.json files); default <run-dir>/registry."
        ),
    ] = None,
    env: EnvOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """Write the system report: model versions, accuracy over time, drift, alerts sent."""
    from salesloop.report import write_report

    settings = cli_settings(env, run_dir)
    start = None
    if since:
        d = _date(since, "--since")
        start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    reg = registry_folder(settings, registry)
    warehouse = open_cli_warehouse(settings)
    try:
        path = write_report(warehouse, settings, out, since=start, registry=reg)
    finally:
        warehouse.close()
    typer.echo(f"wrote {path}")
