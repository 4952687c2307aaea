from __future__ import annotations

import math
from typing import Any

from salesloop.gate import evaluate_gate
from salesloop.training_settings import GateSettings

GATE = GateSettings(
    min_improvement_vs_seasonal_naive=0.10,
    max_degradation_vs_champion=0.02,
    max_coverage_gap=0.05,
    max_abs_bias=0.2,
)


def _m(rmsse: float, cov80: float = 0.8, cov95: float = 0.95, bias: float = 0.0) -> dict[str, Any]:
    return {"rmsse": rmsse, "mase": rmsse, "coverage_80": cov80, "coverage_95": cov95, "bias": bias}


def _gate(metrics: dict[str, Any], champion: str | None = "champion") -> Any:
    return evaluate_gate(
        metrics, challenger="new", baseline="SeasonalNaive", champion=champion, gate=GATE
    )


def test_a_good_challenger_passes() -> None:
    d = _gate({"new": _m(0.70), "SeasonalNaive": _m(0.90), "champion": _m(0.70)})
    assert d.accepted and d.status == "accepted"
    assert all(c["passed"] for c in d.checks.values())


def test_must_beat_seasonal_naive_by_the_margin() -> None:
    d = _gate({"new": _m(0.85), "SeasonalNaive": _m(0.90)}, champion=None)
    assert not d.accepted
    assert not d.checks["beats_seasonal_naive"]["passed"]
    assert "needs ≥ 10%" in d.reason
    assert d.checks["not_worse_than_champion"]["detail"] == "no champion yet"


def test_tolerance_against_the_champion() -> None:
    base = {"SeasonalNaive": _m(1.0), "champion": _m(0.70)}
    assert _gate({**base, "new": _m(0.714)}).accepted  # 2% worse: tolerated
    d = _gate({**base, "new": _m(0.72)})
    assert not d.accepted and not d.checks["not_worse_than_champion"]["passed"]


def test_all_failing_rules_are_reported() -> None:
    d = _gate(
        {
            "new": _m(0.95, cov80=0.6, cov95=0.99, bias=0.4),
            "SeasonalNaive": _m(0.90),
            "champion": _m(0.70),
        }
    )
    failed = {k for k, v in d.checks.items() if not v["passed"]}
    assert failed == {
        "beats_seasonal_naive",
        "not_worse_than_champion",
        "coverage_80",
        "bias",
    }
    assert len(d.reasons) == 4


def test_nan_never_passes() -> None:
    d = _gate({"new": _m(math.nan), "SeasonalNaive": _m(0.9)}, champion=None)
    assert not d.accepted and not d.checks["finite"]["passed"]
    missing = _gate({"SeasonalNaive": _m(0.9)}, champion=None)
    assert not missing.accepted and "no backtest metrics" in missing.reason


def test_optional_rules_can_be_switched_off() -> None:
    lax = GATE.model_copy(update={"max_coverage_gap": None, "max_abs_bias": None})
    d = evaluate_gate(
        {"new": _m(0.5, cov80=0.1, bias=3.0), "SeasonalNaive": _m(0.9)},
        challenger="new",
        baseline="SeasonalNaive",
        champion=None,
        gate=lax,
    )
    assert d.accepted
    assert d.to_dict()["status"] == "accepted"


def test_a_model_needing_more_history_than_serving_sends_is_rejected() -> None:
    capped = GATE.model_copy(update={"max_min_history": 63})
    metrics = {"new": _m(0.5), "SeasonalNaive": _m(0.9)}
    kw: dict[str, Any] = {"challenger": "new", "baseline": "SeasonalNaive", "champion": None}
    assert evaluate_gate(metrics, gate=capped, min_history=63, **kw).accepted
    d = evaluate_gate(metrics, gate=capped, min_history=97, **kw)
    assert not d.accepted and "needs 97 periods" in d.reason
    assert evaluate_gate(metrics, gate=GATE, min_history=97, **kw).accepted  # rule off
