"""run_monitor end to end on DuckDB: record, decide, notify, call the retrain hook, stay idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage

import numpy as np
import pandas as pd
import pytest

from salesloop.config import Settings, load_settings
from salesloop.monitoring.monitor import MonitorResult, RetrainOutcome, run_monitor
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.monitoring import scenario


@pytest.fixture
def settings() -> Settings:
    return load_settings("local")


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(":memory:")
    yield w
    w.close()


def _metrics(wh: DuckDBWarehouse) -> pd.DataFrame:
    return wh.query("SELECT * FROM {{ monitoring_metrics }} ORDER BY run_id, metric, scope")


def test_healthy_model_no_breach_no_email_no_retrain(
    wh: DuckDBWarehouse, settings: Settings
) -> None:
    sc = scenario.build(wh, daily_jobs=7)
    sent: list[EmailMessage] = []
    calls: list[MonitorResult] = []
    r = run_monitor(
        wh,
        settings,
        now=sc.now,
        send_email=sent.append,
        on_retrain=lambda res: calls.append(res),  # type: ignore[func-returns-value]
    )
    assert r.model_version == "v1" and r.baseline_source == "training window of v1"
    assert r.breaches == [] and not r.retrain and sent == [] and calls == []
    mase = r.measurement("mase")
    assert mase is not None and mase.value is not None and 0.5 < mase.value < 1.0
    ratio = r.measurement("mase_vs_backtest")
    assert ratio is not None and ratio.value == pytest.approx(mase.value / 0.8)
    rows = _metrics(wh)
    assert set(rows["run_id"]) == {r.run_id}
    assert len(rows) == len(r.measurements)
    assert not rows["breached"].any()
    drift = rows[rows["scope"].str.startswith(("feature:", "prediction:"))].set_index("scope")
    assert set(drift.index) == {
        "feature:units",
        "feature:sell_price",
        "feature:snap",
        "prediction:yhat",
    }
    assert drift.loc["feature:snap", "metric"] == "linf_distance"
    assert (drift["value"] < 0.05).all()
    scopes = set(rows.loc[rows["metric"] == "mase", "scope"])
    assert scopes == {"overall", "cat:FOODS", "cat:HOBBIES", "store:CA_1", "store:TX_1"}
    # window recorded: the 28 days before now
    acc = rows[rows["metric"] == "mase"].iloc[0]
    assert pd.Timestamp(acc["window_end"]).date() == sc.end


def test_closed_store_breaches_emails_and_retrains(wh: DuckDBWarehouse, settings: Settings) -> None:
    sc = scenario.build(wh, daily_jobs=7, closed_store="TX_1")
    sent: list[EmailMessage] = []
    seen: list[MonitorResult] = []

    def retrain(res: MonitorResult) -> RetrainOutcome:
        seen.append(res)
        return RetrainOutcome("promoted", version="v2", reason="beat champion", model_kind="lgbm")

    r = run_monitor(wh, settings, now=sc.now, send_email=sent.append, on_retrain=retrain)
    assert r.retrain and len(seen) == 1 and seen[0].run_id == r.run_id
    described = "\n".join(r.reasons)
    assert "mase [store:TX_1]" in described and "mase [store:CA_1]" not in described
    assert r.outcome == RetrainOutcome(
        "promoted", version="v2", reason="beat champion", model_kind="lgbm"
    )
    # The email: to the ML owner, what moved and by how much, with a chart.
    (msg,) = sent
    assert msg["To"] == settings.alerts.ml_owner and "retraining triggered" in msg["Subject"]
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Retraining was triggered." in text
    row = next(
        line for line in text.splitlines() if line.startswith("mase ") and "store:TX_1" in line
    )
    assert "BREACHED" in row and "1.5" in row  # the value and its threshold
    assert "store:CA_1" not in text  # healthy per-scope rows are left out of the notice
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_payload(decode=True)[:8] == b"\x89PNG\r\n\x1a\n"  # type: ignore[index]
    html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert images[0]["Content-ID"].strip("<>") in html
    # Recorded: breaches, decision, trigger and outcome; the new version in model_versions.
    rows = _metrics(wh).set_index(["metric", "scope"])
    assert bool(rows.loc[("mase", "store:TX_1"), "breached"])
    assert bool(rows.loc[("retrain_decision", "overall"), "breached"])
    assert bool(rows.loc[("retrain_triggered", "overall"), "breached"])
    assert rows.loc[("retrain_outcome", "promoted:v2"), "value"] == 1.0
    mv = wh.query("SELECT * FROM {{ model_versions }} WHERE version = 'v2'")
    assert mv["status"].tolist() == ["champion"] and r.run_id in mv["reason"].iloc[0]


def test_rerun_is_idempotent_and_cooldown_holds(wh: DuckDBWarehouse, settings: Settings) -> None:
    sc = scenario.build(wh, daily_jobs=7, closed_store="TX_1")
    sent: list[EmailMessage] = []
    calls: list[str] = []

    def retrain(res: MonitorResult) -> RetrainOutcome:
        calls.append(res.run_id)
        return RetrainOutcome("rejected", version="v2", reason="worse than champion")

    first = run_monitor(wh, settings, now=sc.now, send_email=sent.append, on_retrain=retrain)
    before = _metrics(wh)
    again = run_monitor(wh, settings, now=sc.now, send_email=sent.append, on_retrain=retrain)
    assert again.suppressed_by is not None and "already recorded" in again.suppressed_by
    assert len(sent) == 1 and calls == [first.run_id]
    pd.testing.assert_frame_equal(_metrics(wh), before)
    # Next day: still breached, emailed, but no second pipeline run inside the cooldown.
    nxt = run_monitor(
        wh, settings, now=sc.now + timedelta(days=1), send_email=sent.append, on_retrain=retrain
    )
    assert nxt.reasons and not nxt.retrain and nxt.suppressed_by and "cooldown" in nxt.suppressed_by
    assert len(sent) == 2 and calls == [first.run_id]
    assert "no retraining was started" in sent[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # After the cooldown it triggers again.
    later = run_monitor(wh, settings, now=sc.now + timedelta(days=8), on_retrain=retrain)
    assert later.retrain and len(calls) == 2
    rejected = wh.query("SELECT status FROM {{ model_versions }} WHERE version = 'v2'")
    assert rejected["status"].tolist() == ["rejected"]


def test_failing_pipeline_is_recorded(wh: DuckDBWarehouse, settings: Settings) -> None:
    sc = scenario.build(wh, daily_jobs=7, closed_store="TX_1")

    def boom(res: MonitorResult) -> RetrainOutcome:
        raise RuntimeError("pipeline exploded")

    r = run_monitor(wh, settings, now=sc.now, on_retrain=boom)
    assert r.outcome is not None and r.outcome.status == "failed" and "exploded" in r.outcome.reason
    rows = _metrics(wh)
    assert rows.loc[rows["metric"] == "retrain_outcome", "scope"].tolist() == ["failed:-"]


def test_empty_warehouse_records_missing_data_without_breach(
    wh: DuckDBWarehouse, settings: Settings
) -> None:
    calls: list[MonitorResult] = []
    r = run_monitor(
        wh, settings, now=scenario._at(scenario.date(2016, 3, 1)), on_retrain=calls.append
    )  # type: ignore[arg-type]
    assert r.model_version is None and not r.retrain and r.breaches == [] and calls == []
    rows = _metrics(wh)
    assert not rows["breached"].any()
    judged = rows[~rows["metric"].isin(["retrain_decision", "retrain_triggered", "n_forecasts"])]
    assert judged["value"].isna().all() and len(judged) >= 8


def test_explicit_baseline_and_drift_breach(wh: DuckDBWarehouse, settings: Settings) -> None:
    sc = scenario.build(wh, daily_jobs=7)
    rng = np.random.default_rng(0)
    baseline = pd.DataFrame(
        {
            "units": rng.poisson(30, 5000).astype(float),  # ~5x the recent level
            "sell_price": rng.choice([2.0, 2.1, 2.2], 5000),
            "snap": rng.random(5000) < 0.33,
        }
    )
    r = run_monitor(wh, settings, now=sc.now, baseline=baseline)
    assert r.baseline_source.startswith("explicit")
    units = r.measurement("js_divergence", "feature:units")
    assert units is not None and units.breached and units.value is not None and units.value > 0.5
    # Drift alone does not retrain with retrain_on = [accuracy] ...
    assert not r.retrain
    # ... but does when the environment says so.
    s2 = settings.model_copy(
        update={"monitoring": {**settings.monitoring, "retrain_on": ["feature_drift"]}}
    )
    r2 = run_monitor(wh, s2, now=sc.now + timedelta(hours=1), baseline=baseline)
    assert r2.retrain and any("feature:units" in x for x in r2.reasons)


def test_prediction_drift_sees_a_model_that_changed_its_mind(
    wh: DuckDBWarehouse, settings: Settings
) -> None:
    sc = scenario.build(wh, daily_jobs=7)
    wh.apply(
        [
            __import__("salesloop.warehouse", fromlist=["Exec"]).Exec(
                "UPDATE {{ forecasts }} SET yhat = yhat * 3 WHERE forecast_origin >= @d",
                {"d": sc.end - timedelta(days=20)},
            )
        ]
    )
    r = run_monitor(wh, settings, now=sc.now)
    m = r.measurement("js_divergence", "prediction:yhat")
    assert m is not None and m.breached
