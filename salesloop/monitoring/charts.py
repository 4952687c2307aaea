"""Charts of monitoring results, shared by the ML-owner email (PNG) and the system report (SVG).

Explicit ``Figure`` objects, never pyplot: no global state, no GUI backend (the monitor runs
headless), and concurrent renders stay independent.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from salesloop.monitoring.monitor import Measurement

BREACH = "#c0392b"
OK = "#2e86c1"
MUTED = "#95a5a6"


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def to_svg(fig: Figure) -> str:
    """Inline SVG without the XML prolog (it is embedded in an HTML page). Text stays text
    (``svg.fonttype: none``): smaller, searchable, and no glyph ids shared between charts."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def scope_bars(
    measurements: Sequence[Measurement], metric: str = "mase", *, limit: int = 20
) -> Figure:
    """One bar per scope (overall, categories, stores) with the threshold: where accuracy broke."""
    n = len([m for m in measurements if m.metric == metric])
    fig = Figure(figsize=(7, 0.35 * max(min(n, limit), 3) + 1.0))
    draw_scope_bars(fig.add_subplot(), measurements, metric, limit=limit)
    return fig


def draw_scope_bars(
    ax: Axes, measurements: Sequence[Measurement], metric: str = "mase", *, limit: int = 20
) -> None:
    rows = [m for m in measurements if m.metric == metric and m.value is not None]
    rows = sorted(rows, key=lambda m: (m.scope != "overall", -(m.value or 0.0)))[:limit]
    if not rows:
        ax.text(0.5, 0.5, f"no {metric} measured yet", ha="center", va="center")
        ax.set_axis_off()
        return
    labels = [m.scope for m in rows][::-1]
    values = [float(m.value or 0.0) for m in rows][::-1]
    colors = [BREACH if m.breached else (OK if m.threshold is not None else MUTED) for m in rows][
        ::-1
    ]
    ax.barh(labels, values, color=colors)
    thresholds = {m.threshold for m in rows if m.threshold is not None}
    for t in thresholds:
        ax.axvline(t, color=BREACH, linestyle="--", linewidth=1)
    ax.set_xlabel(f"{metric} (dashed: threshold; red: breached; grey: not judged)")
    ax.set_title(f"{metric} by scope")


def drift_bars(measurements: Sequence[Measurement]) -> Figure:
    """Feature and prediction drift against their thresholds."""
    n = len([m for m in measurements if m.group in ("feature_drift", "prediction_drift")])
    fig = Figure(figsize=(7, 0.45 * max(n, 3) + 1.0))
    draw_drift_bars(fig.add_subplot(), measurements)
    return fig


def draw_drift_bars(ax: Axes, measurements: Sequence[Measurement]) -> None:
    rows = [m for m in measurements if m.group in ("feature_drift", "prediction_drift")]
    if not rows:
        ax.text(0.5, 0.5, "no drift measured", ha="center", va="center")
        ax.set_axis_off()
        return
    labels = [f"{m.scope} ({m.metric})" for m in rows][::-1]
    values = [float(m.value or 0.0) for m in rows][::-1]
    colors = [BREACH if m.breached else (OK if m.value is not None else MUTED) for m in rows][::-1]
    ax.barh(labels, values, color=colors)
    for i, m in enumerate(rows[::-1]):
        if m.threshold is not None:
            ax.plot([m.threshold] * 2, [i - 0.45, i + 0.45], color="#222", linewidth=2, zorder=3)
    ax.set_xlabel("distance (JS in bits, L-inf); black tick: threshold")
    ax.set_title("drift")


def metric_over_time(
    history: pd.DataFrame,
    metrics: Sequence[str] = ("mase",),
    *,
    scope: str = "overall",
    title: str | None = None,
) -> Figure:
    """Values of ``metrics`` (one line each) per monitoring run, with thresholds dashed."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    h = history[(history["scope"] == scope) & history["metric"].isin(list(metrics))].copy()
    h = h.dropna(subset=["value"])
    if h.empty:
        ax.text(0.5, 0.5, "no measurements yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    h["computed_at"] = pd.to_datetime(h["computed_at"], utc=True)
    for metric, g in h.groupby("metric", sort=True):
        g = g.sort_values("computed_at")
        (line,) = ax.plot(g["computed_at"], g["value"], marker="o", label=str(metric))
        t = g["threshold"].dropna()
        if not t.empty:
            ax.axhline(float(t.iloc[-1]), color=line.get_color(), linestyle="--", linewidth=1)
        bad = g[g["breached"].astype(bool)]
        if not bad.empty:
            ax.scatter(bad["computed_at"], bad["value"], color="black", marker="x", zorder=3, s=50)
    ax.set_title(title or f"{', '.join(metrics)} ({scope}) per monitoring run")
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    return fig


def bars(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str = "") -> Figure:
    """A plain horizontal bar chart (report: backtests per version, alerts per week)."""
    fig = Figure(figsize=(7, 0.35 * max(len(labels), 3) + 1.0))
    ax = fig.add_subplot()
    if not labels:
        ax.text(0.5, 0.5, "nothing to show yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    ax.barh(list(labels)[::-1], list(values)[::-1], color=OK)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return fig
