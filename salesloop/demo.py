"""``salesloop demo``: the whole loop on one machine, with real local parts.

Generate a retail history → load it through the warehouse service → train and deploy v1 → start
the model server, mailbox, function and dispatcher → replay the following days as several insert
jobs per day (with a few invalid rows, and a scripted demand drop in one category) → wait until
every event is processed → stop everything → write ``<run>/demo-summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from salesloop.config import load_settings
from salesloop.local.stack import LocalStack

DROP_CATEGORY = "FOODS"
DROP_FACTOR = 0.2
DROP_AFTER_DAYS = 5

# The demo's retraining must fit in its five minutes on two cores: two backtest windows, each model
# fitted once, a one-year training window. The absolute bias gate is off because every backtest
# window straddles the scripted regime shift, where every model (SeasonalNaive included) is biased;
# the relative gates (beat SeasonalNaive, not worse than the champion) and coverage still decide.
DEMO_TRAINING_OVERLAY: dict[str, Any] = {
    "training": {
        "history_days": 400,
        "backtest": {"windows": 2, "refit": False, "stat_max_history": 120},
        "gate": {"max_abs_bias": None},
    }
}


@dataclass
class DemoOptions:
    series: int = 300
    days: int = 1000
    replay_days: int = 14
    jobs_per_day: int = 3
    run_dir: Path = Path("runs/demo")
    seed: int = 7
    start: date = date(2013, 1, 1)
    quiet: bool = False
    wait_timeout_s: float = 300.0
    # Issue 5's closed loop: monitor after the replay, retrain through the kfp pipeline when
    # accuracy degraded, roll out under live traffic, replay more days, monitor again.
    closed_loop: bool = True
    after_days: int = 7
    drop_after_days: int = DROP_AFTER_DAYS


def _bad_rows(day: date, n: int) -> pd.DataFrame:
    """Invalid rows mixed into live jobs: they must land in rejected_sales, not vanish."""
    base = {
        "store_id": "CA_1",
        "item_id": "FOODS_3_001",
        "dept_id": "FOODS_3",
        "cat_id": "FOODS",
        "state_id": "CA",
        "sell_price": 2.5,
        "snap": False,
        "event_name": None,
    }
    rows = [
        {**base, "date": day.isoformat(), "units": "-3"},
        {**base, "date": "2016-13-45", "units": "4"},
        {**base, "item_id": None, "date": day.isoformat(), "units": "1"},
    ]
    return pd.DataFrame(rows[:n])


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    arr = np.asarray(values)
    return {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in (50, 95, 99)}


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    from salesloop.data.calendar import generated_calendar, load_calendar
    from salesloop.data.generate import Shock, generate_frame
    from salesloop.data.ingest import ingest_frame
    from salesloop.local.dispatcher import DeliveryStore
    from salesloop.local.mailbox import count_messages
    from salesloop.model.train import train_and_register
    from salesloop.registry import LocalRegistry
    from salesloop.warehouse.http import HttpWarehouse

    console = Console(stderr=True, quiet=opts.quiet)
    started = time.perf_counter()
    run_dir = Path(opts.run_dir).resolve()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    stack = LocalStack(run_dir, extra_overlay=DEMO_TRAINING_OVERLAY if opts.closed_loop else {})
    settings = load_settings("local", extra_overlay=stack.overlay_path)
    replay_start = opts.start + timedelta(days=opts.days)
    drop_start = replay_start + timedelta(days=opts.drop_after_days)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    try:
        with progress:
            t = progress.add_task("generate data", total=1)
            generated_days = (
                opts.days + opts.replay_days + (opts.after_days if opts.closed_loop else 0)
            )
            frame = generate_frame(
                opts.series,
                generated_days,
                start=opts.start,
                seed=opts.seed,
                shocks=(
                    Shock(
                        "category_drop",
                        start=drop_start,
                        factor=DROP_FACTOR,
                        category=DROP_CATEGORY,
                    ),
                ),
            )
            progress.update(t, completed=1)

            t = progress.add_task("start warehouse + load history", total=1)
            stack.start("warehouse")
            wh = HttpWarehouse(stack.warehouse_url)
            history = frame[pd.to_datetime(frame["date"]) < pd.Timestamp(replay_start)]
            live = frame[pd.to_datetime(frame["date"]) >= pd.Timestamp(replay_start)]
            ingest_frame(wh, history, settings=settings)
            # The retailer's calendar, known ahead: every generated day and the last one's horizon.
            load_calendar(
                wh, generated_calendar(opts.start, generated_days + settings.forecast.horizon)
            )
            progress.update(t, completed=1)

            t = progress.add_task("train + deploy v1", total=1)
            train = wh.query(
                "SELECT * FROM {{ sales }} WHERE date < @replay_start ORDER BY series_id, date",
                {"replay_start": replay_start},
            )
            registry = LocalRegistry(stack.registry)
            version = train_and_register(train, registry, settings, version_note="demo v1")
            registry.deploy(stack.endpoint_id, version)
            progress.update(t, completed=1)

            t = progress.add_task("start model server, mailbox, function, dispatcher", total=4)
            for part in ("model_server", "mailbox", "function", "dispatcher"):
                stack.start(part)
                progress.advance(t)
            store = DeliveryStore(stack.dispatcher_state)
            _wait_drained(store, stack, opts.wait_timeout_s)  # the backfill's events first

            live_started = time.time()
            replay_end = replay_start + timedelta(days=opts.replay_days)
            live_dates = pd.to_datetime(live["date"])
            first, after = (
                live[live_dates < pd.Timestamp(replay_end)],
                live[live_dates >= pd.Timestamp(replay_end)],
            )
            groups = np.array_split(np.array(sorted(live["store_id"].unique())), opts.jobs_per_day)
            replay = _Replayer(wh, store, stack, settings, groups, opts.wait_timeout_s)
            replay.days(first, progress, "replay live days")
            loop: dict[str, Any] = {}
            if opts.closed_loop:
                loop = _closed_loop(
                    wh, stack, settings, registry, version, replay, after, replay_end, progress
                )
        summary = _summary(wh, store, stack, version, started, live_started, count_messages)
        summary.update(loop)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping the local parts[/yellow]")
        stack.stop_all()
        raise
    finally:
        stack.stop_all()
    (run_dir / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (and its children's: kfp's runner) to a log file.

    kfp's local runner streams every component's output to the inherited file descriptors; the
    demo's own stdout must stay clean for ``--json``.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log, open(path, "a") as text:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class _Replayer:
    """Replays days of sales as insert jobs (a few invalid rows each day) and waits for the loop."""

    def __init__(
        self,
        wh: Any,
        store: Any,
        stack: LocalStack,
        settings: Any,
        groups: list[Any],
        timeout_s: float,
    ):
        self.wh, self.store, self.stack, self.settings = wh, store, stack, settings
        self.groups, self.timeout_s = groups, timeout_s

    def days(self, rows: pd.DataFrame, progress: Progress, label: str) -> None:
        from salesloop.data.ingest import ingest_frame

        dates = pd.to_datetime(rows["date"]).dt.date
        days = sorted(dates.unique())
        t = progress.add_task(label, total=len(days))
        for day in days:
            day_rows = rows[dates == day]
            for i, group in enumerate(self.groups):
                job = day_rows[day_rows["store_id"].isin(list(group))].astype(object)
                if i == 0:
                    job = pd.concat([job, _bad_rows(day, 3)], ignore_index=True)
                if len(job):
                    ingest_frame(self.wh, job, settings=self.settings)
            _wait_drained(self.store, self.stack, self.timeout_s)
            progress.advance(t)


class _PredictionTraffic:
    """Live prediction requests against the endpoint while a rollout swaps models: none may fail."""

    def __init__(self, settings: Any, instances: list[dict[str, Any]]):
        from salesloop.predictor import open_predictor

        self.predictor = open_predictor(settings)
        self.instances = instances
        self.requests = self.failures = 0
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.requests += 1
            try:
                self.versions.add(self.predictor.predict(self.instances).model_version)
            except Exception:  # every failure counts; the loop must keep measuring
                self.failures += 1
            self._stop.wait(0.02)

    def __enter__(self) -> _PredictionTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _closed_loop(
    wh: Any,
    stack: LocalStack,
    settings: Any,
    registry: Any,
    v1: str,
    replay: _Replayer,
    after: pd.DataFrame,
    replay_end: date,
    progress: Progress,
) -> dict[str, Any]:
    """Monitor → (accuracy degraded) → kfp pipeline retrain → canary rollout under traffic → more days → monitor."""
    from salesloop import sql
    from salesloop.data.calendar import split_job_history
    from salesloop.mail.smtp import SmtpMailer
    from salesloop.monitoring.monitor import RetrainOutcome, RetrainStatus, run_monitor
    from salesloop.predictor.codec import instances_from_history
    from training.local import run_local

    mailer = SmtpMailer(settings.smtp, None)
    last_job = str(wh.audit_entries(0, 1_000_000)["job_name"].iloc[-1]).rsplit("/", 1)[-1]
    history, calendar = split_job_history(
        wh.query(
            sql.load("job_history"),
            {
                "job_id": last_job,
                "recent_days": 63,
                "horizon": settings.forecast.horizon,
                "event_id": "",  # no ledger lookup: only the history is wanted here
                "job_name": "",
            },
        )
    )
    sample = instances_from_history(history, recent_days=63, future=calendar)[:20]
    traffic = _PredictionTraffic(settings, sample)
    t = progress.add_task("monitor → retrain (kfp pipeline) → canary rollout", total=1)

    def retrain(_: Any) -> RetrainOutcome:
        with traffic, _output_to(stack.run_dir / "logs" / "pipeline.log"):
            out = run_local(
                env="local",
                pipeline_root=stack.run_dir / "pipeline",
                registry_root=stack.registry,
                endpoint_id=stack.endpoint_id,
                overlay=stack.overlay_path,
            )
        version, gate = str(out["version"]), str(out["status"])
        champion = registry.alias("champion")
        status: RetrainStatus = (
            "promoted"
            if champion == version
            else ("rolled_back" if gate == "accepted" else "rejected")
        )
        return RetrainOutcome(
            status=status, version=version, reason=f"gate {gate}; champion {champion}"
        )

    before = run_monitor(
        wh,
        settings,
        now=replay_end,
        model_version=v1,
        on_retrain=retrain,
        send_email=mailer.send,
        registry=stack.registry,
    )
    progress.update(t, completed=1)
    champion = registry.alias("champion") or v1
    replay.days(
        after,
        progress,
        f"replay {len(pd.to_datetime(after['date']).dt.date.unique())} more days ({champion})",
    )
    after_end = replay_end + timedelta(days=len(pd.to_datetime(after["date"]).dt.date.unique()))
    later = run_monitor(
        wh,
        settings,
        now=after_end,
        model_version=champion,
        send_email=mailer.send,
        registry=stack.registry,
    )
    b, a = before.summary(), later.summary()
    return {
        "drift_detected": bool(before.breaches),
        "monitor_reasons": list(before.reasons),
        "retrains": int(before.retrain),
        "retrain_outcome": None if before.outcome is None else before.outcome.status,
        "model_versions": {
            v: sorted(k for k, x in registry.aliases().items() if x == v)
            for v in registry.list_versions()
        },
        "serving_version_after": champion,
        "accuracy_before": b.get("accuracy", {}).get("mase"),
        "accuracy_after": a.get("accuracy", {}).get("mase"),
        "predictions_during_rollout": traffic.requests,
        "failed_predictions_during_rollout": traffic.failures,
        "versions_seen_during_rollout": sorted(traffic.versions),
    }


def _wait_drained(store: Any, stack: LocalStack, timeout_s: float) -> None:
    """Until the warehouse's audit log is fully enqueued and nothing is pending."""
    deadline = time.monotonic() + timeout_s
    from salesloop.warehouse.http import HttpWarehouse

    wh = HttpWarehouse(stack.warehouse_url)
    try:
        while time.monotonic() < deadline:
            audit = wh.audit_entries(0, limit=1_000_000)
            last_seq = int(audit["seq"].max()) if len(audit) else 0
            if store.cursor() >= last_seq and store.counts()["pending"] == 0:
                return
            for part, proc in stack.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{part} died (exit {proc.returncode}); see {stack.run_dir / 'logs' / (part + '.log')}"
                    )
            time.sleep(0.05)
    finally:
        wh.close()
    raise TimeoutError(f"events still pending after {timeout_s:.0f}s: {store.counts()}")


def _summary(
    wh: Any,
    store: Any,
    stack: LocalStack,
    version: str,
    started: float,
    live_started: float,
    count_messages: Any,
) -> dict[str, Any]:
    def scalar(sql: str) -> int:
        return int(wh.query(sql).iloc[0, 0])

    counts = store.counts()
    processed = scalar("SELECT COUNT(*) FROM {{ processed_events }}")
    return {
        "events_emitted": len(wh.audit_entries(0, 1_000_000)),
        "events_processed": processed,
        "events_dead_lettered": counts["dead"],
        "duplicates_ignored": store.total_acks() - processed,
        "forecast_rows": scalar("SELECT COUNT(*) FROM {{ forecasts }}"),
        "series_forecast": scalar("SELECT COUNT(DISTINCT series_id) FROM {{ forecasts }}"),
        "alerts_raised": scalar("SELECT COUNT(*) FROM {{ alerts }}"),
        "alerts_sent": scalar("SELECT COUNT(*) FROM {{ alerts }} WHERE status = 'sent'"),
        "emails_in_mailbox": count_messages(stack.maildir),
        "rejected_rows": scalar("SELECT COUNT(*) FROM {{ rejected_sales }}"),
        "sales_rows": scalar("SELECT COUNT(*) FROM {{ sales }}"),
        "insert_to_forecast_ms": _percentiles(store.latencies_ms(since=live_started)),
        "model_version": version,
        "run_dir": str(stack.run_dir),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def print_summary(summary: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="salesloop demo", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)
    console.print(f"summary written to {Path(summary['run_dir']) / 'demo-summary.json'}")
