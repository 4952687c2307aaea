"""The numpy recursion (salesloop.model.recursive) gives mlforecast's forecasts, bit for bit.

The fast path is only worth having if it is indistinguishable from the library it replaces: every
test predicts the same histories twice, once with ``use_recursive_plan`` off (mlforecast) and once
on, and compares the whole output frame exactly.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloop.model import LightGBMForecaster, to_frame
from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL
from salesloop.model.recursive import plan_for
from tests.model.synthetic import fitted_model, sales_frame, small_config, synth_sales

pytestmark = pytest.mark.filterwarnings("ignore:Found null values in:UserWarning")


def _both(
    model: LightGBMForecaster, history: pd.DataFrame, **kw: object
) -> tuple[pd.DataFrame, pd.DataFrame]:
    slow = copy.copy(model)
    slow.use_recursive_plan = False
    fast = copy.copy(model)
    assert fast._recursive_plan() is not None, "the default model must take the fast path"
    return slow.predict(history, **kw), fast.predict(history, **kw)  # type: ignore[arg-type]


def test_plan_exists_for_the_default_model() -> None:
    model = fitted_model()
    plan = plan_for(model._mlf, model.config.static_features, ("sell_price", "price_rel"))
    assert plan is None, "a fitted feature the plan is not told about means no plan"
    assert model._recursive_plan() is not None


def test_same_forecasts_on_full_histories() -> None:
    model = fitted_model()
    frame = to_frame(sales_frame())
    ref, got = _both(model, frame)
    pd.testing.assert_frame_equal(ref, got, check_exact=True)


def test_same_forecasts_on_short_uneven_unseen_and_gappy_histories() -> None:
    """Series shorter than every window, different end dates, an unseen item, NaN prices."""
    model = fitted_model()
    frame = to_frame(sales_frame()).copy()
    rng = np.random.default_rng(3)
    parts = []
    for i, (_uid, g) in enumerate(frame.groupby(ID_COL, sort=True, observed=True)):
        keep = int(rng.integers(1, 80))
        cut = int(rng.integers(0, 20))
        part = g.iloc[max(len(g) - keep - cut, 0) : len(g) - cut].copy()
        if i % 5 == 0:
            part["item_id"] = "NEVER_SEEN_ITEM"
        if i % 3 == 0:
            part.loc[part.index[::4], "sell_price"] = np.nan
        parts.append(part)
    hist = pd.concat(parts, ignore_index=True)
    hist["item_id"] = hist["item_id"].astype(str)
    ref, got = _both(model, hist)
    pd.testing.assert_frame_equal(ref, got, check_exact=True)
    ref3, got3 = _both(model, hist, horizon=3, levels=[50, 90])
    pd.testing.assert_frame_equal(ref3, got3, check_exact=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=4),
    scale=st.floats(min_value=0.0, max_value=500.0),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_same_forecasts_on_arbitrary_values(lengths: list[int], scale: float, seed: int) -> None:
    """Any non-negative history (spikes, all zeros, huge values) takes both paths to one answer."""
    model = fitted_model()
    frame = to_frame(sales_frame())
    ids = frame[ID_COL].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(lengths):
        g = frame[frame[ID_COL] == ids[i]].tail(n).copy()
        g[TARGET_COL] = np.round(rng.exponential(scale, len(g)) * (rng.random(len(g)) < 0.7))
        parts.append(g)
    ref, got = _both(model, pd.concat(parts, ignore_index=True))
    pd.testing.assert_frame_equal(ref, got, check_exact=True)


def test_weekly_models_keep_mlforecast() -> None:
    """No plan where the twin is not exact (here: weekly date features via a callable)."""
    daily = synth_sales(12, 700, seed=1)
    frame = to_frame(daily)
    weekly = (
        frame.set_index(TIME_COL)
        .groupby([ID_COL, "store_id", "item_id", "dept_id", "cat_id", "state_id"], observed=True)
        .resample("W-MON")
        .agg({TARGET_COL: "sum", "sell_price": "mean", "snap": "max", "event": "max"})
        .reset_index()
    )
    model = LightGBMForecaster(small_config(freq="W-MON", season_length=4, horizon=4)).fit(weekly)
    assert model._recursive_plan() is None
    assert len(model.predict(weekly)) == 12 * 4
