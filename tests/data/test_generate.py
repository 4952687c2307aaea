"""The generator: calibration against the M5 facts, determinism, hierarchy, shocks, streaming."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from salesloop.data.generate import (
    CATEGORIES,
    COLUMNS,
    DEPARTMENTS,
    M5_FACTS,
    STORES,
    Shock,
    calendar,
    calibration_report,
    generate_frame,
    write_parquet,
)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate_frame(600, 365, start=date(2013, 1, 1), seed=0)


@pytest.fixture(scope="module")
def report(sample: pd.DataFrame) -> dict:
    return calibration_report(sample)


# --- calibration -------------------------------------------------------------------------


def test_zero_share_overall_and_by_category(report: dict) -> None:
    assert report["zero_share"] == pytest.approx(M5_FACTS["zero_share"], abs=0.06)
    for cat, target in M5_FACTS["zero_share_by_cat"].items():
        assert report["zero_share_by_cat"][cat] == pytest.approx(target, abs=0.08), cat
    by_cat = report["zero_share_by_cat"]
    assert (
        by_cat["FOODS"] < by_cat["HOUSEHOLD"] < by_cat["HOBBIES"]
        or by_cat["FOODS"] < by_cat["HOBBIES"]
    )


def test_day_of_week_profile(report: dict) -> None:
    np.testing.assert_allclose(report["dow_profile"], M5_FACTS["dow_profile"], atol=0.05)


def test_category_shares_and_means(report: dict) -> None:
    for cat, target in M5_FACTS["cat_unit_share"].items():
        assert report["cat_unit_share"][cat] == pytest.approx(target, abs=0.05), cat
    for cat, target in M5_FACTS["mean_units_by_cat"].items():
        assert report["mean_units_by_cat"][cat] == pytest.approx(target, rel=0.25), cat


def test_store_shares(report: dict) -> None:
    for store, target in M5_FACTS["store_unit_share"].items():
        assert report["store_unit_share"][store] == pytest.approx(target, abs=0.035), store


def test_level_spread_and_dispersion(report: dict) -> None:
    q = report["series_mean_quantiles_28d"]
    facts = M5_FACTS["series_mean_quantiles_28d"]
    for key in ("q25", "q50", "q75", "q90"):
        assert facts[key] / 1.6 <= q[key] <= facts[key] * 1.6, key
    assert 1.05 <= report["median_var_to_mean_28d"] <= 1.5
    assert report["total_daily_units_at_m5_scale"] == pytest.approx(
        M5_FACTS["total_daily_units_m5"], rel=0.15
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_calibration_holds_for_other_seeds(seed: int) -> None:
    """Calibration must not be a property of seed 0 only."""
    rep = calibration_report(generate_frame(600, 365, seed=seed))
    assert rep["zero_share"] == pytest.approx(M5_FACTS["zero_share"], abs=0.06)
    for cat, target in M5_FACTS["cat_unit_share"].items():
        assert rep["cat_unit_share"][cat] == pytest.approx(target, abs=0.05), cat
    np.testing.assert_allclose(rep["dow_profile"], M5_FACTS["dow_profile"], atol=0.05)


def test_calibration_report_reads_a_known_frame() -> None:
    """The report itself must compute what it claims (a hand-made frame with known answers)."""
    days = pd.date_range("2020-01-06", periods=28, freq="D")  # a Monday, four whole weeks
    rows = []
    for store, item, cat, units in (
        ("CA_1", "FOODS_1_001", "FOODS", 3.0),
        ("TX_1", "HOBBIES_1_001", "HOBBIES", 0.0),
    ):
        for d in days:
            rows.append(
                {"store_id": store, "item_id": item, "cat_id": cat, "date": d, "units": units}
            )
    rep = calibration_report(pd.DataFrame(rows))
    assert rep["zero_share"] == 0.5
    assert rep["zero_share_by_cat"] == {"FOODS": 0.0, "HOBBIES": 1.0}
    assert rep["cat_unit_share"] == {"FOODS": 1.0, "HOBBIES": 0.0}
    assert rep["dow_profile"] == pytest.approx([1.0] * 7)
    assert rep["no_sale_series_share_28d"] == 0.5
    assert rep["weekly_cv_28d"] == pytest.approx(0.0)


# --- structure ---------------------------------------------------------------------------


def test_columns_types_and_hierarchy(sample: pd.DataFrame) -> None:
    assert tuple(sample.columns) == COLUMNS
    assert sample["units"].dtype == np.float64
    assert sample["sell_price"].dtype == np.float64
    assert sample["snap"].dtype == bool
    assert sample["date"].dtype == "datetime64[ns]"
    units = sample["units"].to_numpy()
    assert (units >= 0).all() and (units == np.round(units)).all()
    assert set(sample["store_id"]) == set(STORES)
    assert set(sample["cat_id"]) == set(CATEGORIES)
    assert set(sample["dept_id"]) == {d for d, _, _ in DEPARTMENTS}
    assert sample["item_id"].str.fullmatch(r"(FOODS|HOUSEHOLD|HOBBIES)_\d_\d{3}").all()
    assert (sample["item_id"].str.rsplit("_", n=1).str[0] == sample["dept_id"]).all()
    assert (sample["store_id"].str[:2] == sample["state_id"]).all()
    assert len(sample) == 600 * 365
    assert sample.groupby(["store_id", "item_id"]).size().eq(365).all()
    # Series share by category follows M5's item counts (1437 / 1047 / 565 of 3049).
    share = sample.drop_duplicates(["store_id", "item_id"])["cat_id"].value_counts(normalize=True)
    assert share["FOODS"] == pytest.approx(1437 / 3049, abs=0.02)
    assert share["HOBBIES"] == pytest.approx(565 / 3049, abs=0.02)


def test_full_m5_hierarchy() -> None:
    df = generate_frame(30_490, 2)
    assert len(df) == 60_980
    series = df.drop_duplicates(["store_id", "item_id"])
    assert len(series) == 30_490 and series["item_id"].nunique() == 3_049
    assert series.groupby("store_id").size().eq(3_049).all()
    items = series.drop_duplicates("item_id")["dept_id"].value_counts().to_dict()
    assert items == {d: n for d, _, n in DEPARTMENTS}


def test_small_selection_keeps_all_stores_and_categories() -> None:
    df = generate_frame(30, 10)
    assert set(df["store_id"]) == set(STORES)
    assert set(df["cat_id"]) == set(CATEGORIES)


def test_christmas_closed_and_events_named(sample: pd.DataFrame) -> None:
    xmas = sample[sample["date"] == pd.Timestamp("2013-12-25")]
    assert (xmas["units"] == 0).all()
    assert (xmas["event_name"] == "Christmas").all()
    assert (
        sample.loc[sample["date"] == pd.Timestamp("2013-11-28"), "event_name"]
        .eq("Thanksgiving")
        .all()
    )
    assert sample.loc[sample["date"] == pd.Timestamp("2013-03-31"), "event_name"].eq("Easter").all()
    assert sample.loc[sample["date"] == pd.Timestamp("2013-01-02"), "event_name"].isna().all()


def test_snap_days_and_foods_uplift(sample: pd.DataFrame) -> None:
    snap_days = (
        sample.drop_duplicates(["state_id", "date"])
        .groupby(["state_id", sample["date"].dt.to_period("M")])["snap"]
        .sum()
    )
    assert (snap_days == 10).all()
    foods = sample[(sample["cat_id"] == "FOODS") & (sample["event_name"].isna())]
    by_snap = foods.groupby("snap")["units"].mean()
    assert by_snap[True] > by_snap[False] * 1.03


def test_prices_weekly_with_changes_and_elasticity(sample: pd.DataFrame) -> None:
    launched = sample.dropna(subset=["sell_price"])
    assert (launched["sell_price"] > 0).all()
    # Prices change only on Saturdays (Walmart weeks start on Saturday).
    s = launched.sort_values(["store_id", "item_id", "date"])
    same_series = (s["store_id"] == s["store_id"].shift()) & (s["item_id"] == s["item_id"].shift())
    changed = same_series & (s["sell_price"] != s["sell_price"].shift())
    assert changed.sum() > 100
    assert (s.loc[changed, "date"].dt.weekday == 5).all()
    # Discounted weeks sell more than regular weeks of the same series.
    ref = s.groupby(["store_id", "item_id"])["sell_price"].transform("median")
    promo = s["sell_price"] < 0.85 * ref
    assert promo.sum() > 100
    ratio = (
        s["units"][promo] / s.groupby(["store_id", "item_id"])["units"].transform("mean")[promo]
    ).mean()
    assert ratio > 1.15


def test_launches_have_leading_zeros_without_price(sample: pd.DataFrame) -> None:
    priced = sample[sample["sell_price"].notna()]
    first_sale_day = priced.groupby(["store_id", "item_id"])["date"].min()
    launched_late = (first_sale_day > sample["date"].min()).mean()
    assert 0.03 <= launched_late <= 0.25
    assert (sample.loc[sample["sell_price"].isna(), "units"] == 0).all()


def test_intermittent_zero_runs_exist(sample: pd.DataFrame) -> None:
    """Stock-outs: fast movers (mean >= 5/day) still have runs of >= 5 zero days."""
    fast = sample.groupby(["store_id", "item_id"])["units"].transform("mean") >= 5
    s = sample[fast & sample["sell_price"].notna() & sample["event_name"].ne("Christmas")]
    zero = s["units"].eq(0).to_numpy()
    key = (s["store_id"] + s["item_id"]).to_numpy()
    run, longest = 0, 0
    for i in range(len(zero)):
        run = run + 1 if zero[i] and (i == 0 or key[i] == key[i - 1]) else int(zero[i])
        longest = max(longest, run)
    assert longest >= 5


def test_calendar_rules() -> None:
    cal = calendar(date(2016, 1, 1), 366)
    names = {
        date(2016, 1, 1) + pd.Timedelta(days=i).to_pytimedelta(): cal.event_names[c]
        for i, c in enumerate(cal.event_code)
        if c >= 0
    }
    assert names[date(2016, 3, 27)] == "Easter"
    assert names[date(2016, 5, 1)] == "OrthodoxEaster"
    assert names[date(2016, 11, 24)] == "Thanksgiving"
    assert names[date(2016, 5, 30)] == "MemorialDay"
    assert names[date(2016, 2, 7)] == "SuperBowl"


# --- determinism --------------------------------------------------------------------------


def test_same_seed_same_frame() -> None:
    a = generate_frame(260, 60, seed=7)
    b = generate_frame(260, 60, seed=7)
    pd.testing.assert_frame_equal(a, b)


def test_different_seed_different_frame() -> None:
    a = generate_frame(260, 60, seed=7)
    b = generate_frame(260, 60, seed=8)
    assert not a["units"].equals(b["units"])
    assert (a[["store_id", "item_id", "date"]] == b[["store_id", "item_id", "date"]]).all().all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_series"):
        generate_frame(0, 10)
    with pytest.raises(ValueError, match="n_series"):
        generate_frame(30_491, 10)
    with pytest.raises(ValueError, match="n_days"):
        generate_frame(10, 0)


# --- shocks --------------------------------------------------------------------------------


def test_category_drop_scales_only_its_window_and_category() -> None:
    start, shock_day = date(2014, 1, 1), date(2014, 3, 1)
    base = generate_frame(500, 120, start=start, seed=3)
    shock = Shock("category_drop", shock_day, 0.4, category="FOODS")
    shocked = generate_frame(500, 120, start=start, seed=3, shocks=[shock])
    inside = (base["date"] >= pd.Timestamp(shock_day)) & (base["cat_id"] == "FOODS")
    pd.testing.assert_frame_equal(base[~inside], shocked[~inside])
    ratio = shocked.loc[inside, "units"].sum() / base.loc[inside, "units"].sum()
    assert ratio == pytest.approx(0.4, abs=0.03)
    assert (shocked.loc[inside, "units"] <= base.loc[inside, "units"]).all()


def test_category_drop_in_one_store_with_end() -> None:
    start = date(2014, 1, 1)
    shock = Shock(
        "category_drop",
        date(2014, 1, 10),
        0.0,
        category="HOUSEHOLD_1",
        store="CA_2",
        end=date(2014, 1, 20),
    )
    df = generate_frame(300, 40, start=start, shocks=[shock])
    hit = (
        (df["store_id"] == "CA_2")
        & (df["dept_id"] == "HOUSEHOLD_1")
        & df["date"].between("2014-01-10", "2014-01-20")
    )
    assert (df.loc[hit, "units"] == 0).all()
    after = (
        (df["store_id"] == "CA_2") & (df["dept_id"] == "HOUSEHOLD_1") & (df["date"] > "2014-01-20")
    )
    assert df.loc[after, "units"].sum() > 0


def test_store_closure_and_uplift() -> None:
    start = date(2014, 1, 1)
    base = generate_frame(300, 60, start=start, seed=1)
    closed = generate_frame(
        300,
        60,
        start=start,
        seed=1,
        shocks=[Shock("store_closure", date(2014, 2, 1), 0.0, store="WI_3")],
    )
    hit = (closed["store_id"] == "WI_3") & (closed["date"] >= "2014-02-01")
    assert (closed.loc[hit, "units"] == 0).all()
    assert base.loc[hit, "units"].sum() > 0
    up = generate_frame(
        300,
        60,
        start=start,
        seed=1,
        shocks=[Shock("category_drop", date(2014, 2, 1), 2.0, category="HOBBIES")],
    )
    sel = (up["cat_id"] == "HOBBIES") & (up["date"] >= "2014-02-01")
    assert up.loc[sel, "units"].sum() / base.loc[sel, "units"].sum() == pytest.approx(2.0, rel=0.1)


def test_invalid_shocks() -> None:
    with pytest.raises(ValueError, match="category"):
        Shock("category_drop", date(2014, 1, 1), 0.5)
    with pytest.raises(ValueError, match="store"):
        Shock("store_closure", date(2014, 1, 1))
    with pytest.raises(ValueError, match="unknown store"):
        Shock("store_closure", date(2014, 1, 1), store="NY_1")
    with pytest.raises(ValueError, match="factor"):
        Shock("category_drop", date(2014, 1, 1), -1.0, category="FOODS")
    with pytest.raises(ValueError, match="before"):
        Shock("category_drop", date(2014, 1, 2), 0.5, category="FOODS", end=date(2014, 1, 1))


# --- streaming writer ------------------------------------------------------------------------


def test_parquet_streaming_matches_frame(tmp_path: Path) -> None:
    shocks = [Shock("category_drop", date(2013, 1, 20), 0.5, category="FOODS")]
    path = tmp_path / "out" / "sales.parquet"
    stats = write_parquet(path, 620, 45, seed=5, shocks=shocks, chunk_series=250, progress=False)
    assert stats.rows == 620 * 45 and stats.row_groups == 3 and stats.bytes == path.stat().st_size
    meta = pq.ParquetFile(path)
    assert meta.metadata.num_row_groups == 3
    assert meta.schema_arrow.field("date").type == "date32[day]"
    assert str(meta.schema_arrow.field("store_id").type).startswith("dictionary")
    got = pd.read_parquet(path)
    for col in ("store_id", "item_id", "dept_id", "cat_id", "state_id", "event_name"):
        got[col] = got[col].astype(object).where(got[col].notna(), None)
    got["date"] = pd.to_datetime(got["date"]).astype("datetime64[ns]")
    want = generate_frame(620, 45, seed=5, shocks=shocks)
    pd.testing.assert_frame_equal(got, want)
    assert stats.units_total == want["units"].sum()
    assert not path.with_name("sales.parquet.tmp").exists()


def test_chunk_size_does_not_change_rows(tmp_path: Path) -> None:
    a = write_parquet(tmp_path / "a.parquet", 600, 20, chunk_series=250, progress=False)
    b = write_parquet(tmp_path / "b.parquet", 600, 20, chunk_series=5000, progress=False)
    assert (a.row_groups, b.row_groups) == (3, 1)
    left, right = pd.read_parquet(a.path), pd.read_parquet(b.path)
    for col in ("store_id", "item_id", "event_name"):
        left[col], right[col] = left[col].astype(object), right[col].astype(object)
    pd.testing.assert_frame_equal(left, right)


def test_writer_rejects_bad_chunk(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_series"):
        write_parquet(tmp_path / "x.parquet", 10, 10, chunk_series=0, progress=False)
