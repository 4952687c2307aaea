"""The default model against the causal oracle: near the floor, and never below it (a leak).

The causal oracle is the best forecast that can be made from the past on generated data
(salesloop/evaluation/oracle.py). A model that scores clearly better than it must be reading the
future (a feature computed over the horizon, a target in a lag); a model far above it has lost
accuracy. Deterministic: fixed generator seed and windows.
"""

from __future__ import annotations

from datetime import date

import pytest

from salesloop.config import ForecastSettings
from salesloop.data.generate import GAMMA_SHAPE, demand_truth, generate_frame
from salesloop.evaluation.backtest import SEASONAL_NAIVE, Contender, plan_backtest, run_backtest
from salesloop.evaluation.candidates import build_model
from salesloop.evaluation.oracle import OracleModel
from salesloop.model import to_frame

START = date(2013, 1, 1)
SERIES, DAYS = 200, 500


@pytest.mark.slow
def test_default_lightgbm_sits_just_above_the_causal_oracle() -> None:
    sales = generate_frame(SERIES, DAYS, start=START, seed=7)
    sales["series_id"] = sales["store_id"].astype(str) + "/" + sales["item_id"].astype(str)
    frame = to_frame(sales, "D")
    truth = demand_truth(SERIES, DAYS, START, seed=7)
    forecast = ForecastSettings(freq="D", horizon=7, season_length=7)
    plan = plan_backtest(
        frame, windows=2, horizon=7, step=7, season_length=7, levels=(80, 95), min_train_periods=28
    )
    result = run_backtest(
        frame,
        plan,
        [
            Contender("lightgbm", "candidate", factory=lambda: build_model("lightgbm", forecast)),
            Contender(
                SEASONAL_NAIVE,
                "baseline",
                factory=lambda: build_model("seasonal_naive", forecast),
            ),
            Contender(
                "causal oracle",
                "baseline",
                model=OracleModel(truth, GAMMA_SHAPE, knows_future=False),
            ),
        ],
    )
    rmsse = {name: vals["rmsse"] for name, vals in result.overall.items()}
    ratio = rmsse["lightgbm"] / rmsse["causal oracle"]
    assert ratio > 0.99, f"lightgbm beats the best forecast from the past: a leak? {rmsse}"
    assert ratio < 1.06, f"lightgbm is far above the floor: {rmsse}"
    assert rmsse["lightgbm"] < 0.8 * rmsse[SEASONAL_NAIVE], rmsse
