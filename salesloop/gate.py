"""The promotion gate: may this challenger replace the champion?

Every rule compares numbers from one backtest (same windows, same series), so the decision does not
depend on how hard the period was. The rules, with thresholds from ``training.gate``:

1. the challenger's metrics are finite (a NaN must never compare as "not worse");
2. it beats SeasonalNaive by at least ``min_improvement_vs_seasonal_naive`` (a model that cannot
   clearly beat "same day last week" is not worth its complexity);
3. it is not worse than the champion by more than ``max_degradation_vs_champion`` (retraining on
   fresh data must not quietly regress; a small tolerance avoids flapping on noise);
4. its interval coverage is within ``max_coverage_gap`` of nominal for every level (alerts are
   driven by the lower bound; an interval that covers 60% instead of 80% raises false alarms);
5. its volume bias is bounded by ``max_abs_bias``;
6. it needs no more history than the serving path sends (``max_min_history``).

All failing rules are reported (not only the first), because the reason is recorded on the
rejected version in the registry and a reviewer should see everything that was wrong at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from salesloop.training_settings import GateSettings


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    challenger: str
    metric: str
    reasons: list[str]
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "accepted" if self.accepted else "rejected"

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def evaluate_gate(
    metrics: Mapping[str, Mapping[str, Any]],
    *,
    challenger: str,
    baseline: str,
    champion: str | None,
    gate: GateSettings,
    levels: tuple[int, ...] = (80, 95),
    min_history: int | None = None,
) -> GateDecision:
    """Apply the rules to ``metrics`` (model name → overall metrics of one backtest)."""
    m = gate.metric
    checks: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []
    mine = metrics.get(challenger)
    if mine is None:
        return GateDecision(False, challenger, m, [f"no backtest metrics for {challenger!r}"], {})
    value = float(mine.get(m, math.nan))

    def check(name: str, ok: bool, detail: str, **data: Any) -> None:
        checks[name] = {"passed": ok, "detail": detail, **data}
        if not ok:
            reasons.append(detail)

    finite = all(
        math.isfinite(float(mine.get(k, math.nan)))
        for k in (m, *[f"coverage_{lv}" for lv in levels])
    )
    check(
        "finite",
        finite,
        f"{challenger}: {m} or coverage is not finite" if not finite else "metrics finite",
    )

    base = float(metrics.get(baseline, {}).get(m, math.nan))
    limit = (1.0 - gate.min_improvement_vs_seasonal_naive) * base
    ok = math.isfinite(value) and math.isfinite(base) and value <= limit
    improvement = 1.0 - value / base if math.isfinite(base) and base > 0 else math.nan
    check(
        "beats_seasonal_naive",
        ok,
        f"{m} {value:.4f} vs {baseline} {base:.4f}: {improvement:+.1%} better, "
        f"needs ≥ {gate.min_improvement_vs_seasonal_naive:.0%}",
        value=value,
        reference=base,
        limit=limit,
    )

    if champion is not None and champion in metrics:
        champ = float(metrics[champion].get(m, math.nan))
        limit_c = (1.0 + gate.max_degradation_vs_champion) * champ
        ok_c = math.isfinite(value) and (not math.isfinite(champ) or value <= limit_c)
        check(
            "not_worse_than_champion",
            ok_c,
            f"{m} {value:.4f} vs champion {champ:.4f}: allowed up to {limit_c:.4f} "
            f"(tolerance {gate.max_degradation_vs_champion:.0%})",
            value=value,
            reference=champ,
            limit=limit_c,
        )
    else:
        checks["not_worse_than_champion"] = {"passed": True, "detail": "no champion yet"}

    if gate.max_coverage_gap is not None:
        for lv in levels:
            cov = float(mine.get(f"coverage_{lv}", math.nan))
            gap = abs(cov - lv / 100.0)
            check(
                f"coverage_{lv}",
                math.isfinite(cov) and gap <= gate.max_coverage_gap,
                f"{lv}% interval covers {cov:.1%} (nominal {lv}%, allowed ±{gate.max_coverage_gap:.0%})",
                value=cov,
            )
    if gate.max_abs_bias is not None:
        bias = float(mine.get("bias", math.nan))
        check(
            "bias",
            math.isfinite(bias) and abs(bias) <= gate.max_abs_bias,
            f"bias {bias:+.1%} (allowed ±{gate.max_abs_bias:.0%})",
            value=bias,
        )
    if gate.max_min_history is not None and min_history is not None:
        check(
            "history_needed",
            min_history <= gate.max_min_history,
            f"needs {min_history} periods of history per series; serving sends "
            f"{gate.max_min_history}",
            value=min_history,
        )
    return GateDecision(not reasons, challenger, m, reasons or ["all gate checks passed"], checks)
