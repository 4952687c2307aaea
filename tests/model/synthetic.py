"""Small synthetic SALES-shaped data for model, serving and predictor tests (fast and seeded).

Own generator rather than ``salesloop.data.generate`` so these tests pin exactly the structure they
assert on: negative-binomial counts with a weekday profile, price promotions with an elasticity,
SNAP days lifting FOODS, Christmas closures, a late-launched item (leading NaN price).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from salesloop.model import LightGBMConfig, LightGBMForecaster, to_frame

DOW = np.array([0.97, 0.90, 0.87, 0.87, 0.98, 1.20, 1.21])
STORES = ("CA_1", "CA_2", "TX_1", "WI_1")
DEPTS = {"FOODS": ("FOODS_1", "FOODS_2"), "HOUSEHOLD": ("HOUSEHOLD_1",), "HOBBIES": ("HOBBIES_1",)}


def synth_sales(
    n_series: int = 40, n_days: int = 240, start: str = "2022-01-01", seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq="D")
    snap = dates.day <= 10
    christmas = (dates.month == 12) & (dates.day == 25)
    frames = []
    cats = list(DEPTS)
    for i in range(n_series):
        store = STORES[i % len(STORES)]
        cat = cats[i % len(cats)]
        dept = DEPTS[cat][i % len(DEPTS[cat])]
        item = f"{dept}_{i:03d}"
        base = float(np.exp(rng.normal(-0.2, 1.0)))
        price0 = float(np.round(rng.uniform(1, 10), 2))
        price = np.full(n_days, price0)
        for _ in range(3):
            s = int(rng.integers(0, n_days))
            price[s : s + int(rng.integers(7, 28))] = round(price0 * 0.8, 2)
        lam = base * DOW[dates.dayofweek] * (price0 / price) ** 1.5
        lam = lam * np.where(snap & (cat == "FOODS"), 1.2, 1.0) * np.where(christmas, 0.0, 1.0)
        units = rng.negative_binomial(2, 2 / (2 + lam)).astype(float)
        # series 1 is a launch: no rows before day 60
        keep = np.arange(n_days) >= (60 if i == 1 else 0)
        frames.append(
            pd.DataFrame(
                {
                    "series_id": f"{store}/{item}",
                    "store_id": store,
                    "item_id": item,
                    "dept_id": dept,
                    "cat_id": cat,
                    "state_id": store[:2],
                    "date": dates.date,
                    "units": units,
                    "sell_price": price,
                    "snap": snap,
                    "event_name": np.array(
                        ["Christmas" if c else None for c in christmas], dtype=object
                    ),
                }
            )[keep]
        )
    return pd.concat(frames, ignore_index=True)


def small_config(**overrides: Any) -> LightGBMConfig:
    """Fewer trees: the tests check behaviour, not accuracy at scale."""
    params = LightGBMConfig().lgbm | {
        "n_estimators": 60,
        "learning_rate": 0.15,
        "min_child_samples": 20,
    }
    return LightGBMConfig.for_frequency(lgbm=params, min_per_bin=60, **overrides)


@lru_cache(maxsize=4)
def fitted_model(n_series: int = 40, n_days: int = 240, seed: int = 0) -> LightGBMForecaster:
    frame = to_frame(synth_sales(n_series, n_days, seed=seed))
    return LightGBMForecaster(small_config()).fit(frame)


@lru_cache(maxsize=4)
def sales_frame(n_series: int = 40, n_days: int = 240, seed: int = 0) -> pd.DataFrame:
    return synth_sales(n_series, n_days, seed=seed)
