"""One function per pipeline step; files in, files out, a JSON-able summary back.

Every step reloads the settings of its environment (a kfp task is a separate process, possibly on
another machine) and reads only the artifacts it is given, so a step can be re-run alone from the
artifacts of a previous run, and tested without kfp.
"""

from __future__ import annotations

import json
import math
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from salesloop.config import Settings, load_settings
from salesloop.evaluation.backtest import (
    AUTO_ETS,
    CHAMPION,
    SEASONAL_NAIVE,
    BacktestResult,
    Contender,
    best_candidate,
    plan_backtest,
    run_backtest,
)
from salesloop.evaluation.candidates import build_model, recipe_of
from salesloop.evaluation.report import write_report
from salesloop.gate import GateDecision, evaluate_gate
from salesloop.model.base import ForecastModel, load_model
from salesloop.pipeline.frame import extract_frame, validate_frame
from salesloop.training_settings import TrainingSettings, training_settings
from salesloop.warehouse import Warehouse, open_warehouse

if TYPE_CHECKING:
    from salesloop.registry import ModelRegistry
    from salesloop.rollout import RolloutResult

BACKTEST_FILE = "backtest.json"
FORECASTS_FILE = "forecasts.parquet"
REPORT_FILE = "report.html"
TRAINED_FILE = "trained.json"


def pipeline_settings(env: str, overlay: str = "") -> tuple[Settings, TrainingSettings]:
    settings = load_settings(env or None, extra_overlay=Path(overlay) if overlay else None)
    return settings, training_settings(settings)


def _end_date(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def _open_warehouse(settings: Settings, warehouse_path: str, *, write: bool = False) -> Warehouse:
    """A DuckDB file given as a parameter (read-only unless the step writes), else the
    environment's warehouse (BigQuery in the cloud, the local warehouse service or file)."""
    if warehouse_path:
        from salesloop.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(warehouse_path, settings=settings, read_only=not write)
    return open_warehouse(settings)


def _write_json(path: Path | str, data: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


# -- extract -------------------------------------------------------------------------------------


def extract_step(
    env: str,
    out_path: str,
    *,
    overlay: str = "",
    warehouse_path: str = "",
    end_date: str = "",
    history_days: int = 0,
    series_filter: str = "",
) -> dict[str, Any]:
    settings, train = pipeline_settings(env, overlay)
    warehouse = _open_warehouse(settings, warehouse_path)
    try:
        rows = extract_frame(
            warehouse,
            history_days=history_days or int(train.history_days or 0),
            end_date=_end_date(end_date),
            series_filter=series_filter,
        )
    finally:
        warehouse.close()
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(out_path, index=False)
    return {
        "rows": len(rows),
        "series": int(rows["series_id"].nunique()) if len(rows) else 0,
        "end_date": rows.attrs.get("end_date", end_date),
    }


# -- validate ------------------------------------------------------------------------------------


def validate_step(
    env: str,
    raw_path: str,
    frame_path: str,
    report_path: str,
    *,
    overlay: str = "",
    end_date: str = "",
) -> dict[str, Any]:
    """Write the model frame, or the report and raise (the pipeline stops here)."""
    from salesloop.pipeline.frame import FrameValidationError

    settings, train = pipeline_settings(env, overlay)
    raw = pd.read_parquet(raw_path)
    try:
        frame, report = validate_frame(raw, settings, train, end_date=_end_date(end_date))
    except FrameValidationError as exc:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(exc.report.to_json())
        raise
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(report.to_json())
    Path(frame_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(frame_path, index=False)
    return report.stats


# -- train ---------------------------------------------------------------------------------------


def train_step(env: str, frame_path: str, out_dir: str, *, overlay: str = "") -> dict[str, Any]:
    """Fit every configured candidate on the whole frame; ``out_dir/<name>/`` per candidate."""
    settings, train = pipeline_settings(env, overlay)
    frame = pd.read_parquet(frame_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for spec in train.candidates:
        t0 = time.perf_counter()
        model = build_model(
            spec.kind,
            settings.forecast,
            spec.params,
            stat_max_history=train.backtest.stat_max_history,
        )
        model.fit(frame)
        model.save(out / spec.name)
        summary[spec.name] = {
            "kind": spec.kind,
            "fit_s": round(time.perf_counter() - t0, 2),
            "train_end": str(model.metadata.train_end),
            "n_series": model.metadata.n_series,
        }
    _write_json(out / TRAINED_FILE, summary)
    return summary


# -- backtest ------------------------------------------------------------------------------------


def champion_contender(champion: ForecastModel, first_cutoff: pd.Timestamp, mode: str) -> Contender:
    """The champion as an artifact or a refitted recipe (see ``BacktestSettings.champion_mode``)."""
    train_end = champion.metadata.train_end
    leaked = train_end is not None and pd.Timestamp(train_end) > first_cutoff
    recipe = recipe_of(champion)
    if (mode == "refit" or (mode == "auto" and leaked)) and recipe is not None:
        return Contender(
            CHAMPION,
            "champion",
            factory=recipe,
            note=f"recipe refitted at every origin (artifact trained to {train_end})",
        )
    note = f"deployed artifact trained to {train_end}"
    if leaked:
        note += " — it saw part of the windows; its numbers are optimistic"
    return Contender(CHAMPION, "champion", model=champion, note=note)


def _same_config(a: Any, b: Any) -> bool:
    """Same recipe up to parallelism (n_jobs does not change a forecast)."""
    if a is None or b is None:
        return False
    return bool(a.model_dump(exclude={"n_jobs"}) == b.model_dump(exclude={"n_jobs"}))


def backtest(
    frame: pd.DataFrame,
    settings: Settings,
    train: TrainingSettings,
    candidates: dict[str, ForecastModel],
    champion: ForecastModel | None = None,
    *,
    extra: list[Contender] | None = None,
    n_jobs: int = 1,
    progress: Any = None,
) -> tuple[BacktestResult, str]:
    """Backtest candidates (as recipes), the champion and both baselines; return the chosen one.

    ``extra``: more contenders scored on the same rows (benchmark diagnostics).
    """
    bt = train.backtest
    assert bt.horizon and bt.step and bt.min_train_periods
    fc = settings.forecast
    plan = plan_backtest(
        frame,
        windows=bt.windows,
        horizon=bt.horizon,
        step=bt.step,
        season_length=fc.season_length,
        levels=fc.interval_levels,
        min_train_periods=bt.min_train_periods,
    )
    contenders: list[Contender] = []
    for name, model in candidates.items():
        recipe = recipe_of(model)
        if recipe is None:
            raise ValueError(f"candidate {name!r} ({model.kind}) has no refittable recipe")
        contenders.append(Contender(name, "candidate", factory=recipe))
    if champion is not None:
        contenders.append(champion_contender(champion, plan.cutoffs[0], bt.champion_mode))
    same_as: dict[str, str] = {}
    for name, kind in ((SEASONAL_NAIVE, "seasonal_naive"), (AUTO_ETS, "auto_ets")):

        def make(kind: str = kind) -> ForecastModel:
            return build_model(
                kind, fc, horizon=bt.horizon, stat_max_history=bt.stat_max_history, n_jobs=n_jobs
            )

        contenders.append(Contender(name, "baseline", factory=make))
        reference = make()
        for cand_name, model in candidates.items():
            if type(model) is type(reference) and _same_config(
                getattr(model, "config", None), getattr(reference, "config", None)
            ):
                same_as[name] = cand_name
                break
    contenders += list(extra or [])
    result = run_backtest(
        frame,
        plan,
        contenders,
        refit=bt.refit,
        known_future=bt.known_future,
        progress=progress,
        same_as=same_as,
    )
    for name, source in same_as.items():
        result.notes[name] = f"same recipe as candidate {source!r}: forecasts shared"
    chosen = (
        best_candidate(result, train.gate.metric) if train.select_best else next(iter(candidates))
    )
    return result, chosen


def backtest_step(
    env: str,
    frame_path: str,
    candidates_dir: str,
    out_dir: str,
    *,
    overlay: str = "",
    registry_root: str = "",
    registry: ModelRegistry | None = None,
) -> dict[str, Any]:
    settings, train = pipeline_settings(env, overlay)
    frame = pd.read_parquet(frame_path)
    candidates = {
        spec.name: load_model(Path(candidates_dir) / spec.name) for spec in train.candidates
    }
    champion = None
    champion_version = None
    if registry_root or registry is not None:
        champion_version, champion = champion_of(registry_root, settings, registry=registry)
    result, chosen = backtest(frame, settings, train, candidates, champion)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.forecasts.to_parquet(out / FORECASTS_FILE, index=False)
    summary = {
        **result.summary(),
        "min_history": {name: int(m.metadata.min_history) for name, m in candidates.items()},
        "chosen": chosen,
        "champion_version": champion_version,
        "baseline": SEASONAL_NAIVE,
    }
    _write_json(out / BACKTEST_FILE, summary)
    write_report(
        out / REPORT_FILE,
        frame,
        result,
        title=f"Backtest of {train.model_name}: {chosen}",
        highlight=chosen,
        n_series=train.backtest.report_series,
    )
    return summary


# -- gate ----------------------------------------------------------------------------------------


def gate_step(
    env: str, backtest_path: str, decision_path: str, *, overlay: str = ""
) -> GateDecision:
    settings, train = pipeline_settings(env, overlay)
    summary = _read_json(backtest_path)
    metrics = {
        m: {k: (math.nan if v is None else v) for k, v in vals.items()}
        for m, vals in summary["overall"].items()
    }
    decision = evaluate_gate(
        metrics,
        challenger=summary["chosen"],
        baseline=summary.get("baseline", SEASONAL_NAIVE),
        champion=CHAMPION if CHAMPION in metrics else None,
        gate=train.gate,
        levels=tuple(settings.forecast.interval_levels),
        min_history=summary.get("min_history", {}).get(summary["chosen"]),
    )
    _write_json(decision_path, decision.to_dict())
    return decision


# -- registry ------------------------------------------------------------------------------------


def open_registry(root: str, settings: Settings | None = None) -> ModelRegistry:
    """The registry a ``registry_root`` names: a folder → :class:`LocalRegistry`; ``gs://...``
    (or ``vertex:``, short for ``<pipeline_root>/registry``) → :class:`VertexRegistry` of the
    settings' project and region, its artifacts under that folder."""
    if not root:
        raise ValueError("no registry_root given")
    if root.startswith(("gs://", "vertex:")):
        if settings is None:
            raise ValueError(
                f"registry {root!r}: a Vertex registry needs the environment's settings"
            )
        from salesloop.vertex.registry import VertexRegistry

        if root.startswith("vertex:"):
            root = f"{training_settings(settings).vertex.pipeline_root}/registry"
        return VertexRegistry.from_settings(settings, root)
    from salesloop.registry import LocalRegistry

    return LocalRegistry(root)


def champion_of(
    registry_root: str, settings: Settings | None = None, *, registry: ModelRegistry | None = None
) -> tuple[str | None, ForecastModel | None]:
    """The version holding the ``champion`` alias and its model (loaded from its artifact)."""
    registry = registry or open_registry(registry_root, settings)
    version = registry.alias(CHAMPION)
    if version is None:
        return None, None
    return version, registry.load_model(version)


def register_step(
    env: str,
    candidates_dir: str,
    backtest_path: str,
    decision_path: str,
    registry_root: str,
    *,
    overlay: str = "",
    warehouse_path: str = "",
    registry: ModelRegistry | None = None,
) -> str:
    """Register the chosen candidate with its gate status and write its ``model_versions`` row;
    an accepted one becomes the challenger."""
    from salesloop.pipeline.versions import record_registration
    from salesloop.rollout import CHALLENGER

    settings, train = pipeline_settings(env, overlay)
    summary = _read_json(backtest_path)
    decision = _read_json(decision_path)
    chosen = summary["chosen"]
    status = decision["status"]
    reason = "; ".join(decision["reasons"])
    registry = registry or open_registry(registry_root, settings)
    keep = [chosen, SEASONAL_NAIVE, AUTO_ETS, CHAMPION]
    version = registry.register(
        Path(candidates_dir) / chosen,
        {
            "status": status,
            "reason": reason,
            "candidate": chosen,
            "model_name": train.model_name,
            "champion_at_training": summary.get("champion_version"),
            "gate": decision,
            "metrics": {
                "backtest": {m: summary["overall"][m] for m in keep if m in summary["overall"]},
                "by_category": {
                    cat: vals.get(chosen, {})
                    for cat, vals in summary.get("by_category", {}).items()
                },
                "plan": summary["plan"],
            },
        },
        reason=f"{status}: {reason}",
    )
    # The row before the alias: if the warehouse write fails, the version stays registered
    # (immutable, harmless) but never becomes the challenger, and the step fails loudly.
    warehouse = _open_warehouse(settings, warehouse_path, write=True)
    try:
        record_registration(
            warehouse,
            version,
            registry.get(version).metadata,
            accepted=status == "accepted",
            reason=f"{status}: {reason}",
        )
    finally:
        warehouse.close()
    if status == "accepted":
        registry.set_alias(CHALLENGER, version, f"passed the gate: {reason}")
    return str(version)


# -- rollout -------------------------------------------------------------------------------------


class _Unreachable:
    """A probe for an endpoint that did not answer its health check."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __call__(self, version: str, traffic: int, requests: int) -> Any:
        from salesloop.rollout import ProbeUnavailable

        raise ProbeUnavailable(self.why)


def endpoint_probe(settings: Settings, train: TrainingSettings, history: pd.DataFrame) -> Any:
    """A probe through this environment's predictor, or None when there is no endpoint to probe."""
    if not train.canary.health_requests or settings.predictor.kind != "endpoint":
        return None
    api = settings.predictor.api_endpoint
    if api:
        import requests

        try:
            requests.get(f"{api.rstrip('/')}/health", timeout=2.0)
        except requests.RequestException as exc:
            return _Unreachable(f"{api} does not answer ({type(exc).__name__})")
    from salesloop.predictor.codec import instances_from_frame
    from salesloop.predictor.endpoint import EndpointPredictor
    from salesloop.rollout import PredictorProbe

    return PredictorProbe(
        EndpointPredictor(settings, max_attempts=1), instances_from_frame(history)
    )


def rollout_step(
    env: str,
    version: str,
    registry_root: str,
    endpoint_id: str,
    frame_path: str,
    outcome_path: str,
    *,
    overlay: str = "",
    probe: Any = None,
    warehouse_path: str = "",
    registry: ModelRegistry | None = None,
) -> dict[str, Any]:
    """Canary rollout of an accepted version; the outcome goes to the registry (status) and to
    the ``model_versions`` table."""
    from salesloop.rollout import canary_rollout, probe_history

    settings, train = pipeline_settings(env, overlay)
    registry = registry or open_registry(registry_root, settings)
    status = registry.get(version).metadata.get("status")
    if status != "accepted":
        # The pipeline only gets here through the gate's branch; a manual re-run must not
        # roll out a rejected version either.
        raise ValueError(f"{version} has gate status {status!r}; only accepted versions roll out")
    frame = pd.read_parquet(frame_path)
    model = registry.load_model(version)
    periods = max(int(model.metadata.min_history or 1), 2 * settings.forecast.season_length)
    history = probe_history(frame, train.sanity.probe_series, periods)
    if probe is None:
        probe = endpoint_probe(settings, train, history)
    to_vertex = getattr(registry, "vertex_version_id", None)
    if probe is not None and to_vertex is not None:
        probe = _VertexVersionProbe(probe, to_vertex)
    result = canary_rollout(
        registry,
        endpoint_id or settings.predictor.endpoint_id,
        version,
        history,
        canary=train.canary,
        sanity=train.sanity,
        horizon=settings.forecast.horizon,
        levels=settings.forecast.interval_levels,
        probe=probe,
    )
    record_outcome(registry, result, settings, warehouse_path)
    out = result.to_dict()
    _write_json(outcome_path, out)
    return out


class _VertexVersionProbe:
    """Vertex stamps predictions with its numeric model version id (``modelVersionId``), not the
    registry's ``v0003``: the probe looks for the canary under the Vertex id."""

    def __init__(self, inner: Any, to_vertex: Any) -> None:
        self.inner = inner
        self.to_vertex = to_vertex

    def __call__(self, version: str, traffic: int, requests: int) -> Any:
        return self.inner(str(self.to_vertex(version)), traffic, requests)


def record_outcome(
    registry: ModelRegistry, result: RolloutResult, settings: Settings, warehouse_path: str = ""
) -> None:
    """A rollout's outcome on the versions (registry status) and in ``model_versions``."""
    from salesloop.pipeline.versions import record_rollout

    version, previous = result.version, result.champion_before
    if not (result.promoted or result.rolled_back):
        return
    if result.promoted:
        registry.annotate(version, "champion", result.reason)
        if previous and previous != version:
            registry.annotate(previous, "retired", f"replaced as champion by {version}")
    else:
        registry.annotate(version, "rolled_back", result.reason)
    previous_meta: dict[str, Any] = {}
    if result.promoted and previous and previous != version:
        try:
            previous_meta = dict(registry.get(previous).metadata)
        except Exception:  # a champion registered outside the pipeline: the row needs no more
            previous_meta = {}
    warehouse = _open_warehouse(settings, warehouse_path, write=True)
    try:
        record_rollout(
            warehouse,
            version=version,
            metadata=registry.get(version).metadata,
            promoted=result.promoted,
            rolled_back=result.rolled_back,
            reason=result.reason,
            previous_champion=previous,
            previous_metadata=previous_meta,
        )
    finally:
        warehouse.close()
