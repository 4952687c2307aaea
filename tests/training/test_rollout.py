from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from salesloop.model import to_frame
from salesloop.registry import LocalRegistry
from salesloop.rollout import (
    Check,
    PredictorProbe,
    ProbeResult,
    ProbeUnavailable,
    canary_rollout,
    probe_history,
    sanity_checks,
)
from salesloop.training_settings import CanarySettings, SanitySettings
from tests.evaluation.fakes import MeanModel
from tests.training.helpers import daily_sales

ENDPOINT = "ep-test"
CANARY = CanarySettings(steps=(10, 100), health_requests=5, settle_s=0.0)
SANITY = SanitySettings(probe_series=10)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return probe_history(to_frame(daily_sales(20, 60)), 10, 28)


def _registry(
    tmp_path: Path, champion: MeanModel | None = None
) -> tuple[LocalRegistry, str | None]:
    reg = LocalRegistry(tmp_path / "registry")
    if champion is None:
        return reg, None
    v = reg.register(champion, {"status": "accepted"})
    reg.set_alias("champion", v, "initial")
    reg.deploy(ENDPOINT, v, 100, reason="initial")
    return reg, v


def _challenger(reg: LocalRegistry, model: MeanModel) -> str:
    v = reg.register(model, {"status": "accepted"})
    reg.set_alias("challenger", v, "passed the gate")
    return v


def _rollout(reg: LocalRegistry, version: str, history: pd.DataFrame, **kw: Any) -> Any:
    return canary_rollout(
        reg,
        ENDPOINT,
        version,
        history,
        canary=kw.pop("canary", CANARY),
        sanity=SANITY,
        horizon=7,
        levels=(80, 95),
        **kw,
    )


def _traffic_history(reg: LocalRegistry) -> list[dict[str, int]]:
    return [e["traffic"] for e in reg.audit() if e["action"] in ("deploy", "set_traffic")]


def test_first_version_goes_straight_to_full_traffic(tmp_path: Path, history: pd.DataFrame) -> None:
    reg, _ = _registry(tmp_path)
    v = _challenger(reg, MeanModel())
    result = _rollout(reg, v, history)
    assert result.promoted and not result.rolled_back
    assert [s.traffic for s in result.steps] == [0, 100]
    assert reg.alias("champion") == v and reg.alias("challenger") is None
    assert [(m.version, m.traffic) for m in reg.deployed(ENDPOINT)] == [(v, 100)]


def test_good_challenger_goes_through_the_canary_steps(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    reg, champ = _registry(tmp_path, MeanModel())
    v = _challenger(reg, MeanModel(window=14))
    seen: list[tuple[str, int]] = []

    def probe(version: str, traffic: int, requests: int) -> ProbeResult:
        seen.append((version, traffic))
        assert {m.version: m.traffic for m in reg.deployed(ENDPOINT)}[version] == traffic
        return ProbeResult(requests, 0, [5.0] * requests, canary_responses=1)

    result = _rollout(reg, v, history, probe=probe)
    assert result.promoted, result.reason
    assert seen == [(v, 10), (v, 100)]
    assert _traffic_history(reg)[-2:] == [{champ: 90, v: 10}, {v: 100}]
    assert reg.alias("champion") == v
    promoted = [e for e in reg.audit() if e["action"] == "set_alias" and e["alias"] == "champion"]
    assert promoted[-1]["previous"] == champ and "canary" in promoted[-1]["reason"]


def test_deliberately_bad_challenger_never_gets_traffic(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    reg, champ = _registry(tmp_path, MeanModel())
    v = _challenger(reg, MeanModel(factor=10.0))  # ten times the champion's forecast
    result = _rollout(reg, v, history)
    assert result.rolled_back and not result.promoted
    assert [s.traffic for s in result.steps] == [0]
    assert "total_vs_champion" in result.reason
    assert reg.alias("champion") == champ and reg.alias("challenger") is None
    assert [(m.version, m.traffic) for m in reg.deployed(ENDPOINT)] == [(champ, 100)]
    rollback = [e for e in reg.audit() if "rollback" in e["reason"]]
    assert {e["action"] for e in rollback} == {"set_traffic", "remove_alias"}


def test_failing_canary_rolls_back_and_the_champion_keeps_serving(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    reg, champ = _registry(tmp_path, MeanModel())
    v = _challenger(reg, MeanModel(window=14))

    def probe(version: str, traffic: int, requests: int) -> ProbeResult:
        return ProbeResult(requests, 2, [10.0] * requests, canary_responses=1, detail="(503)")

    result = _rollout(reg, v, history, probe=probe)
    assert result.rolled_back
    assert [s.traffic for s in result.steps] == [0, 10]
    assert "endpoint_errors: 2/5 requests failed (503)" in result.reason
    assert _traffic_history(reg)[-2:] == [{champ: 90, v: 10}, {champ: 100}]
    assert reg.alias("champion") == champ
    entry = reg.audit()[-2]
    assert entry["action"] == "set_traffic" and entry["reason"].startswith(
        f"rollback of {v} at 10%"
    )


@pytest.mark.parametrize(
    ("model", "check"),
    [
        (MeanModel(fail=True), "predict"),
        (MeanModel(nan=True), "finite"),
        (MeanModel(drop=2), "rows"),
    ],
)
def test_broken_versions_are_rolled_back_before_any_traffic(
    tmp_path: Path, history: pd.DataFrame, model: MeanModel, check: str
) -> None:
    reg, champ = _registry(tmp_path, MeanModel())
    v = _challenger(reg, model)
    result = _rollout(reg, v, history)
    assert result.rolled_back and f"{check}:" in result.reason
    assert [(m.version, m.traffic) for m in reg.deployed(ENDPOINT)] == [(champ, 100)]


def test_unreachable_endpoint_is_skipped_locally_and_fatal_when_required(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    def down(version: str, traffic: int, requests: int) -> ProbeResult:
        raise ProbeUnavailable("no server")

    reg, _ = _registry(tmp_path, MeanModel())
    v = _challenger(reg, MeanModel(window=14))
    assert _rollout(reg, v, history, probe=down).promoted
    strict = CANARY.model_copy(update={"require_endpoint": True})
    reg2, _ = _registry(tmp_path / "strict", MeanModel())
    v2 = _challenger(reg2, MeanModel(window=14))
    assert _rollout(reg2, v2, history, probe=down, canary=strict).rolled_back


def test_sanity_checks_catch_disordered_and_negative_intervals(history: pd.DataFrame) -> None:
    good = MeanModel().predict(history, 7, [80, 95])
    assert all(c.passed for c in sanity_checks(good, [80, 95], SANITY, good))
    bad = good.copy()
    yhat = bad["yhat"].to_numpy(dtype=float)
    lo80, hi80 = bad["lo_80"].to_numpy(dtype=float), bad["hi_80"].to_numpy(dtype=float)
    lo95, hi95 = bad["lo_95"].to_numpy(dtype=float), bad["hi_95"].to_numpy(dtype=float)
    lo80[0] = yhat[0] + 1  # lower bound above the forecast
    hi95[1] = hi80[1] - 0.5  # 95% interval inside the 80% one
    lo95[2] = -1.0
    bad = bad.assign(lo_80=lo80, hi_95=hi95, lo_95=lo95)
    failed = {c.name for c in sanity_checks(bad, [80, 95], SANITY, good) if not c.passed}
    assert failed == {"intervals_ordered", "non_negative"}
    far = good.assign(yhat=good["yhat"] * np.where(np.arange(len(good)) < 35, 5.0, 1.0))
    far[["hi_80", "hi_95"]] = far[["hi_80", "hi_95"]] * 5
    names = {c.name: c for c in sanity_checks(far, [80, 95], SANITY, good)}
    assert not names["series_vs_champion"].passed
    assert sanity_checks(good.iloc[:0], [80], SANITY) == [
        Check("shape", False, "forecast is empty or lacks columns []")
    ]


def test_probe_history_is_deterministic_and_recent(history: pd.DataFrame) -> None:
    frame = to_frame(daily_sales(20, 60))
    a = probe_history(frame, 6, 14)
    b = probe_history(frame, 6, 14)
    pd.testing.assert_frame_equal(a, b)
    assert a["unique_id"].nunique() == 6
    assert a["ds"].nunique() == 14 and a["ds"].max() == frame["ds"].max()
    top = frame.groupby("unique_id")["y"].sum().idxmax()
    assert top in set(a["unique_id"])


# -- with the real local model server --------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_canary_on_the_local_model_server(tmp_path: Path, history: pd.DataFrame) -> None:
    """A slow canary fails its latency check at 10% and is rolled back; the champion answers
    every request made during the canary and the rollback, and all of them afterwards."""
    from salesloop.config import load_settings
    from salesloop.predictor.codec import instances_from_frame
    from salesloop.predictor.endpoint import EndpointPredictor
    from salesloop.serving import DeploymentWatcher, ModelServer

    reg, champ = _registry(tmp_path, MeanModel())
    assert champ is not None
    fast = _challenger(reg, MeanModel(window=14))
    watcher = DeploymentWatcher(reg.root, ENDPOINT, poll_s=0.05).start()
    with ModelServer(watcher, endpoint_id=ENDPOINT) as server:
        overlay = tmp_path / "overlay.yaml"
        overlay.write_text(f"predictor:\n  api_endpoint: {server.url}\n  endpoint_id: {ENDPOINT}\n")
        settings = load_settings("local", extra_overlay=overlay)
        instances = instances_from_frame(history)
        background = EndpointPredictor(settings, max_attempts=1)
        failures: list[str] = []
        versions: list[str] = []
        stop = threading.Event()

        def hammer() -> None:
            i = 0
            while not stop.is_set():
                try:
                    batch = background.predict(instances[i % 8 : i % 8 + 2])
                    versions.extend(p["model_version"] for p in batch.predictions)
                except Exception as exc:
                    failures.append(repr(exc))
                i += 1

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        try:
            probe = PredictorProbe(EndpointPredictor(settings, max_attempts=1), instances)
            canary = CanarySettings(
                steps=(10, 100), health_requests=10, settle_s=0.3, max_latency_p95_ms=10_000
            )
            good = _rollout(reg, fast, history, probe=probe, canary=canary)
            assert good.promoted, good.reason
            served = good.steps[1].checks
            assert {c.name for c in served} >= {"canary_served", "served_finite"}
            # a challenger whose canary misses the (here impossibly tight) latency bound
            slow = _challenger(reg, MeanModel(window=7, width=1.0))
            canary_tight = canary.model_copy(update={"max_latency_p95_ms": 0.001})
            bad = _rollout(reg, slow, history, probe=probe, canary=canary_tight)
            assert bad.rolled_back and "endpoint_latency" in bad.reason
            assert [s.traffic for s in bad.steps] == [0, 10]
            stop.wait(0.3)  # the watcher polls every 50 ms: let in-flight requests finish
            versions.clear()
            stop.wait(0.5)
        finally:
            stop.set()
            thread.join(timeout=10)
        assert failures == []
        assert set(versions) == {fast}
        assert reg.alias("champion") == fast


class _FakePredictor:
    """Answers like the endpoint predictor: every ``every``-th request is served by the canary."""

    def __init__(self, every: int = 10, fail_every: int = 0, down: bool = False) -> None:
        self.every, self.fail_every, self.down = every, fail_every, down
        self.calls = 0

    def predict(self, instances: list[dict[str, Any]]) -> Any:
        from salesloop.predictor.base import PredictionBatch

        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("refused")
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("503")
        version = "v2" if self.calls % self.every == 0 else "v1"
        preds = [
            {
                "series_id": inst["series_id"],
                "forecast_origin": "2020-01-01",
                "target_dates": ["2020-01-02", "2020-01-03"],
                "yhat": [1.0, 2.0],
                "lo_80": [0.5, 1.0],
                "hi_80": [1.5, 3.0],
                "model_version": version,
            }
            for inst in instances
        ]
        return PredictionBatch(preds, version)


def test_predictor_probe_finds_the_canary_and_counts_errors() -> None:
    instances = [{"series_id": f"s{i}"} for i in range(7)]
    assert PredictorProbe.requests_for(10, 5) == 88  # 0.9**88 < 1e-4
    assert PredictorProbe.requests_for(100, 5) == 5
    fake = _FakePredictor(every=10)
    result = PredictorProbe(fake, instances, batch=2)("v2", 10, 5)
    assert result.canary_responses == 1 and result.errors == 0
    assert result.requests == 10 - 1  # the 10th call (9th timed) is the canary's; warm-up untimed
    assert result.canary_predictions is not None
    assert set(result.canary_predictions.columns) >= {"unique_id", "ds", "yhat", "lo_80", "hi_80"}
    flaky = PredictorProbe(_FakePredictor(every=1, fail_every=3), instances)("v2", 100, 6)
    assert flaky.errors == 2 and flaky.error_rate == pytest.approx(2 / 6)
    with pytest.raises(ProbeUnavailable):
        PredictorProbe(_FakePredictor(down=True), instances)("v2", 10, 5)
