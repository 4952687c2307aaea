"""``salesloop demo``: the whole loop on one machine, with real local parts.

Generate a retail history → load it through the warehouse service → train and deploy v1 → start
the model server, mailbox, function and dispatcher → replay the following days as several insert
jobs per day (with a few invalid rows, and a scripted demand drop in one category) → wait until
every event is processed → stop everything → write ``<run>/demo-summary.json``.
"""

from __future__ import annotations

import json
import shutil
import time
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
    stack = LocalStack(run_dir)
    settings = load_settings("local", extra_overlay=stack.overlay_path)
    replay_start = opts.start + timedelta(days=opts.days)
    drop_start = replay_start + timedelta(days=DROP_AFTER_DAYS)
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
            frame = generate_frame(
                opts.series,
                opts.days + opts.replay_days,
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
            days = sorted(pd.to_datetime(live["date"]).dt.date.unique())
            t = progress.add_task("replay live days", total=len(days))
            stores = sorted(live["store_id"].unique())
            groups = np.array_split(np.array(stores), opts.jobs_per_day)
            for day in days:
                day_rows = live[pd.to_datetime(live["date"]).dt.date == day]
                for i, group in enumerate(groups):
                    job = day_rows[day_rows["store_id"].isin(list(group))].astype(object)
                    if i == 0:
                        job = pd.concat([job, _bad_rows(day, 3)], ignore_index=True)
                    if len(job):
                        ingest_frame(wh, job, settings=settings)
                _wait_drained(store, stack, opts.wait_timeout_s)
                progress.advance(t)
            _wait_drained(store, stack, opts.wait_timeout_s)
        summary = _summary(wh, store, stack, version, started, live_started, count_messages)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping the local parts[/yellow]")
        stack.stop_all()
        raise
    finally:
        stack.stop_all()
    (run_dir / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


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
