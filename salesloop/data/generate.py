"""A deterministic daily retail-sales generator calibrated to the M5 statistics.

Why a generator at all: no installable package ships a multi-year daily store history, and the loop
(ingest → event → forecast → alert → retrain) needs data with the structure that makes forecasting
hard in retail: intermittency, weekly and SNAP seasonality, closures, price promotions, launches
and stock-outs. The targets are the measurements in ``/work/shared/M5_FACTS.md`` (kept in
:data:`M5_FACTS`); :func:`calibration_report` measures the same statistics on generated data so
tests can hold the generator to them. Generated numbers are never M5 accuracy.

Model, per series *s* and day *t*::

    rate[s, t] = level[s] · day_profile[cat, t] · snap[state, cat, t] · trend[s, t] · price[s, t]
    units[s, t] ~ Poisson(rate · Gamma(k, 1/k)) · launched[s, t] · in_stock[s, t]

``day_profile`` holds the M5 day-of-week profile, a mild yearly cycle and calendar events
(Christmas multiplies by 0: stores closed). Levels are log-normal around category medians, split
into an item part shared by the ten stores and a store-item part, scaled by each store's M5 share.

Determinism and scale: series are generated in fixed blocks of :data:`BLOCK_SERIES` (25 items x
10 stores) with one random stream per block; per-item and per-series parameters come from streams
that do not depend on ``n_series`` (only a per-category level factor does, see
:func:`_level_scale`). So the output is a pure function of (seed, n_series, n_days, start, shocks),
the streaming Parquet writer produces exactly the rows of :func:`generate_frame` whatever its
``chunk_series``, and all work is numpy over (series x days) blocks. Small selections keep the
hierarchy: series are taken as a prefix of a fixed item order that interleaves categories and
departments in M5 proportion, each item in all ten stores.

:func:`demand_truth` returns the hidden state behind the units (expected demand, stock-out spells):
what the accuracy benchmark's oracles forecast from, to measure the best accuracy the data allows.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# --------------------------------------------------------------------------------------------
# Targets: the M5 bottom-level statistics (30,490 item-store series, 2016-04-25 .. 2016-05-22).
# --------------------------------------------------------------------------------------------

M5_FACTS: dict[str, Any] = {
    "zero_share": 0.544,
    "zero_share_by_cat": {"FOODS": 0.448, "HOUSEHOLD": 0.602, "HOBBIES": 0.682},
    "no_sale_series_share_28d": 0.027,
    "series_mean_quantiles_28d": {
        "q10": 0.11,
        "q25": 0.29,
        "q50": 0.64,
        "q75": 1.46,
        "q90": 3.11,
        "q99": 13.25,
    },
    "median_var_to_mean_28d": 1.21,
    "dow_profile": [0.970, 0.898, 0.872, 0.869, 0.985, 1.196, 1.210],
    "total_daily_units_m5": 43_992.0,
    "cat_unit_share": {"FOODS": 0.676, "HOUSEHOLD": 0.230, "HOBBIES": 0.094},
    "mean_units_by_cat": {"FOODS": 2.07, "HOUSEHOLD": 0.97, "HOBBIES": 0.73},
    "store_unit_share": {
        "CA_1": 0.109,
        "CA_2": 0.108,
        "CA_3": 0.142,
        "CA_4": 0.064,
        "TX_1": 0.079,
        "TX_2": 0.094,
        "TX_3": 0.095,
        "WI_1": 0.091,
        "WI_2": 0.125,
        "WI_3": 0.093,
    },
    "weekly_cv_28d": 0.043,
}

M5_SERIES = 30_490

# --------------------------------------------------------------------------------------------
# Hierarchy
# --------------------------------------------------------------------------------------------

STATES: tuple[str, ...] = ("CA", "TX", "WI")
STORES: tuple[str, ...] = (
    "CA_1",
    "CA_2",
    "CA_3",
    "CA_4",
    "TX_1",
    "TX_2",
    "TX_3",
    "WI_1",
    "WI_2",
    "WI_3",
)
STORE_STATE: tuple[int, ...] = (0, 0, 0, 0, 1, 1, 1, 2, 2, 2)
CATEGORIES: tuple[str, ...] = ("FOODS", "HOUSEHOLD", "HOBBIES")
# (department, category index, number of items in M5)
DEPARTMENTS: tuple[tuple[str, int, int], ...] = (
    ("FOODS_1", 0, 216),
    ("FOODS_2", 0, 398),
    ("FOODS_3", 0, 823),
    ("HOUSEHOLD_1", 1, 532),
    ("HOUSEHOLD_2", 1, 515),
    ("HOBBIES_1", 2, 416),
    ("HOBBIES_2", 2, 149),
)
N_ITEMS = sum(n for _, _, n in DEPARTMENTS)
N_STORES = len(STORES)
ITEMS_PER_BLOCK = 25
BLOCK_SERIES = ITEMS_PER_BLOCK * N_STORES

# --------------------------------------------------------------------------------------------
# Calibration knobs (tuned with calibration_report against M5_FACTS; see tests/data).
# --------------------------------------------------------------------------------------------

# Median daily rate of a launched, in-stock series at regular price, and the log-sd of levels.
CAT_MEDIAN = np.array([1.150, 0.603, 0.387])
CAT_SIGMA = np.array([1.136, 1.029, 1.202])
ITEM_VARIANCE_SHARE = 0.8  # the rest is store-item specific
# Relative level of departments within their category (normalized to an item-weighted mean of 1).
DEPT_LEVEL = np.array([0.75, 0.60, 1.25, 1.40, 0.60, 1.15, 0.55])
# M5 store shares of units, as multipliers around 1.
STORE_LEVEL = np.array([M5_FACTS["store_unit_share"][s] * N_STORES for s in STORES])
DOW_PROFILE = np.array(M5_FACTS["dow_profile"])  # Monday first, like date.weekday()
GAMMA_SHAPE = 4.0  # day-to-day overdispersion: var/mean = 1 + rate / k
SNAP_DAYS: dict[str, frozenset[int]] = {
    "CA": frozenset(range(1, 11)),
    "TX": frozenset({1, 3, 5, 6, 7, 9, 11, 12, 13, 15}),
    "WI": frozenset({2, 3, 5, 6, 8, 9, 11, 12, 14, 15}),
}
# SNAP uplift per state (rows) and category (columns).
SNAP_UPLIFT = np.array([[1.07, 1.01, 1.01], [1.10, 1.01, 1.01], [1.14, 1.01, 1.01]])
YEARLY_AMPLITUDE = np.array([0.03, 0.04, 0.06])
TREND_SD_PER_YEAR = 0.06
TREND_REFERENCE = date(2016, 4, 25)  # the M5 evaluation window the facts were measured on
NEW_ITEM_SHARE = 0.10  # items launched inside the generated window (leading zeros)
LAUNCH_WINDOW = 0.85  # launches happen in the first 85 % of the window
STORE_LAUNCH_LAG_DAYS = 10.0  # mean extra delay until a store lists a new item
OOS_SPELLS_PER_DAY = 1 / 150  # stock-out spell starts per series-day (median series)
OOS_MEAN_DAYS = 6.0
# Prices: log-normal base price per department (median $, log-sd).
DEPT_PRICE = np.array(
    [[2.8, 0.5], [3.2, 0.6], [2.6, 0.5], [4.8, 0.6], [5.2, 0.6], [4.0, 0.8], [5.5, 0.7]]
)
PRICE_CHANGE_PER_WEEK = 1 / 45  # permanent item-level price moves
PRICE_CHANGE_SD = 0.07
PROMO_PER_WEEK = 1 / 26  # one-week store-level promotions
CAT_ELASTICITY = np.array([1.2, 1.5, 1.8])

# Calendar events: name → multiplier per category (FOODS, HOUSEHOLD, HOBBIES).
EVENT_EFFECT: dict[str, tuple[float, float, float]] = {
    "Christmas": (0.0, 0.0, 0.0),
    "Thanksgiving": (0.80, 0.75, 0.75),
    "NewYear": (0.90, 0.88, 0.88),
    "SuperBowl": (1.08, 1.00, 1.02),
    "ValentinesDay": (1.02, 1.00, 1.10),
    "Easter": (0.95, 0.93, 0.95),
    "IndependenceDay": (1.02, 0.95, 0.97),
    "Halloween": (1.02, 1.00, 1.12),
    "MemorialDay": (1.03, 1.00, 1.00),
    "LaborDay": (1.03, 1.00, 1.00),
}

Schema = pa.schema(
    [
        ("store_id", pa.dictionary(pa.int32(), pa.string())),
        ("item_id", pa.dictionary(pa.int32(), pa.string())),
        ("dept_id", pa.dictionary(pa.int32(), pa.string())),
        ("cat_id", pa.dictionary(pa.int32(), pa.string())),
        ("state_id", pa.dictionary(pa.int32(), pa.string())),
        ("date", pa.date32()),
        ("units", pa.float64()),
        ("sell_price", pa.float64()),
        ("snap", pa.bool_()),
        ("event_name", pa.dictionary(pa.int32(), pa.string())),
    ]
)
COLUMNS: tuple[str, ...] = tuple(Schema.names)


# --------------------------------------------------------------------------------------------
# Shocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shock:
    """A scripted change for demos: a category's sales drop, or a store closes.

    ``category_drop`` multiplies the demand of ``category`` (a category like ``FOODS`` or a
    department like ``FOODS_3``), optionally only in ``store``, by ``factor`` from ``start`` to
    ``end`` (inclusive; open-ended when ``None``). ``store_closure`` sets the units of ``store``
    (optionally only one ``category``) to zero; its ``factor`` is ignored. Shocks act on sampled
    units through their own random stream (binomial thinning for factors below 1, extra Poisson
    demand above 1), so every row outside a shock is identical to the run without it.
    """

    kind: Literal["category_drop", "store_closure"]
    start: date
    factor: float = 0.0
    category: str | None = None
    store: str | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("category_drop", "store_closure"):
            raise ValueError(
                f"unknown shock kind {self.kind!r}; expected category_drop or store_closure"
            )
        if self.kind == "category_drop" and not self.category:
            raise ValueError("a category_drop shock needs a category (e.g. FOODS or FOODS_3)")
        if self.kind == "store_closure" and not self.store:
            raise ValueError("a store_closure shock needs a store (e.g. CA_1)")
        if self.store is not None and self.store not in STORES:
            raise ValueError(f"unknown store {self.store!r}; expected one of {', '.join(STORES)}")
        known = set(CATEGORIES) | {d for d, _, _ in DEPARTMENTS}
        if self.category is not None and self.category not in known:
            raise ValueError(
                f"unknown category {self.category!r}; expected one of {', '.join(sorted(known))}"
            )
        if not (math.isfinite(self.factor) and self.factor >= 0):
            raise ValueError(f"shock factor must be a finite number >= 0, got {self.factor}")
        if self.end is not None and self.end < self.start:
            raise ValueError(f"shock ends ({self.end}) before it starts ({self.start})")


# --------------------------------------------------------------------------------------------
# Series selection (hierarchy-preserving prefixes)
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _item_order() -> tuple[NDArray[np.int64], tuple[str, ...]]:
    """All 3,049 items ordered so that every prefix has the M5 category and department mix.

    Each next item goes to the category furthest behind its M5 share, then to that category's
    department furthest behind its share, so the first three items (30 series) already cover the
    three categories and ``n_series`` only decides how long a prefix of this fixed order is taken.
    """
    caps = np.array([n for _, _, n in DEPARTMENTS])
    dept_cat = np.array([c for _, c, _ in DEPARTMENTS])
    cat_caps = np.array([caps[dept_cat == c].sum() for c in range(len(CATEGORIES))])
    counts = np.zeros(len(caps), dtype=np.int64)
    cat_counts = np.zeros(len(CATEGORIES), dtype=np.int64)
    dept_of = np.empty(N_ITEMS, dtype=np.int64)
    names: list[str] = []
    for k in range(N_ITEMS):
        deficit = (k + 1) * cat_caps / N_ITEMS - cat_counts
        deficit[cat_counts >= cat_caps] = -np.inf
        c = int(np.argmax(deficit))
        cat_counts[c] += 1
        within = np.where(
            (dept_cat == c) & (counts < caps), cat_counts[c] * caps / cat_caps[c] - counts, -np.inf
        )
        d = int(np.argmax(within))
        counts[d] += 1
        dept_of[k] = d
        names.append(f"{DEPARTMENTS[d][0]}_{counts[d]:03d}")
    return dept_of, tuple(names)


@lru_cache(maxsize=1)
def _item_categories() -> NDArray[np.int64]:
    dept_of, _ = _item_order()
    return np.array([DEPARTMENTS[d][1] for d in dept_of], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------------


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * ell) // 433
    month = (h + ell - 7 * m + 90) // 25
    day = (h + ell - 7 * m + 33 * month + 19) % 32
    return date(year, month, day)


def _orthodox_easter(year: int) -> date:
    """Julian-calendar Easter shown in the Gregorian calendar (valid 1900-2099)."""
    a, b, c = year % 4, year % 7, year % 19
    d = (19 * c + 15) % 30
    e = (2 * a + 4 * b - d + 34) % 7
    month, day = divmod(d + e + 114, 31)
    return date(year, month, day + 1) + timedelta(days=13)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday of a month; n = -1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = date(year + month // 12, month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _events_of_year(year: int) -> dict[date, str]:
    mon, thu, sun = 0, 3, 6
    easter = _easter(year)
    events = {
        date(year, 1, 1): "NewYear",
        date(year, 1, 7): "OrthodoxChristmas",
        _nth_weekday(year, 1, mon, 3): "MartinLutherKingDay",
        _nth_weekday(year, 2, sun, 1): "SuperBowl",
        date(year, 2, 14): "ValentinesDay",
        _nth_weekday(year, 2, mon, 3): "PresidentsDay",
        easter - timedelta(days=46): "LentStart",
        easter - timedelta(days=39): "LentWeek2",
        date(year, 3, 17): "StPatricksDay",
        easter: "Easter",
        date(year, 5, 5): "Cinco De Mayo",
        _nth_weekday(year, 5, sun, 2): "Mother's day",
        _nth_weekday(year, 5, mon, -1): "MemorialDay",
        _nth_weekday(year, 6, sun, 3): "Father's day",
        date(year, 7, 4): "IndependenceDay",
        _nth_weekday(year, 9, mon, 1): "LaborDay",
        _nth_weekday(year, 10, mon, 2): "ColumbusDay",
        date(year, 10, 31): "Halloween",
        date(year, 11, 11): "VeteransDay",
        _nth_weekday(year, 11, thu, 4): "Thanksgiving",
        date(year, 12, 25): "Christmas",
    }
    orthodox = _orthodox_easter(year)
    events[orthodox] = "OrthodoxEaster" if orthodox != easter else "Easter|OrthodoxEaster"
    return events


@dataclass(frozen=True)
class Calendar:
    """Everything that depends on the day only, shared by all series of a run."""

    start: date
    n_days: int
    epoch_days: NDArray[np.int32]  # days since 1970-01-01 (Arrow date32)
    weekday: NDArray[np.int64]
    week: NDArray[np.int64]  # Walmart-style week index, weeks start on Saturday
    n_weeks: int
    snap: NDArray[np.bool_]  # (state, day)
    event_code: NDArray[np.int32]  # index into event_names, -1 for none
    event_names: tuple[str, ...]
    day_profile: NDArray[np.float64]  # (category, day): weekday x yearly x events
    years_from_reference: NDArray[np.float64]


@lru_cache(maxsize=8)
def calendar(start: date, n_days: int) -> Calendar:
    days = pd.date_range(start, periods=n_days, freq="D")
    weekday = days.weekday.to_numpy().astype(np.int64)
    offset = (start.weekday() - 5) % 7
    week = (np.arange(n_days) + offset) // 7
    dom = days.day.to_numpy()
    snap = np.stack([np.isin(dom, sorted(SNAP_DAYS[s])) for s in STATES])
    by_date: dict[date, str] = {}
    for year in range(start.year, days[-1].year + 1):
        by_date.update(_events_of_year(year))
    day_names = [by_date.get(d) for d in days.date]
    names = tuple(sorted({n for n in day_names if n is not None}))
    lookup = {n: i for i, n in enumerate(names)}
    event_code = np.array([lookup[n] if n is not None else -1 for n in day_names], dtype=np.int32)
    doy = days.dayofyear.to_numpy()
    yearly = 1 + YEARLY_AMPLITUDE[:, None] * np.sin(2 * np.pi * (doy[None, :] - 100) / 365.25)
    events = np.ones((len(CATEGORIES), n_days))
    for i, name in enumerate(day_names):
        if name is None:
            continue
        for part in name.split("|"):
            if part in EVENT_EFFECT:
                events[:, i] *= EVENT_EFFECT[part]
    profile = DOW_PROFILE[weekday][None, :] * yearly * events
    epoch = (days.to_numpy().astype("datetime64[D]").astype(np.int64)).astype(np.int32)
    years = (epoch.astype(np.float64) - (TREND_REFERENCE - date(1970, 1, 1)).days) / 365.25
    return Calendar(
        start=start,
        n_days=n_days,
        epoch_days=epoch,
        weekday=weekday,
        week=week,
        n_weeks=int(week[-1]) + 1,
        snap=snap,
        event_code=event_code,
        event_names=names,
        day_profile=profile,
        years_from_reference=years,
    )


# --------------------------------------------------------------------------------------------
# Static parameters (independent of n_series)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    item_dept: NDArray[np.int64]
    item_cat: NDArray[np.int64]
    item_log_level: NDArray[np.float64]
    item_price: NDArray[np.float64]
    item_elasticity: NDArray[np.float64]
    item_launch_frac: NDArray[np.float64]  # < 0: launched before the window
    series_log_level: NDArray[np.float64]  # store-item part
    series_price_factor: NDArray[np.float64]
    series_launch_lag: NDArray[np.float64]
    series_oos_rate: NDArray[np.float64]
    series_trend: NDArray[np.float64]


_GOLDEN = (math.sqrt(5) - 1) / 2
_SQRT2_FRAC = math.sqrt(2) - 1
_NORMAL = NormalDist()


def _normal_scores(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standard-normal quantiles of the fractional parts of ``x``."""
    u = np.clip(np.mod(x, 1.0), 1e-4, 1 - 1e-4)
    return np.array([_NORMAL.inv_cdf(float(v)) for v in u.reshape(-1)]).reshape(u.shape)


def _rank_within(groups: NDArray[np.int64], n_groups: int) -> NDArray[np.int64]:
    """0, 1, 2, ... separately within each group, in order of appearance."""
    rank = np.empty(len(groups), dtype=np.int64)
    for g in range(n_groups):
        where = np.flatnonzero(groups == g)
        rank[where] = np.arange(len(where))
    return rank


@lru_cache(maxsize=1)
def _dept_level() -> NDArray[np.float64]:
    """:data:`DEPT_LEVEL` scaled so each category's item-weighted mean is 1."""
    counts = np.array([n for _, _, n in DEPARTMENTS], dtype=np.float64)
    dept_level = DEPT_LEVEL.copy()
    for c in range(len(CATEGORIES)):
        in_cat = np.array([cat == c for _, cat, _ in DEPARTMENTS])
        dept_level[in_cat] /= np.average(dept_level[in_cat], weights=counts[in_cat])
    return dept_level


@lru_cache(maxsize=4)
def _params(seed: int) -> _Params:
    dept_of, _ = _item_order()
    cat_of = _item_categories()
    dept_level = _dept_level()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x17E5]))
    sigma = CAT_SIGMA[cat_of]
    # Levels are heavy-tailed (log-sd > 1): with iid draws a 600-series sample's category means
    # would swing by a third. Quasi-random normal scores (a Weyl sequence with a random offset per
    # department) spread every prefix of the item order evenly over the distribution, so small runs
    # are calibrated too; the seed moves the offsets.
    rank = _rank_within(dept_of, len(DEPARTMENTS))
    dept_offset = rng.random(len(DEPARTMENTS))
    item_z = _normal_scores(dept_offset[dept_of] + rank * _GOLDEN)
    item_log_level = np.log(CAT_MEDIAN[cat_of] * dept_level[dept_of]) + item_z * sigma * math.sqrt(
        ITEM_VARIANCE_SHARE
    )
    item_price = DEPT_PRICE[dept_of, 0] * np.exp(
        rng.standard_normal(N_ITEMS) * DEPT_PRICE[dept_of, 1]
    )
    item_elasticity = CAT_ELASTICITY[cat_of] * rng.uniform(0.7, 1.3, N_ITEMS)
    is_new = rng.random(N_ITEMS) < NEW_ITEM_SHARE
    item_launch_frac = np.where(is_new, rng.uniform(0.0, LAUNCH_WINDOW, N_ITEMS), -1.0)

    rng_s = np.random.default_rng(np.random.SeedSequence([seed, 0x5E21E5]))
    n = N_ITEMS * N_STORES
    series_sigma = np.repeat(sigma, N_STORES) * math.sqrt(1 - ITEM_VARIANCE_SHARE)
    # Store-item scores are stratified across the ten stores of an item and rotated from item to
    # item (a Latin-square pattern), so over any ten consecutive items each store draws from each
    # tenth of the distribution once and store shares hold in small samples.
    shift = (rng_s.integers(0, N_STORES) + 3 * np.arange(N_ITEMS))[:, None]
    stratum = (np.arange(N_STORES)[None, :] + shift) % N_STORES
    series_z = _normal_scores((stratum + rng_s.random((N_ITEMS, N_STORES))) / N_STORES).reshape(-1)
    series_log_level = series_z * series_sigma + np.log(np.tile(STORE_LEVEL, N_ITEMS))
    series_price_factor = 1 + 0.03 * rng_s.standard_normal(n).clip(-2.5, 2.5)
    series_launch_lag = rng_s.exponential(STORE_LAUNCH_LAG_DAYS, n)
    series_oos_rate = OOS_SPELLS_PER_DAY * np.exp(0.5 * rng_s.standard_normal(n))
    series_trend = TREND_SD_PER_YEAR * rng_s.standard_normal(n)
    return _Params(
        item_dept=dept_of,
        item_cat=cat_of,
        item_log_level=item_log_level,
        item_price=item_price,
        item_elasticity=item_elasticity,
        item_launch_frac=item_launch_frac,
        series_log_level=series_log_level,
        series_price_factor=series_price_factor,
        series_launch_lag=series_launch_lag,
        series_oos_rate=series_oos_rate,
        series_trend=series_trend,
    )


@lru_cache(maxsize=16)
def _level_scale(seed: int, n_series: int) -> NDArray[np.float64]:
    """Per-category factor making the selected series' mean level exactly the calibrated one.

    Levels are heavy-tailed, so whether a 300-series sample holds one of the few very fast
    movers would otherwise move its category shares by ten points. The factor is 1 up to sampling
    noise at M5 scale; it makes a series' level depend slightly on ``n_series``.
    """
    p = _params(seed)
    idx = np.arange(n_series)
    item = idx // N_STORES
    cat = p.item_cat[item]
    level = np.exp(p.item_log_level[item] + p.series_log_level[idx])
    dept_level = _dept_level()
    target = CAT_MEDIAN * np.exp(CAT_SIGMA**2 / 2)
    scale = np.ones(len(CATEGORIES))
    for c in range(len(CATEGORIES)):
        sel = cat == c
        if sel.any():
            # The department mix of a small prefix differs from M5's; keep its departments' levels.
            expected = target[c] * dept_level[p.item_dept[item[sel]]].mean()
            scale[c] = expected / level[sel].mean()
    return scale


# --------------------------------------------------------------------------------------------
# One block of series
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """Column arrays of one block, series-major (all days of a series are contiguous)."""

    n_series: int
    store: NDArray[np.int64]  # per series, index into STORES
    item: NDArray[np.int64]  # per series, index into the global item order
    units: NDArray[np.float64]  # (series, day)
    price: NDArray[np.float64]  # (series, day), NaN before launch
    # The hidden state behind ``units`` (see :class:`DemandTruth`), before scripted shocks.
    expected: NDArray[np.float64]  # (series, day) expected units when in stock, 0 before launch
    spells_running: NDArray[np.int32]  # (series, day) stock-out spells covering the day
    oos_rate: NDArray[np.float64]  # per series, stock-out spell starts per day


def _round_price(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Shelf prices end in 8 cents (2.98, 0.48): rounded to 10 cents, minus 2."""
    return np.maximum(np.round(np.round(p, 1) - 0.02, 2), 0.18)


def _shock_mask(
    shock: Shock, cal: Calendar, store: NDArray[np.int64], item: NDArray[np.int64], p: _Params
) -> NDArray[np.bool_]:
    rows = np.ones(len(store), dtype=bool)
    if shock.store is not None:
        rows &= store == STORES.index(shock.store)
    if shock.category is not None:
        if shock.category in CATEGORIES:
            rows &= p.item_cat[item] == CATEGORIES.index(shock.category)
        else:
            dept = [d for d, _, _ in DEPARTMENTS].index(shock.category)
            rows &= p.item_dept[item] == dept
    first = (shock.start - cal.start).days
    last = (shock.end - cal.start).days if shock.end is not None else cal.n_days - 1
    days = np.zeros(cal.n_days, dtype=bool)
    days[max(first, 0) : max(last + 1, 0)] = True
    return rows[:, None] & days[None, :]


def _block(seed: int, block: int, n_series: int, cal: Calendar, shocks: Sequence[Shock]) -> _Block:
    """Generate series ``block*BLOCK_SERIES ..`` (at most ``n_series`` of them) for all days."""
    p = _params(seed)
    first = block * BLOCK_SERIES
    # Always a full block, so the draws never depend on n_series; the last block of the M5
    # hierarchy (30,490 = 121.96 blocks) pads with copies of the last series, dropped below.
    gidx = np.minimum(np.arange(first, first + BLOCK_SERIES), M5_SERIES - 1)
    item, store = gidx // N_STORES, gidx % N_STORES
    n_days, b = cal.n_days, BLOCK_SERIES
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB10C, block]))
    cat = p.item_cat[item]
    local_item = item - item[0]  # 0..24: item-level draws below are shared by the ten stores

    # Weekly prices: item-level permanent moves (a random walk) and store-level one-week promotions.
    moves = (rng.random((ITEMS_PER_BLOCK, cal.n_weeks)) < PRICE_CHANGE_PER_WEEK) * rng.normal(
        0.0, PRICE_CHANGE_SD, (ITEMS_PER_BLOCK, cal.n_weeks)
    )
    moves[:, 0] = 0.0
    perm = np.cumsum(moves, axis=1)[local_item]
    promo = np.where(
        rng.random((b, cal.n_weeks)) < PROMO_PER_WEEK, rng.uniform(0.7, 0.9, (b, cal.n_weeks)), 1.0
    )
    regular = p.item_price[item][:, None] * p.series_price_factor[gidx][:, None] * np.exp(perm)
    weekly_price = _round_price(regular * promo)
    elasticity = p.item_elasticity[item][:, None]
    weekly_effect = promo ** (-elasticity) * np.exp(perm) ** (-0.5 * elasticity)

    # Expected demand.
    level = (
        np.exp(p.item_log_level[item] + p.series_log_level[gidx])
        * _level_scale(seed, n_series)[cat]
    )
    state = np.array(STORE_STATE)[store]
    snap_factor = np.where(cal.snap[state], SNAP_UPLIFT[state, cat][:, None], 1.0)
    trend = np.exp(p.series_trend[gidx][:, None] * cal.years_from_reference[None, :])
    rate = level[:, None] * cal.day_profile[cat] * snap_factor * trend * weekly_effect[:, cal.week]

    # Availability: launches (leading zeros, no price) and stock-out spells.
    launch = np.where(
        p.item_launch_frac[item] < 0,
        -1,
        np.floor(p.item_launch_frac[item] * n_days + p.series_launch_lag[gidx]),
    )
    launched = np.arange(n_days)[None, :] >= launch[:, None]
    n_spells = rng.poisson(p.series_oos_rate[gidx] * n_days)
    rows = np.repeat(np.arange(b), n_spells)
    starts = rng.integers(0, n_days, rows.size)
    ends = np.minimum(starts + rng.geometric(1 / OOS_MEAN_DAYS, rows.size), n_days)
    diff = np.zeros((b, n_days + 1), dtype=np.int32)
    np.add.at(diff, (rows, starts), 1)
    np.add.at(diff, (rows, ends), -1)
    spells_running = np.cumsum(diff[:, :n_days], axis=1)
    expected = rate * launched
    rate = expected * (spells_running == 0)

    noise = rng.standard_gamma(GAMMA_SHAPE, (b, n_days)) / GAMMA_SHAPE
    units = rng.poisson(rate * noise).astype(np.float64)

    if shocks:
        srng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A0C, block]))
        for shock in shocks:
            mask = _shock_mask(shock, cal, store, item, p)
            if not mask.any():
                continue
            if shock.kind == "store_closure" or shock.factor == 0:
                units[mask] = 0.0
            elif shock.factor < 1:
                units[mask] = srng.binomial(units[mask].astype(np.int64), shock.factor)
            elif shock.factor > 1:
                units[mask] += srng.poisson(rate[mask] * (shock.factor - 1))

    price = np.where(launched, weekly_price[:, cal.week], np.nan)
    keep = max(0, min(b, n_series - first))
    return _Block(
        n_series=keep,
        store=store[:keep],
        item=item[:keep],
        units=units[:keep],
        price=price[:keep],
        expected=expected[:keep],
        spells_running=spells_running[:keep],
        oos_rate=p.series_oos_rate[gidx][:keep],
    )


def _check_args(n_series: int, n_days: int, shocks: Sequence[Shock]) -> None:
    if not 1 <= n_series <= M5_SERIES:
        raise ValueError(f"n_series must be in 1..{M5_SERIES} (the M5 hierarchy), got {n_series}")
    if n_days < 1:
        raise ValueError(f"n_days must be >= 1, got {n_days}")
    for s in shocks:
        if not isinstance(s, Shock):
            raise TypeError(f"shocks must be Shock instances, got {type(s).__name__}")


def _blocks(
    n_series: int, n_days: int, start: date, seed: int, shocks: Sequence[Shock]
) -> Iterator[tuple[_Block, Calendar]]:
    _check_args(n_series, n_days, shocks)
    cal = calendar(start, n_days)
    for block in range(math.ceil(n_series / BLOCK_SERIES)):
        yield _block(seed, block, n_series, cal, tuple(shocks)), cal


def _block_codes(blk: _Block, cal: Calendar) -> dict[str, Any]:
    """Per-row dictionary codes and values shared by the Arrow and the pandas assembly."""
    dept_of, item_names = _item_order()
    cat_of = _item_categories()
    n, t = blk.n_series, cal.n_days
    uniq_items, item_local = np.unique(blk.item, return_inverse=True)
    state = np.array(STORE_STATE)[blk.store]
    return {
        "store_id": (np.repeat(blk.store, t), STORES),
        "item_id": (np.repeat(item_local, t), tuple(item_names[i] for i in uniq_items)),
        "dept_id": (np.repeat(dept_of[blk.item], t), tuple(d for d, _, _ in DEPARTMENTS)),
        "cat_id": (np.repeat(cat_of[blk.item], t), CATEGORIES),
        "state_id": (np.repeat(state, t), STATES),
        "date": np.tile(cal.epoch_days, n),
        "units": blk.units.reshape(-1),
        "sell_price": blk.price.reshape(-1),
        "snap": cal.snap[state].reshape(-1),
        "event_name": (np.tile(cal.event_code, n), cal.event_names),
    }


def _block_table(blk: _Block, cal: Calendar) -> pa.Table:
    cols = _block_codes(blk, cal)
    arrays: list[pa.Array] = []
    for name in COLUMNS:
        value = cols[name]
        if isinstance(value, tuple):
            codes, dictionary = value
            codes = np.asarray(codes, dtype=np.int32)
            mask = codes < 0
            arrays.append(
                pa.DictionaryArray.from_arrays(
                    pa.array(codes, mask=mask if mask.any() else None),
                    pa.array(list(dictionary), type=pa.string()),
                )
            )
        elif name == "date":
            arrays.append(pa.array(value, type=pa.date32()))
        elif name == "sell_price":
            arrays.append(pa.array(value, mask=np.isnan(value)))
        else:
            arrays.append(pa.array(value))
    return pa.Table.from_arrays(arrays, schema=Schema)


def _block_frame(blk: _Block, cal: Calendar) -> pd.DataFrame:
    cols = _block_codes(blk, cal)
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = cols[name]
        if isinstance(value, tuple):
            codes, dictionary = value
            lookup = np.array([*dictionary, None], dtype=object)
            out[name] = lookup[np.where(codes < 0, len(dictionary), codes)]
        elif name == "date":
            out[name] = value.astype("datetime64[D]").astype("datetime64[ns]")
        else:
            out[name] = value
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def generate_frame(
    n_series: int,
    n_days: int,
    start: date = date(2013, 1, 1),
    seed: int = 0,
    shocks: Sequence[Shock] = (),
) -> pd.DataFrame:
    """Generated sales as a DataFrame (for tests, demos and small runs).

    Columns as :data:`COLUMNS`: strings as Python ``str`` (``event_name`` ``None`` on ordinary
    days), ``date`` as ``datetime64[ns]`` at midnight (the representation validation produces, so
    generated and ingested frames compare directly), ``units`` float64 holding non-negative integers,
    ``sell_price`` float64 (NaN before an item's launch), ``snap`` bool. Rows are series-major in
    the hierarchy-preserving series order, days ascending.
    """
    frames = [_block_frame(blk, cal) for blk, cal in _blocks(n_series, n_days, start, seed, shocks)]
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class DemandTruth:
    """What the generator knows and a forecaster never sees: the expected demand behind the units.

    Why it exists: the accuracy benchmark measures how far a model is from the best forecast the
    data allows. Two such oracles follow from this state. One knows the future
    (:meth:`expected_units`: the exact rate and every stock-out). The other knows only the past,
    like any real forecaster, but knows it perfectly: the rates, prices, promotions and launches
    of the horizon, and how many stock-out spells are running at the origin
    (:meth:`in_stock_chance` turns that into the chance of being in stock on each horizon day).
    The difference between them is the stock-outs that start inside the horizon, which no model
    can foresee. Arrays are (series, day), series in :func:`generate_frame`'s order; scripted
    shocks are not part of it.
    """

    series_id: tuple[str, ...]  # "store_id/item_id", as ``sales.series_id``
    start: date
    expected: NDArray[np.float64]  # expected units of a day when in stock (0 before launch)
    spells_running: NDArray[np.int32]  # stock-out spells covering the day (0 = in stock)
    oos_rate: NDArray[np.float64]  # per series: stock-out spell starts per day
    spell_mean_days: float = OOS_MEAN_DAYS

    def expected_units(self) -> NDArray[np.float64]:
        """The expected units of every day, stock-outs included: the future-knowing oracle."""
        return self.expected * (self.spells_running == 0)

    def in_stock_chance(self, origin: int, horizon: int) -> NDArray[np.float64]:
        """P(in stock on day ``origin + j``), j = 1..horizon, given every spell up to ``origin``.

        Spell starts are Poisson with ``oos_rate`` a day and last Geometric(1 / mean) days (at
        least one), so a running spell is still running j days later with chance q^j
        (q = 1 - 1 / mean, memoryless), and the spells starting in the j days after the origin
        that still cover day ``origin + j`` are Poisson with mean rate · (1 + q + … + q^(j-1)).
        Returns (series, horizon).
        """
        if not 0 <= origin < self.expected.shape[1]:
            raise ValueError(f"origin must be a day index in 0..{self.expected.shape[1] - 1}")
        q = 1.0 - 1.0 / self.spell_mean_days
        steps = np.arange(1, horizon + 1, dtype=np.float64)
        all_ended = (1.0 - q**steps)[None, :] ** self.spells_running[:, origin][:, None]
        none_new = np.exp(-self.oos_rate[:, None] * (1.0 - q**steps)[None, :] / (1.0 - q))
        chance: NDArray[np.float64] = all_ended * none_new
        return chance


def demand_truth(
    n_series: int, n_days: int, start: date = date(2013, 1, 1), seed: int = 0
) -> DemandTruth:
    """The hidden state behind ``generate_frame(n_series, n_days, start, seed)`` (no shocks)."""
    _, item_names = _item_order()
    ids: list[str] = []
    expected, running, rates = [], [], []
    for blk, _ in _blocks(n_series, n_days, start, seed, ()):
        ids += [f"{STORES[s]}/{item_names[i]}" for s, i in zip(blk.store, blk.item, strict=True)]
        expected.append(blk.expected)
        running.append(blk.spells_running)
        rates.append(blk.oos_rate)
    return DemandTruth(
        series_id=tuple(ids),
        start=start,
        expected=np.concatenate(expected),
        spells_running=np.concatenate(running).astype(np.int32),
        oos_rate=np.concatenate(rates),
    )


@dataclass(frozen=True)
class GenerateStats:
    path: Path
    series: int
    days: int
    rows: int
    bytes: int
    row_groups: int
    units_total: float
    wall_s: float


def write_parquet(
    path: Path | str,
    n_series: int,
    n_days: int,
    start: date = date(2013, 1, 1),
    seed: int = 0,
    shocks: Sequence[Shock] = (),
    *,
    chunk_series: int = 2000,
    progress: bool = True,
    compression: str = "zstd",
) -> GenerateStats:
    """Stream generated sales into one Parquet file, one row group per chunk of series.

    Memory stays bounded by one chunk (``chunk_series`` is rounded up to whole blocks of
    :data:`BLOCK_SERIES`), which is what lets the M5 scale (≈59 M rows) run on a laptop. The rows
    are exactly those of :func:`generate_frame` for the same arguments; string columns are
    dictionary-encoded and ``date`` is a Parquet DATE. The file is written under a temporary name
    and renamed, so a reader never sees a half-written file.
    """
    if chunk_series < 1:
        raise ValueError(f"chunk_series must be >= 1, got {chunk_series}")
    _check_args(n_series, n_days, shocks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    per_chunk = max(1, math.ceil(chunk_series / BLOCK_SERIES))
    n_blocks = math.ceil(n_series / BLOCK_SERIES)
    t0 = time.perf_counter()
    rows = 0
    row_groups = 0
    units_total = 0.0
    pending: list[pa.Table] = []

    bar = Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("series"),
        TimeRemainingColumn(),
        disable=not progress,
        transient=False,
    )
    try:
        with pq.ParquetWriter(tmp, Schema, compression=compression) as writer, bar:
            task = bar.add_task("series", total=n_series)
            for i, (blk, cal) in enumerate(_blocks(n_series, n_days, start, seed, shocks)):
                table = _block_table(blk, cal)
                units_total += float(blk.units.sum())
                pending.append(table)
                if len(pending) == per_chunk or i == n_blocks - 1:
                    chunk = pa.concat_tables(pending)
                    writer.write_table(chunk, row_group_size=chunk.num_rows)
                    rows += chunk.num_rows
                    row_groups += 1
                    pending = []
                bar.update(task, advance=blk.n_series)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return GenerateStats(
        path=path,
        series=n_series,
        days=n_days,
        rows=rows,
        bytes=path.stat().st_size,
        row_groups=row_groups,
        units_total=units_total,
        wall_s=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def calibration_report(df: pd.DataFrame) -> dict[str, Any]:
    """The statistics of :data:`M5_FACTS`, measured on a sales frame (generated or real).

    Whole-window statistics use every row; the ``_28d`` ones use the last 28 days, as the facts
    were measured on M5's last 28 days. The weekday profile skips days on which nothing at all
    sold (store-wide closures such as Christmas), which the M5 window did not contain.
    """
    if df.empty:
        raise ValueError("calibration_report needs a non-empty frame")
    units = df["units"].to_numpy(dtype=np.float64)
    dates = pd.to_datetime(df["date"])
    series = df["store_id"].astype(str) + "/" + df["item_id"].astype(str)
    cat = df["cat_id"].astype(str)
    zero = units == 0
    n_series = int(series.nunique())

    by_cat = pd.DataFrame({"cat": cat, "units": units, "zero": zero}).groupby("cat", sort=True)
    daily = pd.Series(units, index=pd.DatetimeIndex(dates)).groupby(level=0).sum()
    day_index = pd.DatetimeIndex(daily.index)
    open_days = daily[(daily > 0).to_numpy()]
    dow = open_days.groupby(pd.DatetimeIndex(open_days.index).weekday).mean()
    dow_profile = (dow / dow.mean()).reindex(range(7)).tolist()

    last = dates.max() - pd.Timedelta(days=27)
    recent = pd.DataFrame({"series": series, "units": units})[(dates >= last).to_numpy()]
    per_series = recent.groupby("series")["units"].agg(["mean", "var", "max"])
    sold = per_series[per_series["mean"] > 0]
    weekly = daily[(day_index >= last)]
    week_totals = weekly.groupby((pd.DatetimeIndex(weekly.index) - last).days // 7).sum()
    week_totals = week_totals[week_totals.index < 4]
    store_units = pd.Series(units).groupby(df["store_id"].astype(str).to_numpy()).sum()
    total = float(units.sum())
    qs = per_series["mean"].quantile([0.10, 0.25, 0.50, 0.75, 0.90, 0.99]).to_numpy()
    return {
        "rows": len(df),
        "series": n_series,
        "days": int(dates.nunique()),
        "zero_share": float(zero.mean()),
        "zero_share_by_cat": {k: float(v) for k, v in by_cat["zero"].mean().items()},
        "mean_units_by_cat": {k: float(v) for k, v in by_cat["units"].mean().items()},
        "cat_unit_share": {k: float(v) / total for k, v in by_cat["units"].sum().items()},
        "store_unit_share": {k: float(v) / total for k, v in store_units.items()},
        "dow_profile": [float(x) for x in dow_profile],
        "mean_units_per_series_day": float(units.mean()),
        "total_daily_units_at_m5_scale": float(units.mean()) * M5_SERIES,
        "no_sale_series_share_28d": float((per_series["max"] == 0).mean()),
        "series_mean_quantiles_28d": {
            f"q{int(q)}": float(v) for q, v in zip((10, 25, 50, 75, 90, 99), qs, strict=True)
        },
        "median_var_to_mean_28d": float((sold["var"] / sold["mean"]).median()),
        "weekly_cv_28d": float(week_totals.std(ddof=0) / week_totals.mean())
        if len(week_totals) > 1
        else float("nan"),
    }
