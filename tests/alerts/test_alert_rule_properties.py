"""Properties of the drop-alert rule over generated batches (hypothesis).

Values are integers and interval widths are multiples of 1/4, so every sum (and every sum of
squared half-widths) is exact in binary floating point, and the one square root of an aggregate's
interval is correctly rounded on both sides: the oracle and the implementation cannot disagree by
rounding at a boundary.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloop.alerts import (
    BASELINE_LAST_YEAR,
    BASELINE_TRAILING,
    evaluate_alerts,
    subject_stats,
)
from salesloop.config import AlertSettings
from tests.alerts.alerts_testdata import HORIZON, SeriesSpec, cfg_of, frames, oracle

NOW = datetime(2016, 5, 23, 6, 0, tzinfo=UTC)
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

week = st.tuples(*[st.integers(0, 40) for _ in range(HORIZON)])
# Small series sit around the noise floor (min_baseline_units), alone or summed in an aggregate.
small_week = st.tuples(*[st.integers(0, 6) for _ in range(HORIZON)])
any_week = st.one_of(week, small_week)


def scaled(values: tuple[int, ...], factor: float) -> tuple[int, ...]:
    return tuple(int(v * factor) for v in values)


@st.composite
def series_specs(draw: st.DrawFn) -> list[SeriesSpec]:
    """Batches biased towards the interesting region: forecasts and last year near the trailing
    week or well below it, and several series per store x category so aggregates matter."""
    n = draw(st.integers(1, 5))
    factors = st.sampled_from([0.1, 0.4, 0.6, 0.7, 0.9, 1.0, 1.3])
    batch_factor = draw(factors)  # a store-wide drop hits several series at once
    specs = []
    for i in range(n):
        store = draw(st.sampled_from(["CA_1", "TX_1"]))
        cat = draw(st.sampled_from(["FOODS", "FOODS", "HOBBIES"]))
        trailing = draw(any_week)
        how = draw(st.sampled_from(["batch", "batch", "own", "random"]))
        if how == "random":
            forecast = draw(week)
        else:
            forecast = scaled(trailing, batch_factor if how == "batch" else draw(factors))
        ly_how = draw(st.sampled_from(["none", "random", "near"]))
        last_year = {
            "none": None,
            "random": draw(any_week),
            "near": scaled(trailing, 1 / draw(factors)),
        }[ly_how]
        specs.append(
            SeriesSpec(
                series_id=f"{store}/ITEM_{i}",
                store_id=store,
                cat_id=cat,
                trailing=trailing,
                forecast=forecast,
                width=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])),
                last_year=last_year,
                history_days=draw(st.sampled_from([3, 7, 28, 28])),
                hi_missing=draw(st.integers(0, 9)) == 0,
            )
        )
    return specs


alert_settings = st.builds(
    cfg_of,
    drop_threshold=st.sampled_from([0.1, 0.25, 0.3, 0.5]),
    cooldown_days=st.sampled_from([0, 7]),
    min_baseline_units=st.sampled_from([0.0, 20.0, 60.0]),
)


def run(
    specs: list[SeriesSpec], cfg: AlertSettings, recent: pd.DataFrame | None = None
) -> pd.DataFrame:
    forecasts, history = frames(specs)
    return evaluate_alerts(
        forecasts,
        history,
        settings=cfg,
        recent_alerts=recent if recent is not None else pd.DataFrame(),
        model_version="v1",
        event_id="evt-1",
        now=NOW,
    )


def subjects(alerts: pd.DataFrame) -> set[str]:
    return set(alerts["scope"] + ":" + alerts["subject_id"])


@settings(FAST, max_examples=60)
@given(series_specs(), alert_settings)
def test_alerts_match_the_loop_oracle(specs: list[SeriesSpec], cfg: AlertSettings) -> None:
    alerts = run(specs, cfg)
    assert subjects(alerts) == oracle(
        specs, threshold=cfg.drop_threshold, min_baseline=cfg.min_baseline_units
    )


def stats_of(specs: list[SeriesSpec], cfg: AlertSettings) -> pd.DataFrame:
    forecasts, history = frames(specs)
    return subject_stats(forecasts, history, interval_level=cfg.interval_level).set_index(
        ["scope", "subject_id"]
    )


@FAST
@given(series_specs(), alert_settings)
def test_no_alert_without_a_drop_beyond_the_threshold_vs_the_chosen_baseline(
    specs: list[SeriesSpec], cfg: AlertSettings
) -> None:
    alerts = run(specs, cfg)
    stats = stats_of(specs, cfg)
    for row in alerts.to_dict("records"):
        st_row = stats.loc[(row["scope"], row["subject_id"])]
        # The chosen baseline, and the forecast comparable to it, read from both baselines.
        if st_row["ly_available"]:
            kind, base, fc = BASELINE_LAST_YEAR, st_row["ly_baseline"], st_row["ly_forecast"]
        else:
            kind, base, fc = BASELINE_TRAILING, st_row["baseline"], st_row["forecast"]
        assert row["baseline_kind"] == kind
        assert float(row["baseline"]) == base
        assert float(row["forecast"]) == fc
        # Recomputed from the raw numbers, not from the drop_pct the rule reported.
        assert 1 - fc / base > cfg.drop_threshold
        assert float(row["drop_pct"]) > cfg.drop_threshold
        assert base >= cfg.min_baseline_units and base > 0


@FAST
@given(series_specs(), alert_settings)
def test_no_alert_when_the_interval_reaches_the_chosen_baseline(
    specs: list[SeriesSpec], cfg: AlertSettings
) -> None:
    alerts = run(specs, cfg)
    assert (alerts["hi"] < alerts["baseline"]).all()
    stats = stats_of(specs, cfg)
    ly = stats["ly_available"].astype(bool)
    hi = stats["ly_hi"].where(ly, stats["hi"])
    base = stats["ly_baseline"].where(ly, stats["baseline"])
    reaching = {f"{scope}:{sid}" for scope, sid in stats.index[~(hi < base)]}
    assert not (subjects(alerts) & reaching)
    # Widen every interval until its top reaches either baseline: silence everywhere.
    wide = [
        SeriesSpec(
            **{**s.__dict__, "width": 10_000.0, "forecast": tuple(max(1, y) for y in s.forecast)}
        )
        for s in specs
    ]
    assert run(wide, cfg).empty


@FAST
@given(series_specs(), alert_settings, st.integers(0, 2**31))
def test_alerts_are_deterministic_and_ignore_row_order(
    specs: list[SeriesSpec], cfg: AlertSettings, seed: int
) -> None:
    forecasts, history = frames(specs)
    kwargs = {
        "settings": cfg,
        "recent_alerts": pd.DataFrame(),
        "model_version": "v1",
        "event_id": "evt-1",
        "now": NOW,
    }
    first = evaluate_alerts(forecasts, history, **kwargs)  # type: ignore[arg-type]
    again = evaluate_alerts(forecasts, history, **kwargs)  # type: ignore[arg-type]
    shuffled = evaluate_alerts(
        forecasts.sample(frac=1.0, random_state=seed),
        history.sample(frac=1.0, random_state=seed + 1),
        **kwargs,  # type: ignore[arg-type]
    )
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, shuffled)


@FAST
@given(series_specs(), alert_settings)
def test_feeding_the_output_back_raises_nothing_new(
    specs: list[SeriesSpec], cfg: AlertSettings
) -> None:
    alerts = run(specs, cfg)
    assert alerts["alert_key"].is_unique
    assert run(specs, cfg, recent=alerts).empty


@FAST
@given(series_specs(), alert_settings, st.sampled_from([0.0, 0.25, 0.5, 0.75]), st.data())
def test_a_bigger_drop_never_removes_an_alert(
    specs: list[SeriesSpec], cfg: AlertSettings, cut: float, data: st.DataObject
) -> None:
    before = subjects(run(specs, cfg))
    # Lower some series' forecasts (and so their intervals): every drop only grows.
    lowered = [
        SeriesSpec(**{**s.__dict__, "forecast": tuple(int(y * (1 - cut)) for y in s.forecast)})
        if data.draw(st.booleans())
        else s
        for s in specs
    ]
    after = subjects(run(lowered, cfg))
    assert before <= after
