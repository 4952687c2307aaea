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
from salesloop.monitoring.versions import backtest_summary, registry_versions
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
    registry_state: dict[str, Any] = field(default_factory=dict)


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
        registry=registry_versions(registry),
        registry_state=registry_state(registry),
    )


def registry_state(root: Path | None) -> dict[str, Any]:
    """Aliases and the audit trail of a local registry folder (empty when there is none)."""
    if root is None or not (Path(root) / "versions").is_dir():
        return {"aliases": {}, "audit": []}
    from salesloop.registry import LocalRegistry

    reg = LocalRegistry(root)
    return {"aliases": reg.aliases(), "audit": reg.audit()[-30:][::-1]}


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


def version_rows(data: ReportData) -> list[dict[str, str]]:
    """One row per version known to the warehouse or the registry; the warehouse row wins where
    both describe it, the registry fills what it leaves out (backtest, training window)."""
    aliases: dict[str, list[str]] = {}
    for alias, version in (data.registry_state.get("aliases") or {}).items():
        aliases.setdefault(str(version), []).append(str(alias))
    meta_by_version = {str(m.get("version")): m for m in data.registry}
    rows: dict[str, dict[str, str]] = {}
    for r in data.versions.to_dict("records"):
        v = str(r["version"])
        meta = meta_by_version.get(v, {})
        bt = backtest_summary(r.get("metrics"))
        if bt["mase"] is None and meta:
            bt = backtest_summary(meta)
        rows[v] = {
            "version": v,
            "status": str(r["status"]),
            "kind": str(r["model_kind"]),
            "train": f"{_first_day(r.get('train_start'), meta.get('train_start'))} to "
            f"{_first_day(r.get('train_end'), meta.get('train_end'))}",
            "created": _day(r.get("created_at")),
            "reason": str(r.get("reason") or ""),
            "source": "warehouse" + (" + registry" if meta else ""),
            **_bt_cells(bt),
        }
    for v, meta in meta_by_version.items():
        if v in rows:
            continue
        rows[v] = {
            "version": v,
            "status": str(meta.get("status", "registered")),
            "kind": str(meta.get("candidate") or meta.get("model_kind", "?")),
            "train": f"{_day(meta.get('train_start'))} to {_day(meta.get('train_end'))}",
            "created": _day(meta.get("registered_at") or meta.get("created_at")),
            "reason": str(meta.get("reason") or ""),
            "source": "registry",
            **_bt_cells(backtest_summary(meta)),
        }
    for v, row in rows.items():
        row["aliases"] = ", ".join(sorted(aliases.get(v, [])))
    return sorted(rows.values(), key=lambda r: (r["created"], r["version"]))


def _first_day(*values: Any) -> str:
    days = [_day(v) for v in values]
    return next((d for d in days if d != NA), NA)


def _bt_cells(bt: Mapping[str, float | None]) -> dict[str, str]:
    return {
        "mase": _fmt(bt.get("mase")),
        "rmsse": _fmt(bt.get("rmsse")),
        "snaive": _fmt(bt.get("seasonal_naive_mase")),
    }


def audit_rows(data: ReportData) -> list[dict[str, str]]:
    return [
        {
            "at": str(e.get("timestamp", ""))[:19].replace("T", " "),
            "action": str(e.get("action", "")),
            "version": str(e.get("version") or ""),
            "alias": str(e.get("alias") or ""),
            "reason": str(e.get("reason") or "")[:300],
            "actor": str(e.get("actor") or ""),
        }
        for e in data.registry_state.get("audit") or []
    ]


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
        audit=audit_rows(data),
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
