"""Canary rollout of a gated model version, with automatic rollback to the champion.

The backtest says a version forecasts well on history; the canary checks that the *deployed*
version behaves on today's inputs before it takes all traffic. For each step of
``training.canary.steps`` (default 10% then 100%):

1. ``registry.deploy(endpoint, version, traffic=step)``: the champion keeps the rest of the traffic
   (on the local server the swap is a file replace the server picks up between requests; on Vertex
   it is the endpoint's traffic split);
2. health: optional probe requests through the endpoint (every request must succeed, latency
   bounded) — see :class:`EndpointProbe`;
3. sanity of the version's predictions on probe series (before the first step, from the artifact):
   finite, non-negative, intervals ordered and nested, and not wildly off the champion's forecast
   for the same series (total ratio, share of series far off).

Any failure rolls back at once: the champion gets 100% of the traffic again, the version loses its
``challenger`` alias, and both are in the registry's audit log with the reason. The champion alias
only moves after the last step passed, so at every moment the alias names a version that served
100% of traffic before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from salesloop.model.base import ForecastModel
from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL
from salesloop.training_settings import CanarySettings, SanitySettings

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class ProbeResult:
    """What the endpoint answered during one canary step."""

    requests: int
    errors: int
    latencies_ms: list[float] = field(default_factory=list)
    # Predictions served by the canary deployment (None when the probe cannot tell who answered).
    canary_predictions: pd.DataFrame | None = None
    canary_responses: int = 0
    detail: str = ""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else 0.0


class ProbeUnavailable(RuntimeError):
    """The endpoint does not answer at all (no server): distinct from a failing canary."""


class EndpointProbe(Protocol):
    """Sends ``requests`` prediction requests through the endpoint while ``version`` has traffic."""

    def __call__(self, version: str, traffic: int, requests: int) -> ProbeResult: ...


class RolloutRegistry(Protocol):
    """What the rollout needs from a registry (:class:`salesloop.registry.LocalRegistry`)."""

    def alias(self, name: str) -> str | None: ...

    def set_alias(self, alias: str, version: str, reason: str) -> None: ...

    def remove_alias(self, alias: str, reason: str) -> None: ...

    def load_model(self, version: str) -> ForecastModel: ...

    def deploy(
        self, endpoint_id: str, version: str, traffic: int = 100, *, reason: str = ""
    ) -> Any: ...

    def set_traffic(self, endpoint_id: str, split: dict[str, int], *, reason: str = "") -> Any: ...

    def undeploy(self, endpoint_id: str, version: str, *, reason: str = "") -> Any: ...

    def deployed(self, endpoint_id: str) -> Sequence[Any]: ...


@dataclass
class StepRecord:
    traffic: int
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass
class RolloutResult:
    version: str
    endpoint_id: str
    champion_before: str | None
    promoted: bool
    rolled_back: bool
    reason: str
    steps: list[StepRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = [
            {"traffic": s.traffic, "passed": s.passed, "checks": [asdict(c) for c in s.checks]}
            for s in self.steps
        ]
        return out


# -- sanity ----------------------------------------------------------------------------------------


def sanity_checks(
    forecast: pd.DataFrame,
    levels: Sequence[int],
    sanity: SanitySettings,
    reference: pd.DataFrame | None = None,
    *,
    expected_rows: int | None = None,
) -> list[Check]:
    """Checks on one version's forecast frame (``unique_id, ds, yhat, lo_L, hi_L``)."""
    checks: list[Check] = []
    cols = ["yhat", *[f"{s}_{lv}" for lv in levels for s in ("lo", "hi")]]
    missing = [c for c in (ID_COL, TIME_COL, *cols) if c not in forecast.columns]
    if missing or forecast.empty:
        return [Check("shape", False, f"forecast is empty or lacks columns {missing}")]
    if expected_rows is not None and len(forecast) != expected_rows:
        checks.append(Check("rows", False, f"{len(forecast)} rows, expected {expected_rows}"))
    values = forecast[cols].to_numpy(dtype=float)
    n_bad = int((~np.isfinite(values)).any(axis=1).sum())
    checks.append(Check("finite", n_bad == 0, f"{n_bad} rows with NaN or infinite values"))
    n_neg = int((np.nan_to_num(values, nan=0.0) < 0).any(axis=1).sum())
    checks.append(Check("non_negative", n_neg == 0, f"{n_neg} rows with negative values"))
    yhat = forecast["yhat"].to_numpy(dtype=float)
    disorder = 0
    prev: tuple[np.ndarray, np.ndarray] | None = None
    for lv in sorted(levels):
        lo = forecast[f"lo_{lv}"].to_numpy(dtype=float)
        hi = forecast[f"hi_{lv}"].to_numpy(dtype=float)
        bad = ~((lo <= yhat + 1e-9) & (yhat <= hi + 1e-9))
        if prev is not None:
            bad |= ~((lo <= prev[0] + 1e-9) & (prev[1] <= hi + 1e-9))
        disorder += int(bad.sum())
        prev = (lo, hi)
    checks.append(
        Check(
            "intervals_ordered",
            disorder == 0,
            f"{disorder} rows with lo ≤ yhat ≤ hi or nesting violated",
        )
    )
    if reference is not None and not reference.empty:
        mine = forecast.groupby(ID_COL)["yhat"].sum()
        theirs = reference.groupby(ID_COL)["yhat"].sum()
        both = pd.concat([mine.rename("new"), theirs.rename("ref")], axis=1, join="inner")
        total_new, total_ref = float(both["new"].sum()), float(both["ref"].sum())
        ratio = (total_new + 1e-9) / (total_ref + 1e-9)
        r = sanity.max_total_ratio
        checks.append(
            Check(
                "total_vs_champion",
                1 / r <= ratio <= r and math.isfinite(ratio),
                f"total forecast {total_new:.1f} vs champion {total_ref:.1f} (ratio {ratio:.2f}, allowed {1 / r:.2f}..{r:.2f})",
            )
        )
        sized = both[(both["new"] >= sanity.min_units) | (both["ref"] >= sanity.min_units)]
        if len(sized):
            s_ratio = (sized["new"] + 0.5) / (sized["ref"] + 0.5)
            far = float(
                ((s_ratio > sanity.series_ratio) | (s_ratio < 1 / sanity.series_ratio)).mean()
            )
        else:
            far = 0.0
        checks.append(
            Check(
                "series_vs_champion",
                far <= sanity.max_share_far_series,
                f"{far:.1%} of series differ from the champion by more than {sanity.series_ratio:g}x "
                f"(allowed {sanity.max_share_far_series:.0%})",
            )
        )
    return checks


def probe_history(frame: pd.DataFrame, n_series: int, periods: int, seed: int = 0) -> pd.DataFrame:
    """The recent history of a deterministic probe set: the biggest sellers plus a random sample.

    Bestsellers are where a broken model costs most; the random half catches what only slow or
    intermittent items expose.
    """
    ids = frame[ID_COL].astype(str)
    volume = (
        frame.assign(**{ID_COL: ids})
        .groupby(ID_COL)[TARGET_COL]
        .sum()
        .sort_values(ascending=False, kind="stable")
    )
    top = list(volume.index[: max(1, n_series // 2)])
    rest = np.array([u for u in volume.index if u not in set(top)], dtype=object)
    rng = np.random.default_rng(seed)
    sample = (
        list(rng.choice(rest, size=min(len(rest), n_series - len(top)), replace=False))
        if len(rest)
        else []
    )
    chosen = set(top) | {str(s) for s in sample}
    hist = frame[ids.isin(chosen)]
    last = np.sort(hist[TIME_COL].unique())[-periods:]
    return hist[hist[TIME_COL].isin(last)].reset_index(drop=True)


class PredictorProbe:
    """Probe an endpoint through the Predictor port with small requests of probe series.

    The endpoint picks a deployed model per request (by the traffic split: weighted round-robin on
    the local server, random on Vertex). Requests continue until the canary has answered at least
    once, up to enough requests that missing a canary at ``traffic``% by chance would be a
    one-in-ten-thousand event; each request carries a different window of the probe series, so
    sticky routing by request content cannot hide the canary either.
    """

    def __init__(
        self, predictor: Any, instances: Sequence[dict[str, Any]], *, batch: int = 4
    ) -> None:
        if not instances:
            raise ValueError("no probe instances")
        self.predictor = predictor
        self.instances = list(instances)
        self.batch = max(1, min(batch, len(self.instances)))
        self._warm = False

    def warm_up(self) -> None:
        """One untimed request: the client's own start-up (SDK import, endpoint lookup) is not
        the endpoint's latency. A connection failure here means there is no endpoint at all."""
        if self._warm:
            return
        try:
            self.predictor.predict(self.instances[: self.batch])
        except (ConnectionError, OSError) as exc:
            raise ProbeUnavailable(f"endpoint unreachable: {exc}") from exc
        except Exception:
            pass  # an endpoint that answers with errors: the timed requests will count them
        self._warm = True

    @staticmethod
    def requests_for(traffic: int, minimum: int) -> int:
        if traffic >= 100:
            return max(minimum, 1)
        miss = 1.0 - traffic / 100.0
        return max(minimum, math.ceil(math.log(1e-4) / math.log(miss)))

    def __call__(self, version: str, traffic: int, requests: int) -> ProbeResult:
        from salesloop.predictor.codec import predictions_to_frame

        self.warm_up()
        n = len(self.instances)
        limit = self.requests_for(traffic, requests)
        latencies: list[float] = []
        errors = 0
        served: list[dict[str, Any]] = []
        hits = 0
        sent = 0
        first_error = ""
        for i in range(limit):
            if sent >= requests and hits > 0:
                break
            start = i % n
            chunk = (self.instances + self.instances)[start : start + self.batch]
            t0 = time.perf_counter()
            sent += 1
            try:
                batch = self.predictor.predict(chunk)
            except Exception as exc:
                errors += 1
                first_error = first_error or f"({type(exc).__name__}: {str(exc)[:200]})"
                continue
            finally:
                latencies.append((time.perf_counter() - t0) * 1000.0)
            mine = [p for p in batch.predictions if str(p.get("model_version")) == version]
            if mine:
                hits += 1
                served += mine
        canary = None
        if served:
            frame = predictions_to_frame(served)
            canary = frame.rename(columns={"series_id": ID_COL, "target_date": TIME_COL})
        return ProbeResult(sent, errors, latencies, canary, hits, first_error)


# -- rollout ---------------------------------------------------------------------------------------


def _probe_checks(result: ProbeResult, canary: CanarySettings, traffic: int) -> list[Check]:
    return [
        Check(
            "canary_served",
            result.canary_responses > 0 or traffic == 0,
            f"{result.canary_responses} of {result.requests} responses came from the canary",
        ),
        Check(
            "endpoint_errors",
            result.error_rate <= canary.max_error_rate,
            f"{result.errors}/{result.requests} requests failed {result.detail}".strip(),
        ),
        Check(
            "endpoint_latency",
            result.p95_ms <= canary.max_latency_p95_ms,
            f"p95 {result.p95_ms:.0f} ms (allowed {canary.max_latency_p95_ms:.0f} ms)",
        ),
    ]


def _predict(
    model: ForecastModel, history: pd.DataFrame, horizon: int, levels: Sequence[int]
) -> pd.DataFrame:
    need = int(getattr(model.metadata, "min_history", 0) or 0)
    hist = history.groupby(ID_COL, sort=False, observed=True).tail(need) if need > 1 else history
    return model.predict(hist, horizon, list(levels))


def canary_rollout(
    registry: RolloutRegistry,
    endpoint_id: str,
    version: str,
    history: pd.DataFrame,
    *,
    canary: CanarySettings,
    sanity: SanitySettings,
    horizon: int,
    levels: Sequence[int],
    probe: EndpointProbe | None = None,
    log: Callable[[str], None] | None = None,
) -> RolloutResult:
    """Roll ``version`` out in steps; promote it or roll back (see the module docstring)."""
    say = log or (lambda _msg: None)
    champion = registry.alias(CHAMPION)
    result = RolloutResult(version, endpoint_id, champion, False, False, "")
    if champion == version:
        result.reason = f"{version} is already the champion"
        return result

    # Step 0: the artifact itself, before it gets any traffic.
    try:
        mine = _predict(registry.load_model(version), history, horizon, levels)
        theirs = (
            _predict(registry.load_model(champion), history, horizon, levels) if champion else None
        )
        checks = sanity_checks(
            mine, levels, sanity, theirs, expected_rows=history[ID_COL].nunique() * horizon
        )
    except Exception as exc:  # any failure to predict is a failed canary, not a crashed pipeline
        checks = [Check("predict", False, f"{type(exc).__name__}: {exc}")]
    record = StepRecord(0, checks)
    result.steps.append(record)
    if not record.passed:
        return _rollback(registry, result, champion, record, deployed=False, log=say)

    if champion and not any(m.version == champion for m in registry.deployed(endpoint_id)):
        # A canary needs the champion serving the rest of the traffic.
        registry.deploy(endpoint_id, champion, 100, reason=f"champion {champion} was not deployed")
    steps = list(canary.steps) if champion else [100]
    for traffic in steps:
        say(f"canary: {version} at {traffic}%")
        try:
            registry.deploy(endpoint_id, version, traffic, reason=f"canary {traffic}% of {version}")
        except Exception as exc:
            record = StepRecord(traffic, [Check("deploy", False, f"{type(exc).__name__}: {exc}")])
            result.steps.append(record)
            return _rollback(registry, result, champion, record, deployed=True, log=say)
        if probe is not None and canary.settle_s:
            time.sleep(canary.settle_s)
        checks = []
        if probe is not None and canary.health_requests:
            try:
                probed = probe(version, traffic, canary.health_requests)
                checks += _probe_checks(probed, canary, traffic)
                if probed.canary_predictions is not None and len(probed.canary_predictions):
                    served = sanity_checks(probed.canary_predictions, levels, sanity, None)
                    checks += [Check(f"served_{c.name}", c.passed, c.detail) for c in served]
            except ProbeUnavailable as exc:
                checks.append(
                    Check("endpoint_reachable", not canary.require_endpoint, f"{exc}; skipped")
                )
            except Exception as exc:
                checks.append(Check("probe", False, f"{type(exc).__name__}: {exc}"))
        record = StepRecord(traffic, checks)
        result.steps.append(record)
        if not record.passed:
            return _rollback(registry, result, champion, record, deployed=True, log=say)

    reason = f"promoted after canary steps {steps}: all health and sanity checks passed"
    registry.set_alias(CHAMPION, version, reason)
    if registry.alias(CHALLENGER) == version:
        registry.remove_alias(CHALLENGER, f"{version} is now the champion")
    result.promoted = True
    result.reason = reason
    say(f"canary: {version} promoted to champion")
    return result


def _rollback(
    registry: RolloutRegistry,
    result: RolloutResult,
    champion: str | None,
    failed: StepRecord,
    *,
    deployed: bool,
    log: Callable[[str], None],
) -> RolloutResult:
    problems = "; ".join(f"{c.name}: {c.detail}" for c in failed.checks if not c.passed)
    reason = f"rollback of {result.version} at {failed.traffic}%: {problems}"
    log(reason)
    if champion is not None:
        # Also when nothing was deployed yet: re-asserting the champion's 100% is a no-op on the
        # endpoint and puts the rollback and its reason in the audit log.
        registry.set_traffic(result.endpoint_id, {champion: 100}, reason=reason)
    elif deployed:
        try:
            registry.undeploy(result.endpoint_id, result.version, reason=reason)
        except Exception as exc:  # nothing was deployed: nothing to undo
            log(f"undeploy after failed first rollout: {exc}")
    if registry.alias(CHALLENGER) == result.version:
        registry.remove_alias(CHALLENGER, reason)
    result.rolled_back = True
    result.reason = reason
    return result
