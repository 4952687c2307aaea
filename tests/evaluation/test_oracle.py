"""The accuracy benchmark's oracles: the floor the 30%-below-SeasonalNaive target is judged by."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesloop.data.generate import GAMMA_SHAPE, demand_truth, generate_frame
from salesloop.evaluation.oracle import OracleModel

START = date(2013, 1, 1)
N_SERIES, N_DAYS, H = 2000, 600, 7


@pytest.fixture(scope="module")
def data() -> tuple:
    frame = generate_frame(N_SERIES, N_DAYS, start=START, seed=4)
    frame["unique_id"] = frame["store_id"] + "/" + frame["item_id"]
    frame["ds"] = frame["date"]
    frame["y"] = frame["units"]
    return frame, demand_truth(N_SERIES, N_DAYS, start=START, seed=4)


def _forecast(data: tuple, origin: int, knows_future: bool) -> pd.DataFrame:
    """The oracle's forecast from ``origin``, in the truth's series order, with the actual ``y``."""
    frame, truth = data
    # An oracle reads only where each series' history ends: the origin's rows are history enough.
    history = frame[frame["ds"] == pd.Timestamp(START) + pd.Timedelta(days=origin)]
    oracle = OracleModel(truth, GAMMA_SHAPE, knows_future=knows_future)
    out = oracle.fit(history).predict(history, H, (80, 95))
    row = out["unique_id"].map({sid: i for i, sid in enumerate(truth.series_id)})
    out = out.iloc[np.lexsort((out["ds"].to_numpy(), row.to_numpy()))].reset_index(drop=True)
    units = frame["y"].to_numpy().reshape(N_SERIES, N_DAYS)
    out["y"] = units[:, origin + 1 : origin + 1 + H].reshape(-1)
    return out


def test_forecasts_are_the_truth_with_and_without_the_future(data: tuple) -> None:
    _, truth = data
    origin = 400
    future = _forecast(data, origin, knows_future=True)
    causal = _forecast(data, origin, knows_future=False)
    days = slice(origin + 1, origin + 1 + H)
    assert len(future) == len(causal) == N_SERIES * H
    np.testing.assert_allclose(future["yhat"], truth.expected_units()[:, days].reshape(-1))
    np.testing.assert_allclose(
        causal["yhat"],
        (truth.expected[:, days] * truth.in_stock_chance(origin, H)).reshape(-1),
    )
    # A series out of stock at the origin: likely still out tomorrow, so 0 is in its interval.
    stuck = np.flatnonzero(truth.spells_running[:, origin] > 0)
    assert stuck.size > 0
    first_day = causal.iloc[stuck * H]
    assert (first_day["lo_80"] == 0).all()
    assert (first_day["yhat"] < truth.expected[stuck, origin + 1] * 0.5 + 1e-12).all()


def test_knowing_more_forecasts_better(data: tuple) -> None:
    """Squared error: the future-knowing oracle < the causal one < the rate without stock-outs."""
    _, truth = data
    errors = {"future": 0.0, "causal": 0.0, "rate only": 0.0}
    for origin in range(300, 580, 14):
        future = _forecast(data, origin, knows_future=True)
        causal = _forecast(data, origin, knows_future=False)
        rate = truth.expected[:, origin + 1 : origin + 1 + H].reshape(-1)
        y = causal["y"].to_numpy()
        errors["future"] += float(((future["yhat"] - y) ** 2).sum())
        errors["causal"] += float(((causal["yhat"] - y) ** 2).sum())
        errors["rate only"] += float(((rate - y) ** 2).sum())
    assert errors["future"] < errors["causal"] < errors["rate only"], errors


def test_an_oracle_is_never_registered(data: tuple, tmp_path: Path) -> None:
    oracle = OracleModel(data[1], GAMMA_SHAPE, knows_future=False)
    with pytest.raises(TypeError, match="never registered"):
        oracle.save(tmp_path)
    with pytest.raises(TypeError, match="never registered"):
        OracleModel.load(tmp_path)


def test_an_oracle_refuses_what_the_generator_did_not_make(data: tuple) -> None:
    frame, truth = data
    oracle = OracleModel(truth, GAMMA_SHAPE, knows_future=True)
    last_day = frame[frame["ds"] == frame["ds"].max()]
    with pytest.raises(ValueError, match="past the generated days"):
        oracle.predict(last_day, H)
    stranger = last_day.head(1).assign(unique_id="XX_9/NOPE_001")
    with pytest.raises(ValueError, match="not in the generated data"):
        oracle.predict(stranger, H)
