"""The HTML evaluation report of a backtest: one self-contained file a reviewer can open anywhere.

Plots are PNGs embedded as data URIs (no sidecar files to lose when the report is copied out of a
pipeline artifact). Contents: the decision (when given), the metric table overall and per category,
RMSSE per window, and a few series with every model's forecasts and the chosen model's intervals
against the actuals — picked deterministically from the largest, a middle and an intermittent series
so the same report is produced twice from the same backtest.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from salesloop.evaluation.backtest import BacktestResult
from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.best { font-weight: bold; background: #e8f5e9; }
.accepted { color: #1b5e20; } .rejected { color: #b71c1c; }
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.3f}"
    return html.escape(str(v))


def metric_table(metrics: Mapping[str, Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Models as rows; the best value of each error column is highlighted."""
    best: dict[str, str] = {}
    for col in columns:
        vals = {m: v.get(col) for m, v in metrics.items()}
        finite = {
            m: float(x) for m, x in vals.items() if isinstance(x, int | float) and math.isfinite(x)
        }
        if not finite:
            continue
        if col.startswith("coverage_"):
            nominal = int(col.split("_")[1]) / 100
            best[col] = min(finite, key=lambda m: abs(finite[m] - nominal))
        elif col == "bias":
            best[col] = min(finite, key=lambda m: abs(finite[m]))
        elif col in ("mase", "rmsse", "wape"):
            best[col] = min(finite, key=lambda m: finite[m])
    head = "<tr><th>model</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    rows = []
    for model, row in metrics.items():
        cells = "".join(
            f'<td class="{"best" if best.get(c) == model else ""}">{_fmt(row.get(c))}</td>'
            for c in columns
        )
        rows.append(f"<tr><td>{html.escape(model)}</td>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _pick_series(result: BacktestResult, n: int) -> list[str]:
    if n <= 0:
        return []
    rows = result.forecasts
    vol = rows.groupby(ID_COL)[TARGET_COL].sum().sort_values(ascending=False, kind="stable")
    zeros = rows.groupby(ID_COL)[TARGET_COL].apply(lambda s: float((s == 0).mean()))
    picks: list[str] = []
    order = [*vol.index[: max(1, n // 2)], *vol.index[len(vol) // 2 : len(vol) // 2 + n]]
    intermittent = zeros[(zeros > 0.3) & (zeros < 0.9)].index
    order += list(intermittent[: max(1, n // 3)])
    for uid in order:
        if uid not in picks:
            picks.append(str(uid))
    return picks[:n]


def _series_plot(
    frame: pd.DataFrame, result: BacktestResult, uid: str, highlight: str, level: int
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan = result.plan
    start = plan.periods[max(0, plan.periods.index(plan.cutoffs[0]) - 4 * plan.season_length)]
    hist = frame[(frame[ID_COL].astype(str) == uid) & (frame[TIME_COL] >= start)]
    rows = result.forecasts[result.forecasts[ID_COL] == uid]
    fig, ax = plt.subplots(figsize=(9, 2.6))
    ax.plot(hist[TIME_COL], hist[TARGET_COL], color="black", lw=1, label="actual")
    for model, part in rows.groupby("model", sort=False):
        for k, (_, win) in enumerate(part.groupby("cutoff")):
            kwargs: dict[str, Any] = {"lw": 1.6 if model == highlight else 0.9}
            if k == 0:
                kwargs["label"] = str(model)
            line = ax.plot(win[TIME_COL], win["yhat"], **kwargs)
            if model == highlight and f"lo_{level}" in win:
                ax.fill_between(
                    win[TIME_COL],
                    win[f"lo_{level}"],
                    win[f"hi_{level}"],
                    color=line[0].get_color(),
                    alpha=0.15,
                )
    for c in plan.cutoffs:
        ax.axvline(c, color="#999", lw=0.6, ls=":")  # type: ignore[arg-type]
    ax.set_title(uid, fontsize=9)
    ax.legend(fontsize=7, ncol=5, loc="upper left")
    ax.tick_params(labelsize=7)
    return _png(fig)


def _bar_plot(metrics: Mapping[str, Mapping[str, Any]], metric: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics)
    vals = [float(metrics[m].get(metric, np.nan)) for m in names]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 0.8))
    ax.barh(names, vals, color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel(metric.upper())
    for i, v in enumerate(vals):
        if math.isfinite(v):
            ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    return _png(fig)


def render_report(
    frame: pd.DataFrame,
    result: BacktestResult,
    *,
    title: str = "Backtest evaluation",
    highlight: str | None = None,
    decision: Mapping[str, Any] | None = None,
    n_series: int = 6,
) -> str:
    """The report as one HTML string."""
    levels = list(result.plan.levels)
    columns = ["mase", "rmsse", "wape", "bias", *[f"coverage_{lv}" for lv in levels], "n_series"]
    overall = result.overall
    highlight = highlight or next(iter(overall))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    plan = result.plan.describe()
    parts.append(
        "<p>Rolling-origin backtest: "
        f"{plan['windows']} windows x h = {plan['horizon']}, origins {', '.join(plan['cutoffs'])}; "
        f"{plan['series']} series, every model on the same rows. Scaled errors use the in-sample "
        f"seasonal-naive error (season {plan['season_length']}) before the first origin.</p>"
    )
    if decision:
        status = "accepted" if decision.get("accepted") else "rejected"
        reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in decision.get("reasons", []))
        parts.append(f"<h2>Gate: <span class='{status}'>{status}</span></h2><ul>{reasons}</ul>")
    parts.append("<h2>Overall</h2>" + metric_table(overall, columns))
    parts.append(f"<img src='{_bar_plot(overall, 'rmsse')}' alt='RMSSE by model'>")
    for cat, metrics in result.metrics.get("by_category", {}).items():
        parts.append(f"<h3>Category {html.escape(cat)}</h3>" + metric_table(metrics, columns))
    windows = result.metrics.get("by_window_rmsse", {})
    if windows:
        models = list(overall)
        head = (
            "<tr><th>origin</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in models) + "</tr>"
        )
        body = "".join(
            f"<tr><td>{html.escape(c)}</td>"
            + "".join(f"<td>{_fmt(v.get(m))}</td>" for m in models)
            + "</tr>"
            for c, v in windows.items()
        )
        parts.append(f"<h2>RMSSE per window</h2><table>{head}{body}</table>")
    if result.notes:
        parts.append(
            "<h2>Notes</h2><ul>"
            + "".join(
                f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                for k, v in result.notes.items()
            )
            + "</ul>"
        )
    picks = _pick_series(result, n_series)
    if picks:
        parts.append(
            f"<h2>Forecasts against actuals</h2><p>{html.escape(highlight)} with its "
            f"{levels[0]}% interval; dotted lines are the origins.</p>"
        )
        for uid in picks:
            parts.append(
                f"<img src='{_series_plot(frame, result, uid, highlight, levels[0])}' alt='{html.escape(uid)}'><br>"
            )
    timing = "".join(f"<li>{html.escape(k)}: {v:.1f} s</li>" for k, v in result.wall_s.items())
    parts.append(f"<h2>Wall time</h2><ul>{timing}</ul></body></html>")
    return "".join(parts)


def write_report(
    path: Path | str, frame: pd.DataFrame, result: BacktestResult, **kwargs: Any
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(frame, result, **kwargs))
    return path
