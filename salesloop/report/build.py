"""The system report: model versions and their backtests, accuracy over time, drift, alerts sent.

One self-contained HTML file (``salesloop report --out FILE``): styles inline, charts inline SVG
rendered by matplotlib, no external requests, so it can be mailed, archived as a CI artifact or
opened from a bucket without a server. A small script in the page marks ``<body>`` with
``data-charts-ready`` (how many charts have a non-zero size) and ``data-errors`` (script errors
seen), so a headless browser can check that the page rendered.

Everything comes from the warehouse (``model_versions``, ``monitoring_metrics``, ``alerts``) plus,
when present, the ``metadata.json`` files of the local model registry folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from salesloop import sql
from salesloop.config import Settings
from salesloop.monitoring import charts
from salesloop.warehouse import Warehouse

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("salesloop.report", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NA = "n/a"
ACCURACY_LINES = ("mase", "wape", "scaled_bias")
COVERAGE_LINES = ("coverage_80", "coverage_95")


@dataclass
class ReportData:
    env: str
    generated_at: datetime
    versions: pd.DataFrame
    history: pd.DataFrame
    alerts: pd.DataFrame
    registry: list[dict[str, Any]] = field(default_factory=list)


def collect(
    warehouse: Warehouse,
    settings: Settings,
    *,
    since: datetime | None = None,
    registry: Path | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Read what the report shows (``since``: oldest monitoring run and alert to include)."""
    start = since or EPOCH
    return ReportData(
        env=settings.env,
        generated_at=now or datetime.now(UTC),
        versions=warehouse.query(sql.load("monitoring_model_versions")),
        history=warehouse.query(sql.load("monitoring_history"), {"since": start}),
        alerts=warehouse.query(sql.load("monitoring_alerts_sent"), {"since": start}),
        registry=registry_metadata(registry) if registry else [],
    )


def registry_metadata(root: Path) -> list[dict[str, Any]]:
    """``metadata.json`` of every model artifact under the registry folder (best effort: a
    registry that is absent or laid out differently just adds nothing)."""
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for path in sorted(root.glob("**/metadata.json"))[:200]:
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            meta.setdefault("version", path.parent.name)
            meta["_path"] = str(path.relative_to(root))
            out.append(meta)
    return out


# -- view models ----------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(x: Any, digits: int = 3) -> str:
    v = _num(x)
    return NA if v is None else f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"


def _day(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NA
    try:
        ts = pd.Timestamp(x)
    except (TypeError, ValueError):
        return str(x)
    return NA if pd.isna(ts) else ts.strftime("%Y-%m-%d")


def _backtest(metrics: Any) -> dict[str, float | None]:
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except ValueError:
            metrics = {}
    if not isinstance(metrics, Mapping):
        metrics = {}
    bt = metrics.get("backtest", metrics)
    bt = bt if isinstance(bt, Mapping) else {}
    return {
        k: _num(bt.get(k))
        for k in ("mase", "rmsse", "seasonal_naive_mase", "relative_mase", "wape", "coverage_80")
    }


def version_rows(data: ReportData) -> list[dict[str, str]]:
    rows = []
    known = set()
    for r in data.versions.to_dict("records"):
        bt = _backtest(r.get("metrics"))
        known.add(str(r["version"]))
        rows.append(
            {
                "version": str(r["version"]),
                "status": str(r["status"]),
                "kind": str(r["model_kind"]),
                "train": f"{_day(r.get('train_start'))} … {_day(r.get('train_end'))}",
                "mase": _fmt(bt["mase"]),
                "rmsse": _fmt(bt["rmsse"]),
                "snaive": _fmt(bt["seasonal_naive_mase"]),
                "created": _day(r.get("created_at")),
                "reason": str(r.get("reason") or ""),
                "source": "warehouse",
            }
        )
    for meta in data.registry:
        v = str(meta.get("version"))
        if v in known:
            continue
        bt = _backtest(meta.get("metrics") or {})
        rows.append(
            {
                "version": v,
                "status": "in registry",
                "kind": str(meta.get("model_kind", "?")),
                "train": f"{_day(meta.get('train_start'))} … {_day(meta.get('train_end'))}",
                "mase": _fmt(bt["mase"]),
                "rmsse": _fmt(bt["rmsse"]),
                "snaive": _fmt(bt["seasonal_naive_mase"]),
                "created": _day(meta.get("created_at")),
                "reason": "",
                "source": str(meta.get("_path", "registry")),
            }
        )
    return rows


def decision_rows(history: pd.DataFrame) -> list[dict[str, str]]:
    """One row per monitoring run: breaches, decision, trigger and outcome."""
    if history.empty:
        return []
    rows = []
    for run_id, g in history.groupby("run_id", sort=False):
        by = {
            (m, s): r for m, s, r in zip(g["metric"], g["scope"], g.to_dict("records"), strict=True)
        }
        judged = g[~g["metric"].str.startswith("retrain_")]
        outcome = g[g["metric"] == "retrain_outcome"]
        decision = by.get(("retrain_decision", "overall"))
        trigger = by.get(("retrain_triggered", "overall"))
        rows.append(
            {
                "run_id": str(run_id),
                "at": pd.Timestamp(g["computed_at"].iloc[0]).strftime("%Y-%m-%d %H:%M"),
                "version": str(g["model_version"].iloc[0] or NA),
                "breaches": str(int(judged["breached"].astype(bool).sum())),
                "decision": "retrain"
                if decision is not None and bool(decision["breached"])
                else "keep",
                "triggered": "yes" if trigger is not None and bool(trigger["breached"]) else "no",
                "outcome": ", ".join(outcome["scope"].astype(str)) or NA,
            }
        )
    return rows[::-1]


def alert_rows(alerts: pd.DataFrame, limit: int = 50) -> list[dict[str, str]]:
    rows = []
    for r in alerts.sort_values("created_at", ascending=False).head(limit).to_dict("records"):
        rows.append(
            {
                "week": _day(r["week_start"]),
                "subject": str(r["subject_id"]),
                "rule": str(r["rule"]),
                "drop": f"{float(r['drop_pct']) * 100:.0f} %"
                if _num(r["drop_pct"]) is not None
                else NA,
                "forecast": _fmt(r["forecast"]),
                "baseline": _fmt(r["baseline"]),
                "status": str(r["status"]),
                "recipients": str(r["recipients"]),
                "version": str(r["model_version"]),
            }
        )
    return rows


# -- charts ---------------------------------------------------------------------------------------
def chart_svgs(data: ReportData) -> dict[str, str]:
    h = data.history
    out: dict[str, str] = {}
    versions = version_rows(data)
    labelled = [v for v in versions if _num(v["mase"]) is not None]
    out["backtests"] = charts.to_svg(
        charts.bars(
            [v["version"] for v in labelled],
            [float(v["mase"]) for v in labelled],
            title="backtest MASE per model version (lower is better)",
            xlabel="MASE",
        )
    )
    out["accuracy"] = charts.to_svg(
        charts.metric_over_time(h, ACCURACY_LINES, title="accuracy of past forecasts (overall)")
    )
    out["coverage"] = charts.to_svg(
        charts.metric_over_time(h, COVERAGE_LINES, title="interval coverage (overall)")
    )
    drift = (
        h[h["scope"].astype(str).str.startswith(("feature:", "prediction:"))] if not h.empty else h
    )
    if not drift.empty:
        drift = drift.assign(metric=drift["scope"], scope="overall")
    out["drift"] = charts.to_svg(
        charts.metric_over_time(
            drift,
            sorted(set(drift["metric"])) if not drift.empty else (),
            title="drift per monitoring run (JS divergence in bits / L-infinity)",
        )
    )
    if not h.empty:
        last = h[h["run_id"] == h["run_id"].iloc[-1]]
        from salesloop.monitoring.monitor import Measurement

        latest = [
            Measurement(
                str(r["metric"]),
                str(r["scope"]),
                _num(r["value"]),
                _num(r["threshold"]),
                breached=bool(r["breached"]),
            )
            for r in last.to_dict("records")
        ]
        fig = charts.scope_bars(latest, "mase")
        out["scopes"] = charts.to_svg(fig)
    a = data.alerts
    if not a.empty:
        weeks = a.groupby(a["week_start"].map(_day)).size().sort_index()
        out["alerts"] = charts.to_svg(
            charts.bars(
                list(weeks.index),
                list(weeks.to_numpy(dtype=float)),
                title="drop alerts per week",
                xlabel="alerts",
            )
        )
    return out


# -- page -----------------------------------------------------------------------------------------
def render_report(data: ReportData) -> str:
    h = data.history
    last_run = None if h.empty else str(h["run_id"].iloc[-1])
    champion = (
        data.versions[data.versions["status"] == "champion"]
        if not data.versions.empty
        else data.versions
    )
    return _ENV.get_template("report.html.j2").render(
        env=data.env,
        generated_at=data.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        champion=", ".join(champion["version"].astype(str)) if not champion.empty else NA,
        last_run=last_run,
        versions=version_rows(data),
        decisions=decision_rows(h),
        alerts=alert_rows(data.alerts),
        n_alerts=len(data.alerts),
        n_sent=int((data.alerts["status"] == "sent").sum()) if not data.alerts.empty else 0,
        charts=chart_svgs(data),
    )


def build_report(
    warehouse: Warehouse,
    settings: Settings,
    *,
    since: datetime | None = None,
    registry: Path | None = None,
    now: datetime | None = None,
) -> str:
    return render_report(collect(warehouse, settings, since=since, registry=registry, now=now))


def write_report(
    warehouse: Warehouse,
    settings: Settings,
    out: Path,
    *,
    since: datetime | None = None,
    registry: Path | None = None,
    now: datetime | None = None,
) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(warehouse, settings, since=since, registry=registry, now=now))
    return out
