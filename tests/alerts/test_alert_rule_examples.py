"""Worked examples of the drop-alert rule: baseline choice, aggregates, cooldown, output shape."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from salesloop.alerts import evaluate_alerts, subject_stats
from salesloop.config import AlertSettings, Recipients
from salesloop.schemas import ALERTS
from tests.alerts.alerts_testdata import ORIGIN, SeriesSpec, cfg_of, frames

NOW = datetime(2016, 5, 23, 6, 0, tzinfo=UTC)
WEEK_START = ORIGIN + timedelta(days=1)
TEN = (10.0,) * 7
FIVE = (5.0,) * 7


def run(
    specs: list[SeriesSpec],
    cfg: AlertSettings | None = None,
    recent: pd.DataFrame | None = None,
    now: datetime = NOW,
) -> pd.DataFrame:
    forecasts, history = frames(specs)
    return evaluate_alerts(
        forecasts,
        history,
        settings=cfg or cfg_of(),
        recent_alerts=recent if recent is not None else pd.DataFrame(),
        model_version="v7",
        event_id="evt-9",
        now=now,
    )


def spec(
    sid: str, trailing: tuple[float, ...], forecast: tuple[float, ...], **kw: object
) -> SeriesSpec:
    store, _ = sid.split("/")
    cat = str(kw.pop("cat_id", "FOODS"))
    return SeriesSpec(sid, store, cat, trailing, forecast, **kw)  # type: ignore[arg-type]


def test_a_clear_drop_produces_one_pending_row_with_the_alerts_schema() -> None:
    alerts = run([spec("CA_1/A", TEN, FIVE)])
    assert list(alerts.columns) == ALERTS.column_names
    assert len(alerts) == 1
    row = alerts.iloc[0]
    assert row["alert_key"] == f"series:CA_1/A|{WEEK_START.isoformat()}|forecast_drop"
    assert row["scope"] == "series"
    assert row["subject_id"] == "CA_1/A"
    assert row["week_start"] == WEEK_START
    assert row["forecast_origin"] == ORIGIN
    assert row["baseline"] == 70.0
    assert row["baseline_kind"] == "trailing_7d"
    assert row["forecast"] == 35.0
    assert row["lo"] == pytest.approx(31.5)
    assert row["hi"] == pytest.approx(38.5)
    assert row["drop_pct"] == pytest.approx(0.5)
    assert (row["model_version"], row["event_id"], row["status"]) == ("v7", "evt-9", "pending")
    assert row["message_id"] is None
    assert row["sent_at"] is None
    assert row["created_at"] == pd.Timestamp(NOW)
    assert row["recipients"] == ""  # AlertSettings() has no default list


def test_no_batch_no_alerts() -> None:
    forecasts, history = frames([spec("CA_1/A", TEN, FIVE)])
    out = evaluate_alerts(
        forecasts.iloc[0:0],
        history,
        settings=cfg_of(),
        recent_alerts=pd.DataFrame(),
        model_version="v",
        event_id="e",
        now=NOW,
    )
    assert out.empty
    assert list(out.columns) == ALERTS.column_names


def test_small_series_are_below_the_noise_floor_but_their_aggregate_is_not() -> None:
    # Two series of 14 units a week halve: each is under min_baseline_units (20), together 28.
    two = (2.0,) * 7
    one = (1.0,) * 7
    alerts = run([spec("CA_1/A", two, one, width=0.0), spec("CA_1/B", two, one, width=0.0)])
    assert alerts["alert_key"].tolist() == [
        f"store_category:CA_1/FOODS|{WEEK_START.isoformat()}|forecast_drop"
    ]
    row = alerts.iloc[0]
    assert (row["store_id"], row["cat_id"], row["subject_id"]) == ("CA_1", "FOODS", "CA_1/FOODS")
    assert row["baseline"] == 28.0
    assert row["forecast"] == 14.0


def test_aggregate_compares_only_the_series_of_the_batch() -> None:
    # A third FOODS series at CA_1 has history but no forecast in this batch: it must not inflate
    # the aggregate's baseline (which would fake a drop).
    forecasts, history = frames(
        [spec("CA_1/A", TEN, TEN), spec("CA_1/B", TEN, TEN), spec("CA_1/C", (100.0,) * 7, TEN)]
    )
    forecasts = forecasts.loc[forecasts["series_id"] != "CA_1/C"]
    stats = subject_stats(forecasts, history, interval_level=80)
    agg = stats.loc[stats["scope"] == "store_category"].iloc[0]
    assert agg["baseline"] == 140.0
    assert agg["n_series"] == 2
    out = evaluate_alerts(
        forecasts,
        history,
        settings=cfg_of(),
        recent_alerts=pd.DataFrame(),
        model_version="v",
        event_id="e",
        now=NOW,
    )
    assert out.empty


def test_a_single_series_aggregate_is_not_reported_twice() -> None:
    alerts = run([spec("CA_1/A", TEN, FIVE), spec("TX_1/B", TEN, TEN)])
    assert alerts["scope"].tolist() == ["series"]


def test_aggregate_drop_can_hide_in_the_series_but_show_in_the_total() -> None:
    # A falls 40 %, B (small) is flat: B alone has no alert, the FOODS total at CA_1 falls 36 %.
    alerts = run(
        [
            spec("CA_1/A", (20.0,) * 7, (12.0,) * 7, width=0.0),
            spec("CA_1/B", (2.0,) * 7, (2.0,) * 7, width=0.0),
        ]
    )
    assert set(alerts["subject_id"]) == {"CA_1/A", "CA_1/FOODS"}
    agg = alerts.set_index("subject_id").loc["CA_1/FOODS"]
    assert agg["drop_pct"] == pytest.approx(1 - 98 / 154)


def test_a_sustained_drop_is_caught_against_last_year_though_the_trailing_week_is_low() -> None:
    # Sales halved two weeks ago and the model has caught up: forecast 35 = trailing 35, so no
    # drop versus the trailing week. The same week last year sold 70: that is the baseline.
    alerts = run([spec("CA_1/A", FIVE, FIVE, last_year=TEN)])
    assert len(alerts) == 1
    row = alerts.iloc[0]
    assert row["baseline_kind"] == "same_week_last_year"
    assert row["baseline"] == 70.0
    assert row["forecast"] == 35.0
    assert row["hi"] == pytest.approx(38.5)
    assert row["lo"] == pytest.approx(31.5)
    assert row["drop_pct"] == pytest.approx(0.5)


def test_without_last_year_the_trailing_week_decides() -> None:
    alerts = run([spec("CA_1/A", TEN, FIVE)])
    assert len(alerts) == 1
    assert alerts.iloc[0]["baseline_kind"] == "trailing_7d"
    assert alerts.iloc[0]["baseline"] == 70.0
    assert alerts.iloc[0]["drop_pct"] == pytest.approx(0.5)


def test_a_seasonal_dip_that_also_happened_last_year_does_not_alert() -> None:
    # 50 % below the trailing week, but last year's same week sold 40: a forecast of 35 is only
    # 12.5 % below it. Last year decides, so the trailing drop does not count.
    seasonal = run([spec("CA_1/A", TEN, FIVE, last_year=(40 / 7,) * 7)])
    assert seasonal.empty
    # Last year sold 100 that week: the drop is real, and reported against last year.
    real = run([spec("CA_1/A", TEN, FIVE, last_year=(100 / 7,) * 7)])
    assert len(real) == 1
    assert real.iloc[0]["baseline_kind"] == "same_week_last_year"
    assert real.iloc[0]["baseline"] == pytest.approx(100.0)
    assert real.iloc[0]["drop_pct"] == pytest.approx(0.65)


def test_the_noise_floor_applies_to_the_chosen_baseline() -> None:
    # Trailing 70 would alert, but last year's week (14 units) is the baseline and under 20.
    assert run([spec("CA_1/A", TEN, (1.0,) * 7, last_year=(2.0,) * 7)]).empty
    # A trailing week under the floor does not matter when last year's week is the baseline.
    alerts = run([spec("CA_1/A", (2.0,) * 7, (1.0,) * 7, last_year=TEN)])
    assert alerts["baseline"].tolist() == [70.0]


def test_the_interval_must_clear_the_chosen_baseline() -> None:
    # 45 % below last year, but the interval top (50.76) is above last year's 49: no alert, even
    # though the trailing week (70) would be cleared.
    specs = [spec("CA_1/A", TEN, (27 / 7,) * 7, width=0.88, last_year=(7.0,) * 7)]
    forecasts, history = frames(specs)
    stats = subject_stats(forecasts, history, interval_level=80).iloc[0]
    assert stats["ly_drop_pct"] > 0.3
    assert stats["ly_hi"] >= stats["ly_baseline"]
    assert stats["hi"] < stats["baseline"]
    assert run(specs).empty


def test_aggregate_interval_is_the_root_sum_square_of_the_series_half_widths() -> None:
    # A: 70 +- 21, B: 140 +- 28 (both sold last year), C: 35 +- 0 (new). Summed bounds would
    # give 245 +- 49; as independent series the total is 245 +- sqrt(21^2 + 28^2 + 0^2) = 35.
    specs = [
        spec("CA_1/A", TEN, TEN, width=0.3, last_year=(30.0,) * 7),
        spec("CA_1/B", TEN, (20.0,) * 7, width=0.2, last_year=(20.0,) * 7),
        spec("CA_1/C", TEN, FIVE, width=0.0),
    ]
    forecasts, history = frames(specs)
    stats = subject_stats(forecasts, history, interval_level=80).set_index("subject_id")
    a = stats.loc["CA_1/A"]
    assert (a["forecast"], a["lo"], a["hi"]) == pytest.approx((70.0, 49.0, 91.0))
    agg = stats.loc["CA_1/FOODS"]
    assert agg["forecast"] == pytest.approx(245.0)
    assert agg["hi"] == pytest.approx(280.0)
    assert agg["lo"] == pytest.approx(210.0)
    assert agg["baseline"] == 210.0
    # Against last year only A and B count: 210 +- sqrt(21^2 + 28^2) = 35, vs 210 + 140 = 350.
    assert (agg["ly_n_series"], agg["ly_baseline"]) == (2, pytest.approx(350.0))
    assert agg["ly_forecast"] == pytest.approx(210.0)
    assert agg["ly_hi"] == pytest.approx(245.0)
    assert agg["ly_lo"] == pytest.approx(175.0)
    assert agg["ly_drop_pct"] == pytest.approx(0.4)

    alerts = run(specs).set_index("subject_id")
    # The total rose vs the trailing week (245 vs 210): only last year shows the drop, and the
    # row carries the numbers comparable to last year.
    row = alerts.loc["CA_1/FOODS"]
    assert row["baseline_kind"] == "same_week_last_year"
    assert (row["baseline"], row["forecast"]) == (pytest.approx(350.0), pytest.approx(210.0))
    assert (row["lo"], row["hi"]) == (pytest.approx(175.0), pytest.approx(245.0))
    assert row["drop_pct"] == pytest.approx(0.4)
    # A is 67 % below its last year; B is flat; C (no last year) halves vs its trailing week.
    assert alerts.loc["CA_1/A", "baseline_kind"] == "same_week_last_year"
    assert alerts.loc["CA_1/C", "baseline_kind"] == "trailing_7d"
    assert set(alerts.index) == {"CA_1/A", "CA_1/C", "CA_1/FOODS"}


def test_aggregate_lower_bound_is_clipped_at_zero() -> None:
    # A model may emit a negative lower bound; a total of units cannot be negative.
    forecasts, history = frames([spec("CA_1/A", TEN, (1.0,) * 7), spec("CA_1/B", TEN, (1.0,) * 7)])
    forecasts["lo_80"] = -10.0
    agg = subject_stats(forecasts, history, interval_level=80).set_index("subject_id")
    assert agg.loc["CA_1/FOODS", "lo"] == 0.0
    assert agg.loc["CA_1/A", "lo"] == -70.0  # a single series' bounds are reported as they are


def test_an_incomplete_last_year_week_is_not_a_baseline() -> None:
    forecasts, history = frames([spec("CA_1/A", TEN, FIVE, last_year=(40 / 7,) * 7)])
    ly_day = ORIGIN + timedelta(days=3 - 364)
    history = history.loc[history["date"] != ly_day]
    stats = subject_stats(forecasts, history, interval_level=80).iloc[0]
    assert not stats["ly_available"]
    assert pd.isna(stats["ly_baseline"])
    out = evaluate_alerts(
        forecasts,
        history,
        settings=cfg_of(),
        recent_alerts=pd.DataFrame(),
        model_version="v",
        event_id="e",
        now=NOW,
    )
    assert len(out) == 1  # the trailing week decides
    assert out.iloc[0]["baseline_kind"] == "trailing_7d"


def test_aggregate_last_year_uses_only_series_that_existed_then() -> None:
    # A existed last year (seasonal dip: LY 40), B is new (no LY). The aggregate compares A's
    # forecast and interval with A's last year, and so stays silent (against its trailing week,
    # 140 -> 70, it would have alerted).
    specs = [
        spec("CA_1/A", TEN, FIVE, last_year=(40 / 7,) * 7),
        spec("CA_1/B", TEN, FIVE),
    ]
    forecasts, history = frames(specs)
    stats = subject_stats(forecasts, history, interval_level=80).set_index("subject_id")
    agg = stats.loc["CA_1/FOODS"]
    assert agg["ly_baseline"] == pytest.approx(40.0)
    assert agg["ly_forecast"] == pytest.approx(35.0)
    assert agg["ly_hi"] == pytest.approx(38.5)
    assert agg["drop_pct"] == pytest.approx(0.5)  # both baselines stay in the stats
    assert set(run(specs)["subject_id"]) == {"CA_1/B"}


def test_missing_upper_bound_never_alerts() -> None:
    assert run([spec("CA_1/A", TEN, FIVE, hi_missing=True)]).empty


def test_a_short_history_counts_missing_days_as_zero() -> None:
    # Only 3 days of actuals (30 units): the 7-day baseline is 30, above the floor of 20.
    alerts = run([spec("CA_1/A", TEN, (1.0,) * 7, history_days=3)])
    assert alerts.iloc[0]["baseline"] == 30.0


def test_threshold_is_strict() -> None:
    cfg = cfg_of(drop_threshold=0.5)
    assert run([spec("CA_1/A", TEN, FIVE, width=0.0)], cfg).empty  # exactly 50 %: not beyond
    assert len(run([spec("CA_1/A", TEN, (4.9,) * 7, width=0.0)], cfg)) == 1


def _recent(alerts: pd.DataFrame, created_at: datetime, week: date) -> pd.DataFrame:
    out = alerts.copy()
    out["created_at"] = pd.Timestamp(created_at)
    out["week_start"] = week
    out["alert_key"] = [
        f"{sc}:{sub}|{week.isoformat()}|forecast_drop"
        for sc, sub in zip(out["scope"], out["subject_id"], strict=True)
    ]
    return out


def test_cooldown_silences_a_subject_that_alerted_recently_for_another_week() -> None:
    first = run([spec("CA_1/A", TEN, FIVE)])
    earlier_week = WEEK_START - timedelta(days=3)
    three_days_ago = _recent(first, NOW - timedelta(days=3), earlier_week)
    assert run([spec("CA_1/A", TEN, FIVE)], recent=three_days_ago).empty
    eight_days_ago = _recent(first, NOW - timedelta(days=8), earlier_week)
    assert len(run([spec("CA_1/A", TEN, FIVE)], recent=eight_days_ago)) == 1
    no_cooldown = cfg_of(cooldown_days=0)
    assert len(run([spec("CA_1/A", TEN, FIVE)], no_cooldown, recent=three_days_ago)) == 1


def test_an_existing_key_is_never_raised_again_even_after_the_cooldown() -> None:
    first = run([spec("CA_1/A", TEN, FIVE)])
    long_ago = _recent(first, NOW - timedelta(days=90), WEEK_START)
    assert run([spec("CA_1/A", TEN, FIVE)], recent=long_ago).empty


def test_cooldown_accepts_naive_timestamps_as_utc() -> None:
    first = run([spec("CA_1/A", TEN, FIVE)])
    naive = _recent(
        first, (NOW - timedelta(days=1)).replace(tzinfo=None), WEEK_START - timedelta(days=1)
    )
    assert run([spec("CA_1/A", TEN, FIVE)], recent=naive, now=NOW.replace(tzinfo=None)).empty


def test_recipients_are_store_and_category_owners() -> None:
    cfg = cfg_of(
        recipients=Recipients(
            default=["ops@example.com"],
            by_store={"CA_1": ["ca1@example.com"]},
            by_category={"FOODS": ["foods@example.com"]},
        )
    )
    alerts = run(
        [
            spec("CA_1/A", TEN, FIVE),
            spec("CA_1/B", TEN, FIVE),
            spec("TX_1/C", TEN, FIVE, cat_id="HOBBIES"),
        ],
        cfg,
    ).set_index("subject_id")
    assert alerts.loc["CA_1/A", "recipients"] == "ca1@example.com,foods@example.com"
    assert alerts.loc["CA_1/FOODS", "recipients"] == "ca1@example.com,foods@example.com"
    assert alerts.loc["TX_1/C", "recipients"] == "ops@example.com"


def test_duplicate_history_rows_are_refused() -> None:
    forecasts, history = frames([spec("CA_1/A", TEN, FIVE)])
    with pytest.raises(ValueError, match="several rows"):
        subject_stats(forecasts, pd.concat([history, history.iloc[:1]]), interval_level=80)


def test_duplicate_forecast_rows_are_refused() -> None:
    forecasts, history = frames([spec("CA_1/A", TEN, FIVE)])
    with pytest.raises(ValueError, match="duplicate"):
        subject_stats(pd.concat([forecasts, forecasts.iloc[:1]]), history, interval_level=80)


def test_unknown_interval_level_is_a_clear_error() -> None:
    forecasts, history = frames([spec("CA_1/A", TEN, FIVE)])
    with pytest.raises(ValueError, match="interval level 90"):
        subject_stats(forecasts, history, interval_level=90)


def test_recent_alerts_are_only_fetched_when_a_subject_is_a_candidate() -> None:
    """The function passes a query as a callable: no candidate, no warehouse round trip."""
    first = run([spec("CA_1/A", TEN, FIVE)])
    three_days_ago = _recent(first, NOW - timedelta(days=3), WEEK_START - timedelta(days=3))
    calls: list[int] = []

    def fetch() -> pd.DataFrame:
        calls.append(1)
        return three_days_ago

    fc, hist = frames([spec("CA_1/A", TEN, TEN)])
    quiet = evaluate_alerts(
        fc, hist, settings=cfg_of(), recent_alerts=fetch, model_version="v", event_id="e", now=NOW
    )
    assert quiet.empty and calls == []
    fc, hist = frames([spec("CA_1/A", TEN, FIVE)])
    silenced = evaluate_alerts(
        fc, hist, settings=cfg_of(), recent_alerts=fetch, model_version="v", event_id="e", now=NOW
    )
    assert silenced.empty and calls == [1]
