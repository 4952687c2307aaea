"""Alert and monitoring emails: one multipart message per recipient, text and HTML in step.

Why one email per recipient: an owner of a store with twelve falling series wants one message
with the worst first, not twelve. Why a deterministic Message-ID: the function sends after its
warehouse transaction and may be retried or redelivered; the same alerts to the same recipient
give the same Message-ID, so a receiving side (and our local mailbox) can recognise the duplicate.

Both parts carry the same numbers, formatted once here (the templates only lay them out), so a
plain-text reader never sees something different from the HTML one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

import pandas as pd
import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from salesloop.alerts import BASELINE_LAST_YEAR, SCOPE_STORE_CATEGORY, subject_stats
from salesloop.mail.charts import render_forecast_chart

MAX_CHARTS = 10
MESSAGE_ID_DOMAIN = "salesloop"
MINUS = "\u2212"  # typographic minus (U+2212): reads as a drop where "-" can read as a hyphen
BASIS_LAST_YEAR = "same week last year"
BASIS_TRAILING = "trailing 7 days"


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("salesloop.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _render(name: str, **context: Any) -> str:
    return _templates().get_template(name).render(**context)


# -- formatting (shared by both parts) -----------------------------------------------------------
def fmt_units(value: float | None) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def fmt_change(drop: float | None) -> str:
    """A drop of 0.42 is shown as U+2212 42 %; a rise as +N %."""
    if drop is None or pd.isna(drop) or drop in (float("inf"), float("-inf")):
        return "n/a"
    pct = round(drop * 100)
    return f"{MINUS}{pct}%" if pct > 0 else f"+{-pct}%"


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()


def message_id(recipient: str, keys: Iterable[str], *, kind: str = "") -> str:
    """``<sha256(recipient, sorted keys)[:32]@salesloop>``: same alerts, same recipient, same id."""
    parts = [kind] if kind else []
    material = "\n".join([*parts, recipient.strip(), *sorted(keys)])
    return f"<{hashlib.sha256(material.encode('utf-8')).hexdigest()[:32]}@{MESSAGE_ID_DOMAIN}>"


def alert_message_id(recipient: str, alert_keys: Iterable[str]) -> str:
    return message_id(recipient, alert_keys)


def _tag(env: str) -> str:
    return "[salesloop]" if env == "prod" else f"[salesloop {env}]"


def _recipients_of(cell: Any) -> set[str]:
    return {r.strip() for r in str(cell or "").split(",") if r.strip()}


# -- alert emails --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertView:
    """One alert as the templates see it: every number already formatted.

    ``basis``/``drop`` are the baseline the rule compared with and the change against it (the
    alert row's); both baselines are shown besides, as ``subject_stats`` reports them.
    """

    key: str
    scope: str
    label: str
    week: str
    origin: str
    forecast: str
    interval: str
    basis: str
    vs_last_year: bool
    drop: str
    trailing: str | None
    trailing_drop: str | None
    ly_baseline: str | None
    ly_drop: str | None
    ly_note: str | None
    model_version: str
    chart_cid: str | None
    drop_value: float


def _label(row: pd.Series) -> str:
    """``FOODS at CA_1`` for an aggregate, ``FOODS_3_090 at CA_1`` for a series."""
    store = row.get("store_id")
    if row["scope"] == SCOPE_STORE_CATEGORY:
        return f"{row.get('cat_id')} at {store}"
    subject = str(row["subject_id"])
    item = subject.split("/", 1)[1] if "/" in subject else subject
    return f"{item} at {store}" if store else item


def _series_of(row: pd.Series, forecasts: pd.DataFrame) -> pd.DataFrame:
    """Forecast rows of the alert's subject (all series of the aggregate), at its origin."""
    f = forecasts
    if "model_version" in f.columns:
        f = f.loc[f["model_version"].astype(str) == str(row["model_version"])]
    f = f.loc[pd.to_datetime(f["forecast_origin"]) == pd.Timestamp(row["forecast_origin"])]
    if row["scope"] == SCOPE_STORE_CATEGORY:
        return f.loc[(f["store_id"] == row["store_id"]) & (f["cat_id"] == row["cat_id"])]
    return f.loc[f["series_id"] == row["subject_id"]]


def _strict_sum(values: pd.Series) -> float:
    return float(values.astype(float).sum(skipna=False))


def _basis(row: pd.Series) -> str:
    return BASIS_LAST_YEAR if row.get("baseline_kind") == BASELINE_LAST_YEAR else BASIS_TRAILING


def _chart(
    row: pd.Series, history: pd.DataFrame, forecasts: pd.DataFrame, trailing: float | None
) -> bytes | None:
    fc = _series_of(row, forecasts)
    if fc.empty:
        return None
    ids = set(fc["series_id"])
    h = history.loc[history["series_id"].isin(ids)]
    actuals = h.groupby(pd.to_datetime(h["date"]))["units"].sum().astype(float)
    actuals = actuals.loc[actuals.index <= pd.Timestamp(row["forecast_origin"])]
    bounds = [c for c in ("lo_80", "hi_80", "lo_95", "hi_95") if c in fc.columns]
    # skipna=False: a day with a missing bound in any series has no band (a partial sum would
    # understate it).
    daily = (
        fc.assign(target_date=pd.to_datetime(fc["target_date"]))
        .groupby("target_date")[["yhat", *bounds]]
        .agg(_strict_sum)
        .reset_index()
    )
    n_days = max(len(daily), 1)
    return render_forecast_chart(
        actuals,
        daily,
        title=f"{_label(row)}: forecast {fmt_change(float(row['drop_pct']))} vs {_basis(row)}",
        # The dashed line is the trailing level, which the chart's actuals show too (last year's
        # level of an aggregate may cover only some of the charted series).
        baseline_per_day=None if trailing is None else trailing / n_days,
    )


StatsKey = tuple[str, str, date]


def _safe_chart(
    row: pd.Series,
    history: pd.DataFrame | None,
    forecasts: pd.DataFrame | None,
    trailing: float | None,
) -> bytes | None:
    """A chart that cannot be drawn must not stop the email: the numbers are the message."""
    if history is None or forecasts is None or forecasts.empty:
        return None
    try:
        return _chart(row, history, forecasts, trailing)
    except Exception as exc:
        structlog.get_logger("salesloop.mail").warning(
            "mail.chart_failed", alert_key=str(row["alert_key"]), error=type(exc).__name__
        )
        return None


def _stats_for(
    alerts: pd.DataFrame, history: pd.DataFrame | None, forecasts: pd.DataFrame | None
) -> dict[StatsKey, dict[Any, Any]]:
    """Both baselines (the rule compared with one of them) and the week end of the alerts'
    subjects."""
    if forecasts is None or forecasts.empty or history is None:
        return {}
    try:
        f = forecasts
        if "model_version" in f.columns:
            f = f.loc[f["model_version"].astype(str).isin(set(alerts["model_version"].astype(str)))]
        # Only the rows these alerts need (their series; every series of their aggregates): a batch
        # can hold thousands of series and this runs once per recipient.
        is_agg = alerts["scope"] == SCOPE_STORE_CATEGORY
        pairs = set(zip(alerts.loc[is_agg, "store_id"], alerts.loc[is_agg, "cat_id"], strict=True))
        keep = f["series_id"].isin(set(alerts.loc[~is_agg, "subject_id"])) | pd.Series(
            [pair in pairs for pair in zip(f["store_id"], f["cat_id"], strict=True)], index=f.index
        )
        f = f.loc[keep]
        history = history.loc[history["series_id"].isin(set(f["series_id"]))]
        stats = subject_stats(f, history, interval_level=None)
    except (ValueError, KeyError):
        # The email must still go out with the alert row's own numbers.
        return {}
    return {
        (str(r["scope"]), str(r["subject_id"]), _day(r["forecast_origin"])): r
        for r in stats.to_dict("records")
    }


def _views(
    alerts: pd.DataFrame,
    history: pd.DataFrame,
    forecasts: pd.DataFrame,
    *,
    max_charts: int,
) -> tuple[list[AlertView], list[tuple[str, bytes]]]:
    stats = _stats_for(alerts, history, forecasts)
    views: list[AlertView] = []
    charts: list[tuple[str, bytes]] = []
    for _, row in alerts.iterrows():
        origin = _day(row["forecast_origin"])
        week_start = _day(row["week_start"])
        week_end: date | None = None
        last_year = _basis(row) == BASIS_LAST_YEAR
        trailing: float | None = None
        trailing_drop: float | None = None
        ly_baseline: float | None = None
        ly_drop: float | None = None
        ly_note = None
        st = stats.get((str(row["scope"]), str(row["subject_id"]), origin))
        if st is not None:
            week_end = _day(st["week_end"])
            trailing, trailing_drop = float(st["baseline"]), float(st["drop_pct"])
            if bool(st["ly_available"]):
                ly_baseline, ly_drop = float(st["ly_baseline"]), float(st["ly_drop_pct"])
                n_ly, n_all = int(st["ly_n_series"]), int(st["n_series"])
                if n_ly < n_all:
                    ly_note = (
                        f"{n_ly} of {n_all} series sold then; the forecast and interval above "
                        f"are theirs, all {n_all} together forecast "
                        f"{fmt_units(float(st['forecast']))}"
                        if last_year
                        else f"{n_ly} of {n_all} series sold then; compared with their forecast "
                        f"of {fmt_units(float(st['ly_forecast']))}"
                    )
        elif last_year:
            # Without the forecasts only the row's own baseline is known.
            ly_baseline, ly_drop = float(row["baseline"]), float(row["drop_pct"])
        else:
            trailing, trailing_drop = float(row["baseline"]), float(row["drop_pct"])
        cid = None
        if len(charts) < max_charts:
            png = _safe_chart(row, history, forecasts, trailing)
            if png is not None:
                digest = hashlib.sha256(str(row["alert_key"]).encode()).hexdigest()[:16]
                cid = f"chart-{digest}@{MESSAGE_ID_DOMAIN}"
                charts.append((cid, png))
        views.append(
            AlertView(
                key=str(row["alert_key"]),
                scope="store x category" if row["scope"] == SCOPE_STORE_CATEGORY else "series",
                label=_label(row),
                week=(
                    f"{week_start.isoformat()} to {week_end.isoformat()}"
                    if week_end
                    else f"from {week_start.isoformat()}"
                ),
                origin=origin.isoformat(),
                forecast=fmt_units(float(row["forecast"])),
                interval=f"{fmt_units(float(row['lo']))} to {fmt_units(float(row['hi']))}",
                basis=_basis(row),
                vs_last_year=last_year,
                drop=fmt_change(float(row["drop_pct"])),
                trailing=None if trailing is None else fmt_units(trailing),
                trailing_drop=None if trailing_drop is None else fmt_change(trailing_drop),
                ly_baseline=None if ly_baseline is None else fmt_units(ly_baseline),
                ly_drop=None if ly_drop is None else fmt_change(ly_drop),
                ly_note=ly_note,
                model_version=str(row["model_version"]),
                chart_cid=cid,
                drop_value=float(row["drop_pct"]),
            )
        )
    return views, charts


def _new_message(
    *, sender: str, recipient: str, subject: str, msg_id: str, env: str, now: datetime | None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = msg_id
    # RFC 3834: tells auto-responders (out-of-office) not to answer a machine.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Salesloop-Env"] = env
    return msg


def _attach(msg: EmailMessage, text: str, html: str, images: Sequence[tuple[str, bytes]]) -> None:
    """multipart/alternative(text, multipart/related(html, png...)): the layout clients expect
    for inline images referenced by ``cid:``."""
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if images:
        html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
        for cid, png in images:
            html_part.add_related(
                png,
                maintype="image",
                subtype="png",
                cid=f"<{cid}>",
                filename=f"{cid.split('@')[0]}.png",
                disposition="inline",
            )


def build_alert_email(
    recipient: str,
    alerts: pd.DataFrame,
    history: pd.DataFrame,
    forecasts: pd.DataFrame,
    *,
    sender: str,
    env: str,
    interval_level: int | None = None,
    max_charts: int = MAX_CHARTS,
    now: datetime | None = None,
) -> EmailMessage:
    """All of ``recipient``'s alerts in one email, worst drop first.

    Alerts whose ``recipients`` column does not name ``recipient`` are left out (a caller passing
    the whole batch cannot leak a store's alerts to another store's owner). ``history`` and
    ``forecasts`` feed the charts and the baseline the rule did not compare with (the row carries
    only the chosen one); if they lack a subject, its alert is still listed with the numbers of its
    row. Only the first ``max_charts`` alerts get a chart.
    ``interval_level`` only labels the interval (the alert row carries the bounds).
    """
    rows = alerts
    if "recipients" in rows.columns:
        rows = rows.loc[[recipient.strip() in _recipients_of(c) for c in rows["recipients"]]]
    if rows.empty:
        raise ValueError(f"no alert is addressed to {recipient!r}")
    rows = rows.assign(_drop=rows["drop_pct"].astype(float)).sort_values(
        ["_drop", "alert_key"], ascending=[False, True]
    )
    views, charts = _views(rows, history, forecasts, max_charts=max_charts)
    top = views[0]
    count = f"{len(views)} alert{'s' if len(views) != 1 else ''}"
    subject = f"{_tag(env)} Demand drop predicted: {count} ({top.label} {top.drop})"
    msg = _new_message(
        sender=sender,
        recipient=recipient,
        subject=subject,
        msg_id=alert_message_id(recipient, [v.key for v in views]),
        env=env,
        now=now,
    )
    msg["X-Salesloop-Alerts"] = str(len(views))
    context = {
        "alerts": views,
        "count": count,
        "env": env,
        "recipient": recipient,
        "interval_label": f"{interval_level}% interval"
        if interval_level
        else "Prediction interval",
        "charted": sum(1 for v in views if v.chart_cid),
        "max_charts": max_charts,
    }
    _attach(msg, _render("alert.txt.j2", **context), _render("alert.html.j2", **context), charts)
    return msg


# -- ML-owner (monitoring) emails ----------------------------------------------------------------
@dataclass(frozen=True)
class MetricView:
    metric: str
    scope: str
    value: str
    threshold: str
    breached: bool
    window: str
    model_version: str


def _fmt_metric(value: Any) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def build_ml_owner_email(
    recipient: str,
    *,
    title: str,
    metrics: pd.DataFrame,
    sender: str,
    env: str,
    summary: str = "",
    run_id: str | None = None,
    chart_png: bytes | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """A monitoring notice for the ML owner: a table of metric rows, breaches first.

    ``metrics`` has the columns of the ``monitoring_metrics`` table (``metric``, ``scope``,
    ``value``, ``threshold``, ``breached``; ``window_start``, ``window_end`` and
    ``model_version`` are shown when present). The Message-ID depends on the recipient, the run
    and the breached metric/scope pairs, so re-sending a run's notice is recognisable.
    """
    m = metrics.copy()
    if m.empty:
        raise ValueError("an ML-owner notice needs at least one metric row")
    m["breached"] = m["breached"].astype(bool)
    m = m.sort_values(["breached", "metric", "scope"], ascending=[False, True, True])
    rows = []
    for _, r in m.iterrows():
        ws, we = r.get("window_start"), r.get("window_end")
        window = (
            f"{_day(ws).isoformat()} to {_day(we).isoformat()}"
            if ws is not None and we is not None and not pd.isna(ws) and not pd.isna(we)
            else ""
        )
        mv = r.get("model_version")
        rows.append(
            MetricView(
                metric=str(r["metric"]),
                scope=str(r["scope"]),
                value=_fmt_metric(r["value"]),
                threshold=_fmt_metric(r["threshold"]),
                breached=bool(r["breached"]),
                window=window,
                model_version="" if mv is None or pd.isna(mv) else str(mv),
            )
        )
    breached = [r for r in rows if r.breached]
    subject = f"{_tag(env)} Monitoring: {title}" + (
        f" ({len(breached)} breached)" if breached else ""
    )
    keys = [f"{r.metric}|{r.scope}" for r in (breached or rows)]
    msg = _new_message(
        sender=sender,
        recipient=recipient,
        subject=subject,
        msg_id=message_id(recipient, [run_id or title, *keys], kind="ml_owner"),
        env=env,
        now=now,
    )
    cid = f"monitoring-{hashlib.sha256((run_id or title).encode()).hexdigest()[:16]}@{MESSAGE_ID_DOMAIN}"
    context = {
        "title": title,
        "summary": summary,
        "rows": rows,
        "breached": len(breached),
        "env": env,
        "run_id": run_id,
        "chart_cid": cid if chart_png else None,
    }
    _attach(
        msg,
        _render("ml_owner.txt.j2", **context),
        _render("ml_owner.html.j2", **context),
        [(cid, chart_png)] if chart_png else [],
    )
    return msg


def inline_images(msg: EmailMessage) -> dict[str, bytes]:
    """``cid`` (without brackets) → PNG bytes of a message built here; for tests and tools."""
    out: dict[str, bytes] = {}
    for part in msg.walk():
        if part.get_content_type() == "image/png" and part["Content-ID"]:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                out[str(part["Content-ID"]).strip("<>")] = payload
    return out


__all__ = [
    "MAX_CHARTS",
    "AlertView",
    "alert_message_id",
    "build_alert_email",
    "build_ml_owner_email",
    "fmt_change",
    "fmt_units",
    "inline_images",
    "message_id",
]
