"""Small inline PNG charts for alert emails: recent actuals, the forecast and its intervals.

A reader decides in seconds whether a predicted drop is believable; the picture of the last weeks
next to the forecast band does that better than any table. Charts are kept small (about 20 KB,
640 x 240 px) because some mail clients clip large messages and a recipient may get ten at once.

matplotlib is imported on first use and drawn through the object API with the Agg canvas (no
pyplot global state, no display), so the function pays the import only when it actually emails.
"""

from __future__ import annotations

import io

import pandas as pd

HISTORY_DAYS = 56  # eight weeks: enough to see the weekly pattern and the trailing level

_ACTUAL = "#1f2937"
_FORECAST = "#2563eb"
_BASELINE = "#9ca3af"


def render_forecast_chart(
    actuals: pd.Series,
    forecast: pd.DataFrame,
    *,
    title: str,
    baseline_per_day: float | None = None,
) -> bytes:
    """PNG bytes of one subject's chart.

    ``actuals``: units indexed by day (the last :data:`HISTORY_DAYS` are drawn). ``forecast``:
    columns ``target_date``, ``yhat`` and any of ``lo_80``/``hi_80``/``lo_95``/``hi_95`` (the
    wider band is drawn lighter). ``baseline_per_day`` draws the trailing level as a dashed line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    hist = actuals.sort_index()
    if len(hist):
        hist = hist.loc[hist.index > hist.index.max() - pd.Timedelta(days=HISTORY_DAYS)]
        ax.plot(hist.index, hist.to_numpy(dtype=float), color=_ACTUAL, lw=1.2, label="actual")
    fc = forecast.sort_values("target_date")
    x = pd.to_datetime(fc["target_date"])
    for level, alpha in ((95, 0.15), (80, 0.3)):
        lo, hi = f"lo_{level}", f"hi_{level}"
        if lo in fc and hi in fc and fc[[lo, hi]].notna().all().all():
            ax.fill_between(
                x,
                fc[lo].to_numpy(dtype=float),
                fc[hi].to_numpy(dtype=float),
                color=_FORECAST,
                alpha=alpha,
                lw=0,
                label=f"{level}% interval",
            )
    if len(hist) and len(fc):
        # Join the last actual to the first forecast so the eye reads one line.
        ax.plot(
            [hist.index[-1], x.iloc[0]],
            [float(hist.iloc[-1]), float(fc["yhat"].iloc[0])],
            color=_FORECAST,
            lw=1.0,
            ls=":",
        )
    ax.plot(x, fc["yhat"].to_numpy(dtype=float), color=_FORECAST, lw=1.8, label="forecast")
    if baseline_per_day is not None:
        ax.axhline(baseline_per_day, color=_BASELINE, lw=1.0, ls="--", label="trailing 7-day mean")
    ax.set_title(title, fontsize=9, loc="left", pad=14)
    ax.set_ylim(bottom=0)
    locator = AutoDateLocator(minticks=4, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    # No offset text ("2016-May") under the axis: the email states the dates in words.
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=False))
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", color="#e5e7eb", lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    # Legend in one row between the title and the plot, never over the lines.
    ax.legend(
        fontsize=6,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        frameon=False,
        ncols=5,
        borderaxespad=0.1,
        handlelength=1.5,
    )
    # Fixed margins: tight_layout would draw the figure twice for the same result.
    fig.subplots_adjust(left=0.08, right=0.99, top=0.83, bottom=0.11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
