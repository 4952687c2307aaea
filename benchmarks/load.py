"""A sustained stream of insert jobs through the real local parts; prints one JSON object.

    .venv/bin/python benchmarks/load.py                    # 2 minutes
    .venv/bin/python benchmarks/load.py --soak             # 10 minutes (memory over time)
    .venv/bin/python benchmarks/load.py --duration 30 --predictor-client http

Prepares a run folder (``--series`` generated series, 400 days of history, a small LightGBM
deployed), starts the warehouse service, model server, mailbox, function and dispatcher as their
own processes (salesloop.local.stack), then:

1. warm-up: a few jobs, drained;
2. low load: ``--probe-jobs`` one-series jobs, each inserted after the previous one's event was
   acknowledged (``low_load_insert_to_forecast_ms``; ``low_load_breakdown_ms``: where that time
   goes, from the dispatcher's state and the function's per-step laps, see ``latency_breakdown``);
3. the stream: for ``--duration`` seconds, jobs of ``--series-per-job`` series (one sales day of
   those series each, the days moving forward), keeping ``--backlog`` jobs in flight (closed loop:
   the stream runs as fast as the loop absorbs it) or at ``--rate`` jobs/s (open loop);
4. drain, then count.

``insert_to_forecast_ms``: job commit in the warehouse → the function's 2xx for its event, which
it answers after the forecasts' transaction committed (so the forecast is visible by then); from
the dispatcher's delivery state. ``lost``: committed jobs whose event never reached the ledger, or
was dead-lettered. ``duplicated``: forecast rows sharing a key, ledger rows for one event more than
once, and emails stored twice. ``rss_*_mb``: resident memory of the function, model server and
warehouse processes (with their children), from /proc: start = after the warm-up, end = after the
stream, max = the highest sample; ``rss_by_part_mb`` splits them per process (the function and the
model server hold no data, so their growth is the leak signal; the warehouse's includes DuckDB
caching the rows the stream wrote). ``rss_steady``: the memory target's measure, total and per
process: the median of the samples in the 10 s before the end of the ramp-up (``--ramp-s``, the
stream's first tenth, at most 60 s) against the median of the last 10 s (the ramp allocates the
stream's working set once; a leak keeps growing after it). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEASURED = ("function", "model_server", "warehouse")


def log(msg: str) -> None:
    print(f"[load] {msg}", file=sys.stderr, flush=True)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    arr = np.asarray(values)
    out: dict[str, float | None] = {
        f"p{q}": round(float(np.percentile(arr, q)), 1) for q in (50, 95, 99)
    }
    out["n"] = len(values)
    return out


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def _rss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _steady_growth(
    samples: list[tuple[float, float]], ramp_end: float, window_s: float = 10.0
) -> dict[str, float] | None:
    """Growth from the end of the ramp-up to the end of the stream, each a median of the samples
    in a ``window_s`` window (one sample can catch a GC pause or a big response).

    Why a ramp: the first seconds of the stream allocate its working set once (25-series batches
    instead of the warm-up's, buffers and caches filling to their size); a leak is what keeps
    growing after that under the same load.
    """
    base = [v for t, v in samples if ramp_end - window_s <= t <= ramp_end]
    last_t = samples[-1][0] if samples else 0.0
    end = [v for t, v in samples if t >= last_t - window_s and t > ramp_end]
    if not base or not end:
        return None
    b, e = float(np.median(base)), float(np.median(end))
    return {
        "after_ramp": round(b, 1),
        "end": round(e, 1),
        "growth_pct": round(100 * (e - b) / b, 1),
    }


def _median_growth(values: list[float]) -> float | None:
    k = len(values) // 10
    if k < 1:
        return None
    first, last = float(np.median(values[:k])), float(np.median(values[-k:]))
    return round(100 * (last - first) / first, 1) if first else None


def latency_breakdown(
    deliveries: dict[str, dict[str, Any]],
    log_events: Iterable[dict[str, Any]],
    event_ids: set[str],
) -> dict[str, float | int | None]:
    """Median milliseconds of each part of insert → forecast, over ``event_ids``.

    From the dispatcher's state: ``commit_to_queued`` (the job's commit → its event in the
    dispatcher's queue: audit-log long poll, event building) and ``queued_to_acked`` (→ the
    function's 2xx); from the function's ``event_processed`` log events: ``handler`` (the handler's
    own time) and its steps (``read``, ``instances``, ``predict``, ``decode``, ``alerts``,
    ``write``, ``email`` when alerts fired); ``delivery`` is ``queued_to_acked`` minus ``handler``
    per event (taking the event from the queue, the POST through functions-framework, recording
    the ack). Events without a log line count in the dispatcher's parts only.
    """
    logged = {
        str(e["event_id"]): e
        for e in log_events
        if e.get("event") == "event_processed" and e.get("event_id") in event_ids
    }
    parts: dict[str, list[float]] = {}
    for event_id in sorted(event_ids):
        d = deliveries.get(event_id)
        if not d or d.get("delivered_at") is None or d.get("job_committed_at") is None:
            continue
        queued_to_acked = (d["delivered_at"] - d["enqueued_at"]) * 1000
        parts.setdefault("commit_to_queued", []).append(
            (d["enqueued_at"] - d["job_committed_at"]) * 1000
        )
        parts.setdefault("queued_to_acked", []).append(queued_to_acked)
        entry = logged.get(event_id)
        if entry is None:
            continue
        parts.setdefault("handler", []).append(float(entry["ms"]))
        parts.setdefault("delivery", []).append(queued_to_acked - float(entry["ms"]))
        for phase, ms in (entry.get("phase_ms") or {}).items():
            parts.setdefault(phase, []).append(float(ms))
    out: dict[str, float | int | None] = {
        k: round(float(np.median(v)), 2) for k, v in parts.items()
    }
    out["n"] = len(parts.get("queued_to_acked", []))
    out["n_logged"] = len(parts.get("handler", []))
    return out


class Sampler(threading.Thread):
    """RSS of the measured parts every second (the max matters as much as the end)."""

    def __init__(self, stack: Any) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.part_samples: list[dict[str, float]] = []

    def rss_parts(self) -> dict[str, float]:
        return {p: _rss_mb(self.stack.procs[p].pid) for p in MEASURED if p in self.stack.procs}

    def rss(self) -> float:
        return sum(self.rss_parts().values())

    def run(self) -> None:
        while not self.stop.wait(1.0):
            parts = self.rss_parts()
            self.part_samples.append(parts)
            self.samples.append((time.time(), sum(parts.values())))

    def part_series(self, part: str) -> list[tuple[float, float]]:
        return [
            (t, x.get(part, 0.0)) for (t, _), x in zip(self.samples, self.part_samples, strict=True)
        ]


class Jobs:
    """Insert jobs over the live days: ``per_job`` series of one day each, days moving forward."""

    def __init__(self, live: pd.DataFrame, per_job: int) -> None:
        live = live.assign(series_id=live["store_id"] + "/" + live["item_id"])
        self.by_day = {d: g for d, g in live.groupby(pd.to_datetime(live["date"]))}
        self.days = sorted(self.by_day)
        self.series = sorted(live["series_id"].unique())
        self.per_job = per_job
        self.day_i, self.offset = 0, 0

    def exhausted(self) -> bool:
        return self.day_i >= len(self.days)

    def next(self, series: int | None = None) -> pd.DataFrame:
        n = series or self.per_job
        day = self.by_day[self.days[self.day_i]]
        pick = set(self.series[self.offset : self.offset + n])
        self.offset += n
        if self.offset >= len(self.series):
            self.day_i, self.offset = self.day_i + 1, 0
        return day[day["series_id"].isin(pick)].drop(columns="series_id").astype(object)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from salesloop.config import load_settings
    from salesloop.data.ingest import ingest_frame
    from salesloop.local.dispatcher import DeliveryStore
    from salesloop.local.mailbox import read_messages
    from salesloop.local.prepare import prepare_run
    from salesloop.local.stack import LocalStack
    from salesloop.warehouse.http import HttpWarehouse

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="salesloop-load-"))
    jobs_per_day = math.ceil(args.series / args.series_per_job)
    # Enough days for the stream at a generous 25 jobs/s.
    replay_days = max(20, math.ceil((args.duration * 25 + 200) / jobs_per_day))
    log(f"preparing {args.series} series x 400 days (+{replay_days} live days) in {workdir}")
    t0 = time.perf_counter()
    prepared = prepare_run(
        workdir / "run", series=args.series, days=400, replay_days=replay_days, seed=args.seed
    )
    prepare_s = time.perf_counter() - t0
    stack = LocalStack(
        prepared.run_dir,
        dispatcher_args=["--workers", str(args.dispatcher_workers)],
        predictor_client=args.predictor_client,
    )
    settings = load_settings("local", extra_overlay=stack.overlay_path)
    store = DeliveryStore(stack.dispatcher_state)
    base_seq = store.cursor()
    jobs = Jobs(prepared.live(), args.series_per_job)
    sampler = Sampler(stack)
    result: dict[str, Any] = {}
    try:
        stack.start_all(timeout_s=180)
        wh = HttpWarehouse(stack.warehouse_url)

        def insert(frame: pd.DataFrame) -> str:
            report = ingest_frame(wh, frame, settings=settings)
            return report.jobs[0].job_id

        def acked() -> int:
            return store.counts()["delivered"]

        def wait_acked(n: int, timeout: float = 300) -> None:
            deadline = time.monotonic() + timeout
            while acked() < n:
                for part, proc in stack.procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{part} died; see {stack.run_dir / 'logs'}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{n - acked()} events not acknowledged: {store.counts()}")
                time.sleep(0.002)

        log("warm-up")
        for _ in range(args.warmup_jobs):
            insert(jobs.next())
        wait_acked(args.warmup_jobs)

        log(f"low load: {args.probe_jobs} one-series jobs, one at a time")
        probe_started = time.time()
        done = acked()
        for _ in range(args.probe_jobs):
            insert(jobs.next(series=1))
            done += 1
            wait_acked(done)
            time.sleep(args.probe_gap_s)
        probe = store.latencies_ms(since=probe_started)
        deliveries = store.deliveries()
        probe_ids = {
            e
            for e, d in deliveries.items()
            if d["job_committed_at"] is not None and d["job_committed_at"] >= probe_started
        }

        parts_start = sampler.rss_parts()
        rss_start = sum(parts_start.values())
        sampler.start()
        ramp_s = args.ramp_s if args.ramp_s is not None else min(60.0, args.duration / 10)
        log(
            f"stream: {args.duration:.0f}s (ramp-up {ramp_s:.0f}s), {args.series_per_job} series per job"
        )
        stream_started = time.time()
        inserted_jobs, inserted_rows = 0, 0
        in_flight: deque[int] = deque()
        deadline = time.monotonic() + args.duration
        next_at = time.monotonic()
        while time.monotonic() < deadline and not jobs.exhausted():
            if args.rate > 0:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1.0 / args.rate
            else:
                while len(in_flight) >= args.backlog and acked() < in_flight[0]:
                    time.sleep(0.002)
                while in_flight and acked() >= in_flight[0]:
                    in_flight.popleft()
            frame = jobs.next()
            insert(frame)
            inserted_jobs += 1
            inserted_rows += len(frame)
            in_flight.append(done + inserted_jobs)
        log("draining")
        wait_acked(done + inserted_jobs, timeout=600)
        stream_s = time.time() - stream_started
        sampler.stop.set()
        sampler.join(5)
        parts_end = sampler.rss_parts()
        rss_end = sum(parts_end.values())

        latencies = store.latencies_ms(since=stream_started)
        ledger = wh.query(
            "SELECT event_id, series_forecast, processed_at FROM {{ processed_events }}"
        )
        audit = wh.audit_entries(base_seq, 10_000_000)
        stream_events = audit[
            pd.to_datetime(audit["committed_at"], utc=True)
            >= pd.Timestamp(stream_started, unit="s", tz="UTC")
        ]
        in_ledger = set(ledger["event_id"])
        counts = store.counts()
        lost = len(set(audit["event_id"]) - in_ledger) + counts["dead"]
        dup_forecasts = int(
            wh.query(
                "SELECT COUNT(*) AS n FROM (SELECT series_id, forecast_origin, horizon_day, model_version"
                " FROM {{ forecasts }} GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1)"
            )["n"][0]
        )
        dup_ledger = int(ledger["event_id"].duplicated().sum())
        ids = [str(m["Message-ID"]) for m in read_messages(stack.maildir)]
        dup_emails = len(ids) - len(set(ids))
        series_forecast = int(
            ledger[ledger["event_id"].isin(set(stream_events["event_id"]))]["series_forecast"].sum()
        )
        wh.close()
        rss_max = max([rss_start, rss_end, *(s for _, s in sampler.samples)])
        result = {
            "events_per_s": round(len(stream_events) / stream_s, 2),
            "rows_per_s": round(inserted_rows / stream_s, 1),
            "series_forecast_per_s": round(series_forecast / stream_s, 1),
            "insert_to_forecast_ms": _percentiles(latencies),
            "low_load_insert_to_forecast_ms": _percentiles(probe),
            # Where the low-load latency goes (medians per part; latency_breakdown).
            "low_load_breakdown_ms": latency_breakdown(
                deliveries, stack.log_events("function"), probe_ids
            ),
            "lost": lost,
            "duplicated": dup_forecasts + dup_ledger + dup_emails,
            "rss_start_mb": round(rss_start, 1),
            "rss_end_mb": round(rss_end, 1),
            "rss_max_mb": round(rss_max, 1),
            "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
            # The flatness target: total memory after the ramp-up vs at the end (_steady_growth).
            "rss_steady": {
                "ramp_s": ramp_s,
                "total": _steady_growth(sampler.samples, stream_started + ramp_s),
                **{
                    p: _steady_growth(sampler.part_series(p), stream_started + ramp_s)
                    for p in parts_start
                },
            },
            # Per process: the function and the model server hold no data, so their growth is the
            # leak signal; the warehouse's includes DuckDB caching the rows the stream wrote.
            "rss_by_part_mb": {
                p: {
                    "start": round(parts_start[p], 1),
                    "end": round(parts_end.get(p, 0.0), 1),
                    "growth_pct": round(
                        100 * (parts_end.get(p, 0.0) - parts_start[p]) / parts_start[p], 1
                    ),
                    # Median of the stream's last tenth vs its first tenth: steadier than two
                    # single samples (a GC pause or a big response can sit in either).
                    "median_growth_pct": _median_growth(
                        [x.get(p, 0.0) for x in sampler.part_samples]
                    ),
                    "samples": [
                        round(x.get(p, 0.0), 1)
                        for x in sampler.part_samples[:: max(1, len(sampler.part_samples) // 30)]
                    ],
                }
                for p in parts_start
            },
            "stream": {
                "seconds": round(stream_s, 1),
                "jobs": inserted_jobs,
                "rows": inserted_rows,
                "series_per_job": args.series_per_job,
                "mode": f"open {args.rate}/s"
                if args.rate > 0
                else f"closed, backlog {args.backlog}",
            },
            "config": {
                "series": args.series,
                "predictor_client": args.predictor_client,
                "dispatcher_workers": args.dispatcher_workers,
                "prepare_s": round(prepare_s, 1),
                "cpus": os.cpu_count(),
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            },
            "rss_samples_mb": [
                round(s, 1) for _, s in sampler.samples[:: max(1, len(sampler.samples) // 60)]
            ],
        }
    finally:
        stack.stop_all()
        store.close()
        if not args.keep and args.workdir is None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=float, default=120.0, help="seconds of stream")
    p.add_argument("--soak", action="store_true", help="a 10-minute stream (overrides --duration)")
    p.add_argument("--series", type=int, default=300)
    p.add_argument("--series-per-job", type=int, default=25)
    p.add_argument("--backlog", type=int, default=4, help="jobs in flight (closed loop)")
    p.add_argument("--rate", type=float, default=0.0, help="jobs/s (open loop); 0: closed loop")
    p.add_argument("--warmup-jobs", type=int, default=6)
    p.add_argument(
        "--ramp-s",
        type=float,
        default=None,
        help="first seconds of the stream excluded from rss_steady (default: a tenth, at most 60)",
    )
    p.add_argument("--probe-jobs", type=int, default=40)
    p.add_argument("--probe-gap-s", type=float, default=0.05)
    p.add_argument("--dispatcher-workers", type=int, default=2)
    p.add_argument("--predictor-client", default="aiplatform", choices=["aiplatform", "http"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the temporary run folder")
    args = p.parse_args(argv)
    from salesloop.logging import configure

    configure("WARNING")  # library logs to stderr: stdout carries the JSON result only
    if args.soak:
        args.duration = 600.0
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
