"""The ML owner's notice when monitoring crosses a threshold: what moved, by how much, what was done.

The message itself is the mail module's ML-owner notice (:func:`salesloop.mail.build_ml_owner_email`:
one template for every notice to the model's owner); this module decides what goes into it: the
breaches first, then the overall accuracy and the drift for context (not every per-store row),
a one-paragraph summary of the decision, and a chart of accuracy by scope and drift against their
thresholds.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING

from salesloop.monitoring import charts
from salesloop.monitoring.monitor import metrics_frame
from salesloop.monitoring.settings import monitoring_settings

if TYPE_CHECKING:
    from salesloop.config import Settings
    from salesloop.monitoring.monitor import MonitorResult


def title_for(result: MonitorResult) -> str:
    what = "retraining triggered" if result.retrain else "threshold crossed"
    return f"model {result.model_version or '?'}: {what}"


def summary_for(result: MonitorResult, retrain_on: tuple[str, ...]) -> str:
    """The decision in words: the first thing the owner wants to know."""
    moved = "; ".join(m.describe() for m in result.breaches[:5])
    more = f" (and {len(result.breaches) - 5} more)" if len(result.breaches) > 5 else ""
    acc = result.windows.get("accuracy")
    window = f" Accuracy window: target dates {acc[0]} to {acc[1]}." if acc else ""
    if result.retrain:
        decision = "Retraining was triggered."
    elif result.reasons and result.suppressed_by:
        decision = f"Retraining thresholds were crossed, but no retraining was started: {result.suppressed_by}."
    else:
        decision = (
            f"No retraining: none of the breaches is of a kind that triggers it "
            f"(retrain_on: {', '.join(retrain_on)})."
        )
    return (
        f"{decision} What moved: {moved}{more}.{window} Drift baseline: {result.baseline_source}."
    )


def chart_png(result: MonitorResult) -> bytes:
    """MASE by scope and drift against their thresholds, side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    charts.draw_scope_bars(left, result.measurements, "mase", limit=14)
    charts.draw_drift_bars(right, result.measurements)
    return charts.to_png(fig, dpi=80)


def build_monitoring_email(result: MonitorResult, settings: Settings) -> EmailMessage:
    """The notice to ``settings.alerts.ml_owner`` for one monitoring run."""
    from salesloop.mail import build_ml_owner_email

    ms = monitoring_settings(settings)
    shown = [
        m
        for m in result.measurements
        if (m.breached and m.group != "decision")
        or (m.scope == "overall" and m.group == "accuracy")
        or m.group in ("feature_drift", "prediction_drift")
    ]
    return build_ml_owner_email(
        settings.alerts.ml_owner,
        title=title_for(result),
        metrics=metrics_frame(result.run_id, result.computed_at, result.model_version, shown),
        sender=settings.alerts.sender,
        env=result.env,
        summary=summary_for(result, ms.retrain_on),
        run_id=result.run_id,
        chart_png=chart_png(result),
        now=result.computed_at,
    )
