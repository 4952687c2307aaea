"""The monitoring job: is the serving model still fit for the data it sees, and if not, act.

One run (``salesloop monitor``; a Cloud Scheduler job in the cloud) measures, for the model version
that serves now:

* **feature drift** of the model inputs (``units``, ``sell_price``, ``snap``) in the recent window
  against a baseline: an explicit frame, else the version's training window from ``model_versions``,
  else the ``baseline_days`` before the recent window;
* **prediction drift**: the version's recent point forecasts against its forecasts of the window
  before;
* **accuracy** of its past forecasts against the actuals that have arrived since, computed in the
  warehouse (``sql/monitoring_accuracy.sql``), overall, per category and per store.

Every measurement becomes one ``monitoring_metrics`` row with its threshold and ``breached`` flag;
missing data is recorded with a NULL value and is never a breach (an empty window is not evidence
that the model degraded). Breaches of the kinds listed in ``retrain_on`` decide a retrain; the ML
owner is emailed; the optional ``on_retrain`` callback (the training pipeline) runs; its outcome
is recorded too. A run is keyed by its ``run_id`` (derived from ``now``), so running it again for
the same instant changes nothing and sends nothing twice.

Rows per run (``metric`` / ``scope``): ``mase, wape, bias, scaled_bias, coverage_80, coverage_95,
n_forecasts`` per ``overall | cat:X | store:Y``; ``mase_vs_backtest`` / overall;
``js_divergence`` or ``linf_distance`` / ``feature:F``; ``js_divergence`` / ``prediction:yhat``;
and three decision rows whose ``breached`` means "yes": ``retrain_decision`` (a retraining
threshold was crossed), ``retrain_triggered`` (retraining was asked for; the cooldown reads these)
and, after the hook ran, ``retrain_outcome`` / ``<status>:<version>`` (value 1 when promoted).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import structlog

from salesloop import sql
from salesloop.config import Settings
from salesloop.monitoring.drift import FeatureDrift, categorical_drift, numeric_drift
from salesloop.monitoring.settings import FEATURES, MonitoringSettings, monitoring_settings
from salesloop.monitoring.versions import backtest_summary, registry_metadata
from salesloop.warehouse import Merge, Warehouse

log = structlog.get_logger("monitoring")

Group = Literal["accuracy", "feature_drift", "prediction_drift", "decision"]
Direction = Literal["max", "min", "abs_max"]
RetrainStatus = Literal["promoted", "rejected", "rolled_back", "failed", "started"]

ACCURACY_METRICS: tuple[str, ...] = (
    "mase",
    "wape",
    "bias",
    "scaled_bias",
    "coverage_80",
    "coverage_95",
)
PREDICTION_SCOPE = "prediction:yhat"


@dataclass(frozen=True)
class Measurement:
    """One row of ``monitoring_metrics``, with why it was (not) judged."""

    metric: str
    scope: str
    value: float | None
    threshold: float | None = None
    breached: bool = False
    group: Group = "accuracy"
    direction: Direction = "max"
    window_start: date | None = None
    window_end: date | None = None
    note: str = ""

    def describe(self) -> str:
        """``mase [store:CA_1] = 1.84 > max 1.5``: what moved and by how much (emails, logs)."""
        where = f"{self.metric} [{self.scope}]"
        if self.value is None:
            return f"{where}: no data"
        text = f"{where} = {_fmt(self.value)}"
        if self.threshold is None:
            return text
        if self.note:
            return f"{text} ({self.note})"
        over = self.breached
        if self.direction == "min":
            return f"{text} {'<' if over else '≥'} min {_fmt(self.threshold)}"
        prefix = ", |value|" if self.direction == "abs_max" else ""
        return f"{text}{prefix} {'>' if over else '≤'} max {_fmt(self.threshold)}"


@dataclass(frozen=True)
class RetrainOutcome:
    """What the retraining callback (the training pipeline) reports back."""

    status: RetrainStatus
    version: str | None = None
    reason: str = ""
    model_kind: str = "unknown"
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class MonitorResult:
    run_id: str
    computed_at: datetime
    env: str
    model_version: str | None
    windows: dict[str, tuple[date, date]]
    baseline_source: str
    measurements: list[Measurement]
    drifts: list[FeatureDrift]
    accuracy: pd.DataFrame
    backtest_mase: float | None
    retrain: bool
    reasons: list[str]
    suppressed_by: str | None = None
    outcome: RetrainOutcome | None = None
    emails: list[str] = field(default_factory=list)

    @property
    def breaches(self) -> list[Measurement]:
        return [m for m in self.measurements if m.breached and m.group != "decision"]

    def measurement(self, metric: str, scope: str = "overall") -> Measurement | None:
        for m in self.measurements:
            if m.metric == metric and m.scope == scope:
                return m
        return None

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (CLI output, demo-summary)."""
        overall = {
            m.metric: m.value
            for m in self.measurements
            if m.scope == "overall" and m.group == "accuracy"
        }
        return {
            "run_id": self.run_id,
            "computed_at": self.computed_at.isoformat(),
            "env": self.env,
            "model_version": self.model_version,
            "windows": {k: [str(a), str(b)] for k, (a, b) in self.windows.items()},
            "baseline": self.baseline_source,
            "accuracy": overall,
            "backtest_mase": self.backtest_mase,
            "drift": {f"{d.feature}": {"metric": d.metric, "value": d.value} for d in self.drifts},
            "breaches": [m.describe() for m in self.breaches],
            "retrain": self.retrain,
            "reasons": self.reasons,
            "suppressed_by": self.suppressed_by,
            "outcome": None
            if self.outcome is None
            else {
                "status": self.outcome.status,
                "version": self.outcome.version,
                "reason": self.outcome.reason,
            },
            "emails": self.emails,
        }


# -- judging (pure) -------------------------------------------------------------------------------
def judge(
    metric: str,
    scope: str,
    value: float | None,
    threshold: float | None,
    *,
    direction: Direction = "max",
    group: Group = "accuracy",
    enough: bool = True,
    why_not_enough: str = "too few samples",
    window: tuple[date, date] | None = None,
) -> Measurement:
    """A measurement with its verdict. No data, no threshold or too small a sample: recorded,
    never a breach."""
    start, end = window or (None, None)
    v = None if value is None or not math.isfinite(float(value)) else float(value)
    base = Measurement(
        metric,
        scope,
        v,
        threshold,
        group=group,
        direction=direction,
        window_start=start,
        window_end=end,
    )
    if v is None:
        return dataclasses.replace(base, note="no data")
    if threshold is None:
        return dataclasses.replace(base, note="not judged (no threshold)")
    if not enough:
        return dataclasses.replace(base, note=why_not_enough)
    if direction == "max":
        breached = v > threshold
    elif direction == "min":
        breached = v < threshold
    else:
        breached = abs(v) > threshold
    return dataclasses.replace(base, breached=breached)


def accuracy_measurements(
    accuracy: pd.DataFrame,
    ms: MonitoringSettings,
    *,
    levels: Sequence[int] = (80, 95),
    backtest_mase: float | None = None,
    window: tuple[date, date] | None = None,
) -> list[Measurement]:
    """Measurements from the rows of ``monitoring_accuracy.sql`` (one per scope)."""
    thresholds: dict[str, tuple[float | None, Direction]] = {
        "mase": (ms.mase_max, "max"),
        "wape": (ms.wape_max, "max"),
        "bias": (ms.abs_bias_max, "abs_max"),
        "scaled_bias": (ms.abs_scaled_bias_max, "abs_max"),
    }
    for level in (80, 95):
        floor = None
        if ms.coverage_tolerance is not None and level in levels:
            floor = round(level / 100 - ms.coverage_tolerance, 6)
        thresholds[f"coverage_{level}"] = (floor, "min")
    rows = {str(r["scope"]): r for r in accuracy.to_dict("records")}
    rows.setdefault("overall", {"scope": "overall", "n_forecasts": 0, "n_series_mase": 0})
    out: list[Measurement] = []
    for scope in sorted(rows, key=lambda s: (s != "overall", s)):
        r = rows[scope]
        n = int(_num(r.get("n_forecasts")) or 0)
        judged = scope == "overall" or ms.judge_scopes
        enough = n >= ms.min_forecasts
        out.append(judge("n_forecasts", scope, n, None, window=window))
        for metric in ACCURACY_METRICS:
            threshold, direction = thresholds[metric]
            out.append(
                judge(
                    metric,
                    scope,
                    _num(r.get(metric)),
                    threshold if judged else None,
                    direction=direction,
                    enough=enough,
                    why_not_enough=f"{n} forecasts < min_forecasts {ms.min_forecasts}",
                    window=window,
                )
            )
        if scope == "overall":
            mase = _num(r.get("mase"))
            ratio = mase / backtest_mase if mase is not None and backtest_mase else None
            m = judge(
                "mase_vs_backtest",
                scope,
                ratio,
                ms.mase_degradation_ratio,
                enough=enough,
                why_not_enough=f"{n} forecasts < min_forecasts {ms.min_forecasts}",
                window=window,
            )
            if backtest_mase is None:
                m = dataclasses.replace(m, note="no backtest MASE for this version")
            out.append(m)
    return out


def drift_measurement(
    d: FeatureDrift,
    threshold: float | None,
    ms: MonitoringSettings,
    *,
    scope: str,
    group: Group,
    window: tuple[date, date] | None,
) -> Measurement:
    n = min(d.baseline_n, d.current_n)
    return judge(
        d.metric,
        scope,
        d.value,
        threshold,
        group=group,
        enough=n >= ms.min_drift_samples,
        why_not_enough=f"{int(n)} values < min_drift_samples {ms.min_drift_samples}",
        window=window,
    )


def decide(
    measurements: Sequence[Measurement], retrain_on: Sequence[str]
) -> tuple[bool, list[str]]:
    """Retrain when a breach of a kind listed in ``retrain_on`` happened; the reasons say which."""
    reasons = [m.describe() for m in measurements if m.breached and m.group in retrain_on]
    return bool(reasons), reasons


# -- the run --------------------------------------------------------------------------------------
def run_id_for(now: datetime) -> str:
    return f"monitor-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def run_monitor(
    warehouse: Warehouse,
    settings: Settings,
    *,
    now: datetime | date,
    baseline: pd.DataFrame | None = None,
    model_version: str | None = None,
    on_retrain: Callable[[MonitorResult], RetrainOutcome] | None = None,
    send_email: Callable[[EmailMessage], None] | None = None,
    run_id: str | None = None,
    registry: Path | None = None,
) -> MonitorResult:
    """Measure, record, decide, notify, and (when decided) call ``on_retrain``; see module doc.

    ``now`` is the instant the run stands at: windows end the day before ``now``'s date (that
    day's actuals may still be arriving). ``baseline``: raw rows with columns among ``units``,
    ``sell_price``, ``snap``, or weighted rows ``feature, num_value, cat_value, n``.
    ``registry``: a local registry folder, read for the version's training window and backtest
    when the ``model_versions`` table does not have them.
    """
    ms = monitoring_settings(settings)
    now_dt = _as_datetime(now)
    today = now_dt.date()
    rid = run_id or run_id_for(now_dt)
    version = model_version or _current_version(warehouse)
    info = _version_info(warehouse, version, registry)
    backtest_mase: float | None = info.get("backtest_mase")

    last = today - timedelta(days=1)
    acc_window = (today - timedelta(days=ms.accuracy_window_days), last)
    recent = (today - timedelta(days=ms.drift_window_days), last)
    reference = (
        recent[0] - timedelta(days=ms.prediction_reference_days),
        recent[0] - timedelta(days=1),
    )
    windows = {"accuracy": acc_window, "recent": recent, "prediction_reference": reference}

    # -- feature drift --------------------------------------------------------------------------
    current_values = warehouse.query(
        sql.load("monitoring_feature_values"), {"start_date": recent[0], "end_date": recent[1]}
    )
    if baseline is not None:
        baseline_values = _weighted_baseline(baseline)
        baseline_source = f"explicit frame ({len(baseline)} rows)"
    else:
        bwin, baseline_source = _baseline_window(info, recent[0], ms)
        windows["baseline"] = bwin
        baseline_values = warehouse.query(
            sql.load("monitoring_feature_values"), {"start_date": bwin[0], "end_date": bwin[1]}
        )
    drifts: list[FeatureDrift] = []
    measurements: list[Measurement] = []
    for feature, kind in FEATURES.items():
        b = baseline_values[baseline_values["feature"] == feature]
        c = current_values[current_values["feature"] == feature]
        if kind == "numeric":
            d = numeric_drift(
                feature,
                b["num_value"].to_numpy(dtype=float),
                c["num_value"].to_numpy(dtype=float),
                bins=ms.bins,
                epsilon=ms.smoothing,
                baseline_weights=b["n"].to_numpy(dtype=float),
                current_weights=c["n"].to_numpy(dtype=float),
            )
        else:
            d = categorical_drift(
                feature,
                b["cat_value"].tolist(),
                c["cat_value"].tolist(),
                baseline_weights=b["n"].to_numpy(dtype=float),
                current_weights=c["n"].to_numpy(dtype=float),
            )
        drifts.append(d)
        measurements.append(
            drift_measurement(
                d,
                ms.drift_threshold(feature, kind),
                ms,
                scope=f"feature:{feature}",
                group="feature_drift",
                window=recent,
            )
        )

    # -- prediction drift -----------------------------------------------------------------------
    if version is not None:
        ref = warehouse.query(
            sql.load("monitoring_prediction_values"),
            {"model_version": version, "start_date": reference[0], "end_date": reference[1]},
        )
        cur = warehouse.query(
            sql.load("monitoring_prediction_values"),
            {"model_version": version, "start_date": recent[0], "end_date": recent[1]},
        )
        pd_drift = numeric_drift(
            "yhat",
            ref["num_value"].to_numpy(dtype=float),
            cur["num_value"].to_numpy(dtype=float),
            bins=ms.bins,
            epsilon=ms.smoothing,
            baseline_weights=ref["n"].to_numpy(dtype=float),
            current_weights=cur["n"].to_numpy(dtype=float),
        )
    else:
        pd_drift = FeatureDrift("yhat", "numeric", "js_divergence", None, 0.0, 0.0)
    drifts.append(pd_drift)
    measurements.append(
        drift_measurement(
            pd_drift,
            ms.prediction_js_max,
            ms,
            scope=PREDICTION_SCOPE,
            group="prediction_drift",
            window=recent,
        )
    )

    # -- accuracy (in the warehouse) ------------------------------------------------------------
    accuracy = pd.DataFrame()
    if version is not None:
        accuracy = warehouse.query(
            sql.load("monitoring_accuracy"),
            {
                "model_version": version,
                "window_start": acc_window[0],
                "window_end": acc_window[1],
                "season_days": _season_days(settings),
                "scale_days": ms.mase_scale_days,
            },
        )
    measurements.extend(
        accuracy_measurements(
            accuracy,
            ms,
            levels=settings.forecast.interval_levels,
            backtest_mase=backtest_mase,
            window=acc_window,
        )
    )

    # -- decision -------------------------------------------------------------------------------
    wanted, reasons = decide(measurements, ms.retrain_on)
    suppressed_by: str | None = None
    already = not warehouse.query(sql.load("monitoring_run"), {"run_id": rid}).empty
    if already:
        suppressed_by = f"run {rid} was already recorded"
    elif wanted and ms.retrain_cooldown_days > 0:
        since = now_dt - timedelta(days=ms.retrain_cooldown_days)
        recent_triggers = warehouse.query(sql.load("monitoring_last_retrain"), {"since": since})
        recent_triggers = recent_triggers[recent_triggers["run_id"] != rid]
        if not recent_triggers.empty:
            t = recent_triggers.iloc[0]
            suppressed_by = (
                f"cooldown: retraining was triggered by {t['run_id']} at "
                f"{pd.Timestamp(t['computed_at']).isoformat()} (retrain_cooldown_days "
                f"{ms.retrain_cooldown_days})"
            )
    retrain = wanted and suppressed_by is None
    measurements.append(
        Measurement(
            "retrain_decision",
            "overall",
            1.0 if wanted else 0.0,
            None,
            breached=wanted,
            group="decision",
            note="; ".join(reasons) or "no retraining threshold crossed",
        )
    )
    measurements.append(
        Measurement(
            "retrain_triggered",
            "overall",
            1.0 if retrain else 0.0,
            None,
            breached=retrain,
            group="decision",
            note=suppressed_by or "",
        )
    )
    result = MonitorResult(
        run_id=rid,
        computed_at=now_dt,
        env=settings.env,
        model_version=version,
        windows=windows,
        baseline_source=baseline_source,
        measurements=measurements,
        drifts=drifts,
        accuracy=accuracy,
        backtest_mase=backtest_mase,
        retrain=retrain,
        reasons=reasons,
        suppressed_by=suppressed_by,
    )
    if already:
        log.info("monitor_already_ran", run_id=rid)
        return result

    warehouse.apply(
        [Merge("monitoring_metrics", metrics_frame(rid, now_dt, version, measurements))]
    )
    log.info(
        "monitor_recorded",
        run_id=rid,
        model_version=version,
        breaches=len(result.breaches),
        retrain=retrain,
        suppressed_by=suppressed_by,
    )

    # -- notify and act -------------------------------------------------------------------------
    if result.breaches and ms.notify and send_email is not None:
        from salesloop.monitoring.notify import build_monitoring_email

        msg = build_monitoring_email(result, settings)
        send_email(msg)
        result.emails.append(str(msg["Message-ID"]))
        log.info("monitor_notified", run_id=rid, to=settings.alerts.ml_owner)
    if retrain and on_retrain is not None:
        try:
            result.outcome = on_retrain(result)
        except Exception as exc:  # the pipeline failed: record it, the champion keeps serving
            log.exception("retrain_failed", run_id=rid)
            result.outcome = RetrainOutcome("failed", reason=f"{type(exc).__name__}: {exc}"[:500])
        _record_outcome(warehouse, result, now_dt)
    return result


# -- rows ------------------------------------------------------------------------------------------
def metrics_frame(
    run_id: str,
    computed_at: datetime,
    model_version: str | None,
    measurements: Sequence[Measurement],
) -> pd.DataFrame:
    """The ``monitoring_metrics`` rows of a run."""
    return pd.DataFrame(
        [
            {
                "run_id": run_id,
                "computed_at": computed_at,
                "model_version": model_version,
                "metric": m.metric,
                "scope": m.scope,
                "value": m.value,
                "threshold": m.threshold,
                "breached": bool(m.breached),
                "window_start": m.window_start,
                "window_end": m.window_end,
            }
            for m in measurements
        ],
        columns=[
            "run_id",
            "computed_at",
            "model_version",
            "metric",
            "scope",
            "value",
            "threshold",
            "breached",
            "window_start",
            "window_end",
        ],
    )


def _record_outcome(warehouse: Warehouse, result: MonitorResult, now: datetime) -> None:
    """The pipeline's answer: a metrics row always; a model_versions row only if the registry did
    not write one (insert-if-absent keeps the registry's own row authoritative)."""
    o = result.outcome
    assert o is not None
    row = Measurement(
        "retrain_outcome",
        f"{o.status}:{o.version or '-'}",
        1.0 if o.status == "promoted" else 0.0,
        group="decision",
        note=o.reason,
    )
    result.measurements.append(row)
    mutations: list[Any] = [
        Merge(
            "monitoring_metrics",
            metrics_frame(result.run_id, result.computed_at, result.model_version, [row]),
        )
    ]
    if o.version:
        status = {"promoted": "champion", "rejected": "rejected", "rolled_back": "rolled_back"}
        mutations.append(
            Merge(
                "model_versions",
                pd.DataFrame(
                    [
                        {
                            "version": o.version,
                            "status": status.get(o.status, "registered"),
                            "model_kind": o.model_kind,
                            "train_start": None,
                            "train_end": None,
                            "metrics": json.dumps(dict(o.metrics), default=str),
                            "reason": _retrain_reason(result, o)[:2000],
                            "created_at": now,
                        }
                    ]
                ),
            )
        )
    warehouse.apply(mutations)
    log.info("retrain_outcome", run_id=result.run_id, status=o.status, version=o.version)


# -- helpers ---------------------------------------------------------------------------------------
def _retrain_reason(result: MonitorResult, outcome: RetrainOutcome) -> str:
    shown = "; ".join(result.reasons[:3])
    more = f" (+{len(result.reasons) - 3} more)" if len(result.reasons) > 3 else ""
    tail = f" | pipeline: {outcome.reason}" if outcome.reason else ""
    return f"retrained by monitoring run {result.run_id}: {shown}{more}{tail}"


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:,.0f}"


def _num(x: Any) -> float | None:
    if x is None or x is pd.NA:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _as_datetime(now: datetime | date) -> datetime:
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _season_days(settings: Settings) -> int:
    per = {"D": 1, "W": 7}.get(settings.forecast.freq)
    if per is None:
        # Monthly seasons are not a whole number of days; the SQL scale needs a day lag.
        raise ValueError(
            f"MASE in the warehouse supports freq D and W, not {settings.forecast.freq}"
        )
    return settings.forecast.season_length * per


def _current_version(warehouse: Warehouse) -> str | None:
    cur = warehouse.query(sql.load("monitoring_current_version"))
    return None if cur.empty else str(cur["model_version"].iloc[0])


def _version_info(
    warehouse: Warehouse, version: str | None, registry: Path | None
) -> dict[str, Any]:
    """Training window and backtest MASE of a version: the ``model_versions`` row, completed
    from the registry's metadata where the row is missing or silent."""
    if version is None:
        return {}
    rows = warehouse.query(sql.load("monitoring_model_version"), {"version": version})
    info: dict[str, Any] = {} if rows.empty else dict(rows.iloc[0])
    info["backtest_mase"] = backtest_summary(info.get("metrics"))["mase"]
    meta = registry_metadata(registry, version)
    if meta:
        for key in ("train_start", "train_end"):
            if _date(info.get(key)) is None:
                info[key] = meta.get(key)
        if info["backtest_mase"] is None:
            info["backtest_mase"] = backtest_summary(meta)["mase"]
    info["version"] = version
    return info


def _baseline_window(
    info: Mapping[str, Any], recent_start: date, ms: MonitoringSettings
) -> tuple[tuple[date, date], str]:
    start, end = _date(info.get("train_start")), _date(info.get("train_end"))
    if end is not None:
        end = min(end, recent_start - timedelta(days=1))
        # The most recent baseline_days of it: bounded cost on years of M5-sized history, and
        # the part of training that reflects the current regime.
        floor = end - timedelta(days=ms.baseline_days - 1)
        start = max(start, floor) if start else floor
        if start <= end:
            return (start, end), f"training window of {info.get('version')}"
    fallback = (recent_start - timedelta(days=ms.baseline_days), recent_start - timedelta(days=1))
    return fallback, f"the {ms.baseline_days} days before the recent window"


def _date(x: Any) -> date | None:
    if x is None or x is pd.NaT or (isinstance(x, float) and math.isnan(x)):
        return None
    try:
        ts = pd.Timestamp(x)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(ts) else ts.date()


def _weighted_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """An explicit baseline in the weighted form of ``monitoring_feature_values.sql``."""
    if {"feature", "n"} <= set(frame.columns):
        return frame.reindex(columns=["feature", "num_value", "cat_value", "n"])
    parts = []
    for feature, kind in FEATURES.items():
        if feature not in frame.columns:
            continue
        col = frame[feature]
        if kind == "numeric":
            parts.append(
                pd.DataFrame(
                    {
                        "feature": feature,
                        "num_value": pd.to_numeric(col, errors="coerce").to_numpy(dtype=float),
                        "cat_value": None,
                        "n": 1.0,
                    }
                )
            )
        else:
            labels = col.map(lambda v: None if pd.isna(v) else str(bool(v)).lower())
            parts.append(
                pd.DataFrame(
                    {"feature": feature, "num_value": np.nan, "cat_value": labels, "n": 1.0}
                )
            )
    if not parts:
        raise ValueError(f"baseline frame has none of the features {sorted(FEATURES)}")
    return pd.concat(parts, ignore_index=True)
