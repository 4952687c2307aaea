"""Accuracy of every candidate and baseline on the same rolling-origin backtest; JSON on stdout.

    python benchmarks/accuracy.py                       # default generated data (600 x 1000 days)
    python benchmarks/accuracy.py --data sales.parquet --freq W --horizon 4 --season-length 52
    python benchmarks/accuracy.py --freq W --horizon 4 --season-length 52   # generated, weekly

The backtest is the pipeline's own (:func:`salesloop.pipeline.steps.backtest`): every model is
refitted at every origin on the data up to it and scored on the same series and windows. Generated
data is calibrated to M5 statistics but is not M5: never quote these numbers as M5 accuracy.
Progress goes to stderr; the result is the only thing on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from salesloop.config import ForecastSettings, load_settings  # noqa: E402
from salesloop.data.generate import demand_truth  # noqa: E402
from salesloop.evaluation.backtest import AUTO_ETS, SEASONAL_NAIVE  # noqa: E402
from salesloop.evaluation.candidates import build_model  # noqa: E402
from salesloop.evaluation.oracle import OracleModel  # noqa: E402
from salesloop.evaluation.periods import aggregate_sales  # noqa: E402
from salesloop.model import to_frame  # noqa: E402
from salesloop.pipeline.steps import backtest  # noqa: E402
from salesloop.training_settings import TrainingSettings, resolve  # noqa: E402

ORACLE = "Oracle"
CAUSAL_ORACLE = "Causal oracle"
KEYS = ("mase", "rmsse", "wape", "bias", "coverage_80", "coverage_95")


def _load(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    if "series_id" not in df.columns:
        df["series_id"] = df["store_id"].astype(str) + "/" + df["item_id"].astype(str)
    for col in ("dept_id", "cat_id", "state_id"):
        if col not in df.columns:
            df[col] = "all"
    return df


def _noise_floor(overall: dict[str, dict[str, float]], chosen: str) -> dict[str, Any]:
    """How close the chosen model is to the oracles, and whether the 30% target is reachable."""
    snaive = overall[SEASONAL_NAIVE]["rmsse"]
    causal = overall[CAUSAL_ORACLE]["rmsse"]
    return {
        "oracle_rmsse_vs_seasonal_naive": _round(overall[ORACLE]["rmsse"] / snaive),
        "causal_oracle_rmsse_vs_seasonal_naive": _round(causal / snaive),
        "chosen_rmsse_vs_oracle": _round(overall[chosen]["rmsse"] / overall[ORACLE]["rmsse"]),
        "chosen_rmsse_vs_causal_oracle": _round(overall[chosen]["rmsse"] / causal),
        "rmsse_30pct_below_seasonal_naive_reachable": bool(causal <= 0.7 * snaive),
    }


def _round(x: Any) -> Any:
    return round(float(x), 4) if isinstance(x, int | float) and math.isfinite(x) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, help="CSV/Parquet of sales rows (default: generated)")
    p.add_argument("--freq", default="D", choices=["D", "W", "MS", "M"])
    p.add_argument("--horizon", type=int, default=None, help="default: 7 (D), 4 (W), 3 (MS)")
    p.add_argument(
        "--season-length", type=int, default=None, help="default: 7 (D), 52 (W), 12 (MS)"
    )
    p.add_argument("--series", type=int, default=600)
    p.add_argument("--days", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument(
        "--candidates", default="lightgbm", help="comma-separated kinds, e.g. lightgbm,auto_ets"
    )
    p.add_argument("--no-refit", action="store_true", help="fit once at the first origin")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--lgbm-params", default="", help="JSON overrides of LightGBMConfig")
    p.add_argument(
        "--oracle",
        action="store_true",
        help="also score the generator's oracles (daily generated data only): the true mean, and the "
        "causal oracle that knows everything up to the origin (the floor for any model)",
    )
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")

    defaults = {"D": (7, 7), "W": (4, 52), "MS": (3, 12), "M": (3, 12)}[args.freq]
    horizon = args.horizon or defaults[0]
    season = args.season_length or defaults[1]
    t0 = time.perf_counter()
    if args.data:
        sales = _load(args.data)
        data_desc: dict[str, Any] = {"source": str(args.data)}
    else:
        from salesloop.data.generate import generate_frame

        sales = generate_frame(args.series, args.days, start=date(2013, 1, 1), seed=args.seed)
        sales["series_id"] = sales["store_id"].astype(str) + "/" + sales["item_id"].astype(str)
        if args.freq != "D":
            sales = aggregate_sales(sales, args.freq)
        data_desc = {
            "source": "generated",
            "series": args.series,
            "days": args.days,
            "seed": args.seed,
        }
    frame = to_frame(sales, args.freq)
    data_desc.update(
        rows=len(frame),
        series=int(frame["unique_id"].nunique()),
        periods=int(frame["ds"].nunique()),
        freq=args.freq,
        first=str(frame["ds"].min().date()),
        last=str(frame["ds"].max().date()),
    )
    print(f"data ready in {time.perf_counter() - t0:.1f}s: {data_desc}", file=sys.stderr)

    settings = load_settings("local")
    forecast = ForecastSettings(freq=args.freq, horizon=horizon, season_length=season)
    settings = settings.model_copy(update={"forecast": forecast})
    lgbm_params = json.loads(args.lgbm_params) if args.lgbm_params else {}
    kinds = [k.strip() for k in args.candidates.split(",") if k.strip()]
    train = resolve(
        TrainingSettings.model_validate(
            {
                "candidates": [
                    {"name": k, "kind": k, "params": lgbm_params if k == "lightgbm" else {}}
                    for k in kinds
                ],
                "select_best": True,
                "backtest": {
                    "windows": args.windows,
                    "refit": not args.no_refit,
                    "min_train_periods": max(4 * season, 2 * horizon),
                },
            }
        ),
        settings,
    )
    candidates = {
        spec.name: build_model(
            spec.kind,
            forecast,
            spec.params,
            stat_max_history=train.backtest.stat_max_history,
            n_jobs=args.n_jobs,
        )
        for spec in train.candidates
    }
    extra = []
    if args.oracle:
        if args.data or args.freq != "D":
            p.error("--oracle needs daily generated data")
        from salesloop.data.generate import GAMMA_SHAPE
        from salesloop.evaluation.backtest import Contender

        truth = demand_truth(args.series, args.days, date(2013, 1, 1), args.seed)
        for name, knows_future in ((ORACLE, True), (CAUSAL_ORACLE, False)):
            oracle = OracleModel(truth, GAMMA_SHAPE, knows_future=knows_future)
            extra.append(Contender(name, "baseline", model=oracle))
    result, chosen = backtest(
        frame,
        settings,
        train,
        candidates,
        extra=extra,
        n_jobs=args.n_jobs,
        progress=lambda msg: print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr),
    )
    overall = result.overall
    models = {
        name: {**{k: _round(vals.get(k)) for k in KEYS}, "wall_s": round(result.wall_s[name], 1)}
        for name, vals in overall.items()
    }
    snaive = overall[SEASONAL_NAIVE]["rmsse"]
    ets = overall[AUTO_ETS]["rmsse"]
    best = overall[chosen]
    out = {
        "models": models,
        "chosen": chosen,
        "data": data_desc,
        "windows": result.plan.describe(),
        "by_category_rmsse": {
            cat: {m: _round(v["rmsse"]) for m, v in vals.items()}
            for cat, vals in result.metrics["by_category"].items()
        },
        "targets": {
            "rmsse_vs_seasonal_naive": _round(best["rmsse"] / snaive),
            "rmsse_30pct_below_seasonal_naive": bool(best["rmsse"] <= 0.7 * snaive),
            "rmsse_below_auto_ets": bool(best["rmsse"] < ets),
            "coverage_80_within_3pts": bool(abs(best["coverage_80"] - 0.80) <= 0.03),
            "coverage_95_within_3pts": bool(abs(best["coverage_95"] - 0.95) <= 0.03),
        },
        **({"noise_floor": _noise_floor(overall, chosen)} if ORACLE in overall else {}),
        "wall_s": round(time.perf_counter() - t0, 1),
        "refit": not args.no_refit,
        "known_future": list(train.backtest.known_future),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
