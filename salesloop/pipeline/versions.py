"""The ``model_versions`` table, kept by the pipeline: one row per registered version.

The registry (local folder or Vertex Model Registry) is the authority on what a version *is*; the
warehouse row is what monitoring, the report and an analyst query next to forecasts and metrics:
status, reason, backtest metrics, training window, and when it was registered, promoted or last
changed. The register step writes the row; the rollout step moves it to ``champion`` (and the
previous champion to ``retired``) or to ``rolled_back``.

Every write is a MERGE on ``version`` that inserts the full row when it is missing (a version
registered outside the pipeline, e.g. the demo's first ``salesloop train``) and otherwise updates
only the columns the transition owns, so a rollback never clears ``promoted_at`` and a re-run of
a step writes the same row again. A transition and the previous champion's retirement are one
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

from salesloop.warehouse import Merge, Warehouse

Status = Literal["registered", "champion", "rejected", "rolled_back", "retired"]

TABLE = "model_versions"
# Columns a registration owns (everything but the key and the rollout's timestamps).
_REGISTER_COLUMNS = ("status", "model_kind", "train_start", "train_end", "metrics", "reason")
_REASON_CHARS = 4000


def _timestamp(value: Any, default: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(value) if value else pd.Timestamp(default)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _date(value: Any) -> Any:
    return pd.Timestamp(value).date() if value else None


def version_metrics(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The ``metrics`` JSON of a row: the chosen candidate, its backtest next to every model of the
    same windows, per-category numbers, the backtest plan and the gate's checks.

    Shaped so :func:`salesloop.monitoring.versions.backtest_summary` reads the version's own
    metrics (``backtest[candidate]``) and SeasonalNaive's from it.
    """
    metrics = metadata.get("metrics") or {}
    gate = metadata.get("gate") or {}
    out: dict[str, Any] = {
        "candidate": metadata.get("candidate"),
        "backtest": metrics.get("backtest", {}),
        "by_category": metrics.get("by_category", {}),
        "plan": metrics.get("plan", {}),
    }
    if isinstance(gate, Mapping) and gate.get("checks"):
        out["gate"] = gate["checks"]
    return out


def version_row(
    version: str,
    metadata: Mapping[str, Any],
    *,
    status: Status,
    reason: str,
    now: datetime,
    promoted_at: datetime | None = None,
) -> dict[str, Any]:
    """A full ``model_versions`` row from a registry version's metadata."""
    return {
        "version": version,
        "status": status,
        "model_kind": str(metadata.get("model_kind") or "unknown"),
        "train_start": _date(metadata.get("train_start")),
        "train_end": _date(metadata.get("train_end")),
        "metrics": json.dumps(version_metrics(metadata), sort_keys=True, default=str),
        "reason": reason[:_REASON_CHARS],
        "created_at": _timestamp(metadata.get("registered_at"), now),
        "promoted_at": _timestamp(promoted_at, now) if promoted_at else None,
        "updated_at": _timestamp(now, now),
    }


def _merge(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Merge:
    frame = pd.DataFrame(list(rows))
    for col in ("created_at", "promoted_at", "updated_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return Merge(TABLE, frame, update_columns=tuple(columns))


def record_registration(
    warehouse: Warehouse,
    version: str,
    metadata: Mapping[str, Any],
    *,
    accepted: bool,
    reason: str,
    now: datetime | None = None,
) -> None:
    """The row of a newly registered version: ``registered`` (the challenger) or ``rejected``."""
    now = now or datetime.now(UTC)
    status: Status = "registered" if accepted else "rejected"
    row = version_row(version, metadata, status=status, reason=reason, now=now)
    warehouse.apply([_merge([row], (*_REGISTER_COLUMNS, "updated_at"))])


def record_rollout(
    warehouse: Warehouse,
    *,
    version: str,
    metadata: Mapping[str, Any],
    promoted: bool,
    rolled_back: bool,
    reason: str,
    previous_champion: str | None = None,
    previous_metadata: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> list[str]:
    """The outcome of a canary rollout; returns the versions whose rows changed.

    Promoted: the version becomes ``champion`` with ``promoted_at``, the previous champion
    ``retired``. Rolled back: ``rolled_back`` with the failing checks as the reason. Neither (the
    version already was the champion): nothing is written.
    """
    now = now or datetime.now(UTC)
    if promoted:
        rows = [version_row(version, metadata, status="champion", reason=reason, now=now)]
        rows[0]["promoted_at"] = rows[0]["updated_at"]
        mutations = [_merge(rows, ("status", "reason", "promoted_at", "updated_at"))]
        if previous_champion and previous_champion != version:
            retired = version_row(
                previous_champion,
                previous_metadata or {},
                status="retired",
                reason=f"replaced as champion by {version}",
                now=now,
            )
            mutations.append(_merge([retired], ("status", "reason", "updated_at")))
        warehouse.apply(mutations)
        return [version] + ([previous_champion] if len(mutations) > 1 and previous_champion else [])
    if rolled_back:
        row = version_row(version, metadata, status="rolled_back", reason=reason, now=now)
        warehouse.apply([_merge([row], ("status", "reason", "updated_at"))])
        return [version]
    return []
