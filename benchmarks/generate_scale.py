"""How long and how much memory the sales generator needs at M5 scale; prints one JSON object.

    .venv/bin/python benchmarks/generate_scale.py                      # 30,490 series x 1,941 days
    .venv/bin/python benchmarks/generate_scale.py --series 3049 --days 1941 --out /tmp/s.parquet

``peak_rss_mb`` is the process's maximum resident set (ru_maxrss), so it includes the interpreter
and imported libraries (~0.3 GB), not only the generator's working set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=30_490)
    parser.add_argument("--days", type=int, default=1_941)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2011, 1, 29))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-series", type=int, default=2000)
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the file here (default: temp, deleted)"
    )
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    from salesloop.data.generate import write_parquet

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "sales.parquet"
        t0, cpu0 = time.perf_counter(), time.process_time()
        stats = write_parquet(
            out,
            args.series,
            args.days,
            start=args.start,
            seed=args.seed,
            chunk_series=args.chunk_series,
            progress=args.progress,
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        result = {
            "series": stats.series,
            "days": stats.days,
            "rows": stats.rows,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "bytes": stats.bytes,
            "row_groups": stats.row_groups,
            "rows_per_s": round(stats.rows / wall),
            "units_total": stats.units_total,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
