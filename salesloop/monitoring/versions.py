"""What monitoring and the report know about a model version: its training window and backtest.

Two sources describe a version, in two shapes, and both are read here so the callers need not care:

* the ``model_versions`` table: ``train_start``, ``train_end`` and ``metrics`` JSON, e.g.
  ``{"backtest": {"mase": .., "rmsse": .., "seasonal_naive_mase": ..}}``
  (:func:`salesloop.model.metrics.backtest_metrics`) or a flat ``{"mase": ..}``;
* the local registry's ``versions/<v>/metadata.json`` written by the training pipeline:
  ``train_start``, ``train_end``, ``candidate`` and ``metrics.backtest`` keyed by model name
  (``{"lightgbm": {"mase": ..}, "SeasonalNaive": {"mase": ..}, ...}``), the chosen model being
  ``candidate``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SEASONAL_NAIVE_NAMES = ("SeasonalNaive", "seasonal_naive")
BACKTEST_KEYS = ("mase", "rmsse", "wape", "bias", "coverage_80", "coverage_95")


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _mapping(doc: Any) -> Mapping[str, Any]:
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return {}
    return doc if isinstance(doc, Mapping) else {}


def backtest_summary(doc: Any) -> dict[str, float | None]:
    """Backtest metrics of the version itself (``mase``, ``rmsse``, ...) and the seasonal-naive
    MASE on the same windows, from any of the shapes in the module doc; missing → None."""
    doc = _mapping(doc)
    candidate = doc.get("candidate")
    metrics = _mapping(doc.get("metrics")) or doc
    bt = _mapping(metrics.get("backtest")) or metrics
    own: Mapping[str, Any] = bt
    naive: float | None = _num(bt.get("seasonal_naive_mase"))
    if isinstance(candidate, str) and isinstance(bt.get(candidate), Mapping):
        own = bt[candidate]
    for name in SEASONAL_NAIVE_NAMES:
        if naive is None and isinstance(bt.get(name), Mapping):
            naive = _num(bt[name].get("mase"))
    out: dict[str, float | None] = {k: _num(own.get(k)) for k in BACKTEST_KEYS}
    if out["mase"] is None:
        out["mase"] = _num(metrics.get("backtest_mase"))
    out["seasonal_naive_mase"] = naive
    return out


def registry_metadata(root: Path | None, version: str | None) -> dict[str, Any]:
    """``metadata.json`` of one version in a local registry folder; {} when there is none."""
    if root is None or not version or "/" in version or version.startswith("."):
        return {}
    path = Path(root) / "versions" / version / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def registry_versions(root: Path | None, limit: int = 200) -> list[dict[str, Any]]:
    """Every version's metadata in a local registry folder (best effort, oldest first)."""
    if root is None or not (Path(root) / "versions").is_dir():
        return []
    out = []
    for path in sorted((Path(root) / "versions").glob("*/metadata.json"))[:limit]:
        meta = registry_metadata(root, path.parent.name)
        if meta:
            meta.setdefault("version", path.parent.name)
            out.append(meta)
    return out
