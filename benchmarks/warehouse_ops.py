"""The local warehouse's share of a one-series event, in process and served; prints one JSON.

    .venv/bin/python benchmarks/warehouse_ops.py                 # 300 series x 400 days, 60 events
    .venv/bin/python benchmarks/warehouse_ops.py --series 3000 --events 100

An event's handler makes two warehouse round trips (the history read, the forecasts + ledger
write) and each insert job one more. This times exactly those operations, on a generated history
loaded into DuckDB, twice: on :class:`DuckDBWarehouse` in this process (DuckDB's own cost: parsing,
planning, the window that keeps the latest correction, the keyed MERGE, the commit) and through
the warehouse service (``salesloop.local.warehouse_server``, what the function uses locally: adds
HTTP, Arrow IPC and the frames' conversions). ``select_1`` is the floor of one statement.
Each value is the median (and p90) in milliseconds over ``--events`` one-series events, after
``--warmup`` untimed ones. No model, function or dispatcher is involved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = date(2013, 1, 1)


def log(msg: str) -> None:
    print(f"[warehouse_ops] {msg}", file=sys.stderr, flush=True)


def forecast_rows(series_id: str, origin: pd.Timestamp, event_id: str) -> pd.DataFrame:
    """Seven forecast rows for one series, shaped as the function writes them."""
    now = pd.Timestamp.now(tz="UTC")
    store, item = series_id.split("/", 1)
    return pd.DataFrame(
        {
            "series_id": series_id,
            "store_id": store,
            "cat_id": item.split("_", 1)[0],
            "forecast_origin": origin,
            "horizon_day": np.arange(1, 8),
            "target_date": pd.date_range(origin + pd.Timedelta(days=1), periods=7),
            "model_version": "v0001",
            "yhat": np.linspace(1.0, 2.0, 7),
            "lo_80": 0.5,
            "hi_80": 2.5,
            "lo_95": 0.2,
            "hi_95": 3.0,
            "event_id": event_id,
            "job_id": event_id.removesuffix("-insert"),
            "created_at": now,
        }
    )


def time_events(
    warehouse: Any, live: pd.DataFrame, settings: Any, events: int, warmup: int
) -> dict[str, dict[str, float]]:
    """One-series insert job → history read → forecasts + ledger write, per event; ms per op."""
    from salesloop import sql
    from salesloop.data.ingest import ingest_frame
    from salesloop.events import InsertEvent
    from salesloop.on_sale import ledger_row
    from salesloop.warehouse import Merge

    timings: dict[str, list[float]] = {}

    @contextmanager
    def timed(op: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        timings.setdefault(op, []).append((time.perf_counter() - t0) * 1000)

    for i in range(warmup + events):
        row = live.iloc[[i]].astype(object)
        series_id = f"{row['store_id'].iloc[0]}/{row['item_id'].iloc[0]}"
        with timed("insert_job_1_row"):
            report = ingest_frame(warehouse, row, settings=settings)
        job_id = report.jobs[0].job_id
        event_id = f"{job_id}-insert"
        params = {
            "job_id": job_id,
            "recent_days": 63,
            "horizon": settings.forecast.horizon,
            "event_id": event_id,
            "job_name": f"projects/p/jobs/{job_id}",
        }
        with timed("job_history_1_series"):
            history = warehouse.query(sql.load("job_history"), params)
        if history.empty:
            raise RuntimeError(f"no history came back for {series_id}")
        origin = pd.Timestamp(history["origin"].dropna().max())
        event = InsertEvent(
            event_id=event_id,
            job_name=params["job_name"],
            job_id=job_id,
            project=settings.project,
            dataset=settings.warehouse.dataset,
            table=settings.table("sales"),
            inserted_rows=1,
            committed_at=report.jobs[0].committed_at,
        )
        writes = [
            Merge("forecasts", forecast_rows(series_id, origin, event_id)),
            Merge("processed_events", ledger_row(event, pd.Timestamp.now(tz="UTC"), 1, 0, "v0001")),
        ]
        with timed("apply_forecasts_and_ledger"):
            warehouse.apply(writes)
        with timed("select_1"):
            warehouse.query("SELECT 1 AS one")
        if i < warmup:
            for values in timings.values():
                values.clear()
    return {
        op: {
            "p50": round(float(np.median(v)), 2),
            "p90": round(float(np.percentile(v, 90)), 2),
            "n": len(v),
        }
        for op, v in timings.items()
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from salesloop.config import load_settings
    from salesloop.data.calendar import generated_calendar, load_calendar
    from salesloop.data.generate import generate_frame
    from salesloop.data.ingest import ingest_frame
    from salesloop.local.stack import LocalStack
    from salesloop.warehouse.duckdb import DuckDBWarehouse
    from salesloop.warehouse.http import HttpWarehouse

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="salesloop-whops-"))
    run_dir = workdir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = load_settings("local")
    live_days = 2 * -(-(args.events + args.warmup) // args.series) + 2
    log(f"generating {args.series} series x {args.days} days (+{live_days} live) in {workdir}")
    frame = generate_frame(args.series, args.days + live_days, start=START, seed=args.seed)
    day = pd.to_datetime(frame["date"])
    end = pd.Timestamp(START + timedelta(days=args.days - 1))
    live = frame[day > end].sort_values(["date", "store_id", "item_id"]).reset_index(drop=True)
    db = run_dir / "warehouse.duckdb"
    wh = DuckDBWarehouse(db, settings=settings)
    try:
        ingest_frame(wh, frame[day <= end], settings=settings)
        load_calendar(wh, generated_calendar(START, args.days + live_days + 7))
        wh.checkpoint()
        sales_rows = int(wh.query("SELECT COUNT(*) AS n FROM {{ sales }}")["n"].iloc[0])
        log(f"in process: {args.events} events")
        in_process = time_events(wh, live, settings, args.events, args.warmup)
    finally:
        wh.close()
    served_live = live.iloc[args.events + args.warmup :].reset_index(drop=True)
    stack = LocalStack(run_dir)
    try:
        stack.start_all(("warehouse",), timeout_s=120)
        client = HttpWarehouse(stack.warehouse_url)
        log(f"served: {args.events} events")
        served = time_events(client, served_live, settings, args.events, args.warmup)
        client.close()
    finally:
        stack.stop_all()
        if not args.keep and args.workdir is None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "in_process_ms": in_process,
        "served_ms": served,
        "config": {
            "series": args.series,
            "history_days": args.days,
            "sales_rows_before": sales_rows,
            "events": args.events,
            "cpus": os.cpu_count(),
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--series", type=int, default=300)
    p.add_argument("--days", type=int, default=400, help="days of history loaded first")
    p.add_argument("--events", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the temporary run folder")
    args = p.parse_args(argv)
    if args.events < 1 or args.series < 1 or args.days < 400:
        p.error("--events and --series must be positive, --days at least 400 (a year + history)")
    from salesloop.logging import configure

    configure("WARNING")  # library logs to stderr: stdout carries the JSON result only
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
