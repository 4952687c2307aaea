"""Training at scale: generate → load the warehouse → extract → train → one backtest window.

    python benchmarks/train_scale.py --series 30490 --days 1941        # M5 scale (the target)
    python benchmarks/train_scale.py --series 3049 --days 1941         # a tenth of it

Prints one JSON object on stdout: ``wall_s, peak_rss_mb, rows, series, rmsse_ratio_vs_snaive`` plus
the wall and CPU time of every stage and the load average at the end (on a shared machine the wall
time depends on the other jobs; CPU seconds do much less). Target on 2 cores: ≤ 15 minutes and
≤ 10 GB peak at M5 scale.

How memory stays bounded: the generator streams Parquet one chunk of series at a time; DuckDB loads
the Parquet file itself (no pandas copy of the full history); the extract pulls only the
``history_days`` window, one store at a time, with ids as categoricals; training then sees
``series x history_days`` rows. The backtest window is the last ``horizon`` days: the model is
trained on the data before it (so the "train" stage is the training run that the window scores,
and no second full fit is needed), and SeasonalNaive is scored on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def cpu_s() -> float:
    """CPU seconds of this process and its children: what the work costs whatever the load."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024.0, 1)  # Linux reports KiB


def load_parquet_into_warehouse(db: Path, parquet: Path) -> int:
    """Create the schema, then let DuckDB read the Parquet file directly into ``sales``."""
    import duckdb

    from salesloop.warehouse.duckdb import DuckDBWarehouse

    DuckDBWarehouse(db).close()
    con = duckdb.connect(str(db))
    try:
        con.execute(
            f"""
            INSERT INTO sales
            SELECT 'bench_load' AS job_id,
                   row_number() OVER () AS row_num,
                   CAST(store_id AS VARCHAR) || '/' || CAST(item_id AS VARCHAR) AS series_id,
                   store_id, item_id, dept_id, cat_id, state_id, date, units, sell_price, snap,
                   event_name, TIMESTAMPTZ '2020-01-01 00:00:00+00' AS inserted_at
            FROM read_parquet('{parquet}')
            """
        )
        row = con.execute("SELECT COUNT(*) FROM sales").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--series", type=int, default=30490)
    p.add_argument("--days", type=int, default=1941)
    p.add_argument("--history-days", type=int, default=0, help="0: settings warehouse.history_days")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the workdir")
    p.add_argument("--lgbm-params", default="", help="JSON overrides of LightGBMConfig")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")

    import numpy as np
    import pandas as pd

    from salesloop.config import load_settings
    from salesloop.data.generate import write_parquet
    from salesloop.evaluation.candidates import build_model
    from salesloop.evaluation.metrics import model_metrics, scales_before
    from salesloop.model import to_frame
    from salesloop.pipeline.frame import extract_frame, store_chunks
    from salesloop.warehouse.duckdb import DuckDBWarehouse

    settings = load_settings("local")
    fc = settings.forecast
    history_days = args.history_days or settings.warehouse.history_days
    work = args.workdir or Path(tempfile.mkdtemp(prefix="train_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    stages_cpu: dict[str, float] = {}
    t0 = time.perf_counter()

    cpu_at = {"last": cpu_s()}

    def stage(name: str, started: float) -> None:
        stages[name] = round(time.perf_counter() - started, 1)
        now = cpu_s()
        stages_cpu[name] = round(now - cpu_at["last"], 1)
        cpu_at["last"] = now
        print(
            f"[{time.perf_counter() - t0:7.1f}s] {name} done, peak {peak_rss_mb()} MB",
            file=sys.stderr,
        )

    try:
        s = time.perf_counter()
        gen = write_parquet(
            work / "sales.parquet",
            args.series,
            args.days,
            start=date(2011, 1, 29),
            seed=args.seed,
            progress=False,
        )
        stage("generate", s)

        s = time.perf_counter()
        loaded = load_parquet_into_warehouse(work / "warehouse.duckdb", work / "sales.parquet")
        stage("load_warehouse", s)

        s = time.perf_counter()
        wh = DuckDBWarehouse(work / "warehouse.duckdb", read_only=True)
        try:
            raw = extract_frame(wh, history_days=history_days, chunks=store_chunks(wh))
        finally:
            wh.close()
        stage("extract", s)

        s = time.perf_counter()
        frame = to_frame(raw, fc.freq)
        del raw
        stage("to_frame", s)

        periods = np.sort(frame["ds"].unique())
        cutoff = pd.Timestamp(periods[-1 - fc.horizon])
        future_rows = frame[frame["ds"] > cutoff]
        train = frame[frame["ds"] <= cutoff]
        n_series = int(frame["unique_id"].nunique())
        del frame  # the training copy is all the fit needs; ~1 GB less at M5 scale
        s = time.perf_counter()
        params = json.loads(args.lgbm_params) if args.lgbm_params else {}
        model = build_model("lightgbm", fc, params)
        model.fit(train)
        stage("train", s)

        s = time.perf_counter()
        hist = train.groupby("unique_id", sort=False, observed=True).tail(
            model.metadata.min_history
        )
        pred = model.predict(
            hist,
            fc.horizon,
            list(fc.interval_levels),
            future_rows[["unique_id", "ds", "snap", "event"]],
        )
        actual = future_rows[["unique_id", "ds", "y"]].assign(
            unique_id=lambda d: d["unique_id"].astype(str)
        )
        rows = actual.merge(
            pred.assign(unique_id=pred["unique_id"].astype(str)), on=["unique_id", "ds"]
        )
        # SeasonalNaive for the same rows: the value one season (7 days) before, from the history
        lookup = train.assign(unique_id=train["unique_id"].astype(str)).set_index(
            ["unique_id", "ds"]
        )["y"]
        back = rows["ds"] - pd.to_timedelta(
            ((rows["ds"] - cutoff).dt.days + fc.season_length - 1)
            // fc.season_length
            * fc.season_length,
            unit="D",
        )
        naive = lookup.reindex(pd.MultiIndex.from_arrays([rows["unique_id"], back])).to_numpy()
        scales = scales_before(train, cutoff, fc.season_length)
        levels = list(fc.interval_levels)
        m_model = model_metrics(rows, scales, levels)
        naive_rows = rows.assign(yhat=naive)
        for lv in levels:
            naive_rows[f"lo_{lv}"] = naive
            naive_rows[f"hi_{lv}"] = naive
        m_naive = model_metrics(naive_rows, scales, [])
        stage("backtest_window", s)

        out: dict[str, Any] = {
            "wall_s": round(time.perf_counter() - t0, 1),
            "peak_rss_mb": peak_rss_mb(),
            "rows": len(train),
            "series": n_series,
            "rmsse_ratio_vs_snaive": round(m_model["rmsse"] / m_naive["rmsse"], 4),
            "rmsse": round(m_model["rmsse"], 4),
            "rmsse_snaive": round(m_naive["rmsse"], 4),
            "coverage_80": m_model["coverage_80"],
            "coverage_95": m_model["coverage_95"],
            "generated_rows": gen.rows,
            "warehouse_rows": loaded,
            "history_days": history_days,
            "cutoff": str(cutoff.date()),
            "stages_s": stages,
            "cpu_s": round(cpu_s(), 1),
            "stages_cpu_s": stages_cpu,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "args": {"series": args.series, "days": args.days, "seed": args.seed},
        }
        print(json.dumps(out, indent=2))
        return 0
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
