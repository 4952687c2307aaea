from __future__ import annotations

import pandas as pd
import pytest

from salesloop.evaluation.backtest import (
    BacktestError,
    BacktestPlan,
    Contender,
    best_candidate,
    plan_backtest,
    run_backtest,
)
from salesloop.evaluation.baselines import SeasonalNaiveForecaster, StatsConfig
from salesloop.model import to_frame
from tests.evaluation.fakes import MeanModel
from tests.training.helpers import daily_sales


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return to_frame(daily_sales(20, 120))


def _plan(frame: pd.DataFrame, windows: int = 3, step: int = 7) -> BacktestPlan:
    return plan_backtest(
        frame,
        windows=windows,
        horizon=7,
        step=step,
        season_length=7,
        levels=(80, 95),
        min_train_periods=28,
    )


def test_origins_sit_on_the_grid_ending_one_horizon_before_the_end(frame: pd.DataFrame) -> None:
    plan = _plan(frame)
    last = frame["ds"].max()
    assert plan.cutoffs[-1] == last - pd.Timedelta(days=7)
    assert [c2 - c1 for c1, c2 in zip(plan.cutoffs, plan.cutoffs[1:], strict=False)] == [
        pd.Timedelta(days=7)
    ] * 2
    assert plan.horizon_dates(plan.cutoffs[0])[0] == plan.cutoffs[0] + pd.Timedelta(days=1)
    overlapping = _plan(frame, windows=4, step=1)
    assert overlapping.cutoffs[-1] - overlapping.cutoffs[0] == pd.Timedelta(days=3)


def test_too_short_history_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(BacktestError, match="cannot hold"):
        _plan(frame, windows=20)


def test_every_contender_is_scored_on_exactly_the_same_rows(frame: pd.DataFrame) -> None:
    plan = _plan(frame)
    champion = MeanModel(window=14).fit(frame)  # artifact: used as is, never refitted
    result = run_backtest(
        frame,
        plan,
        [
            Contender("good", "candidate", factory=lambda: MeanModel(window=7)),
            Contender("bad", "candidate", factory=lambda: MeanModel(factor=4.0)),
            Contender("champion", "champion", model=champion),
            Contender(
                "SeasonalNaive",
                "baseline",
                factory=lambda: SeasonalNaiveForecaster(StatsConfig(season_length=7)),
            ),
        ],
    )
    rows = result.forecasts
    keys = {
        m: set(map(tuple, part[["unique_id", "ds", "cutoff"]].astype(str).to_numpy()))
        for m, part in rows.groupby("model")
    }
    assert len({frozenset(k) for k in keys.values()}) == 1
    assert len(keys["good"]) == len(plan.series) * 7 * 3
    assert champion.fits == 1
    overall = result.overall
    assert overall["bad"]["rmsse"] > 2 * overall["good"]["rmsse"]
    assert overall["bad"]["bias"] > 1.0
    assert best_candidate(result) == "good"
    assert set(result.metrics["by_category"]) <= {"FOODS", "HOUSEHOLD", "HOBBIES"}
    assert len(result.metrics["by_window_rmsse"]) == 3
    # actuals come from the frame, not from the models
    sample = rows.iloc[0]
    actual = frame[(frame["unique_id"] == sample["unique_id"]) & (frame["ds"] == sample["ds"])]["y"]
    assert sample["y"] == float(actual.iloc[0])


def test_refit_false_fits_once_at_the_first_origin(frame: pd.DataFrame) -> None:
    made: list[MeanModel] = []

    def factory() -> MeanModel:
        made.append(MeanModel())
        return made[-1]

    run_backtest(frame, _plan(frame), [Contender("m", "candidate", factory=factory)], refit=False)
    assert len(made) == 1
    run_backtest(frame, _plan(frame), [Contender("m", "candidate", factory=factory)], refit=True)
    assert len(made) == 1 + 3


@pytest.mark.parametrize(
    ("broken", "match"), [(MeanModel(drop=3), "missing"), (MeanModel(nan=True), "non-finite")]
)
def test_a_model_breaking_the_contract_fails_the_backtest(
    frame: pd.DataFrame, broken: MeanModel, match: str
) -> None:
    with pytest.raises(BacktestError, match=match):
        run_backtest(frame, _plan(frame), [Contender("x", "candidate", model=broken)])


def test_new_and_dead_series_are_not_scored(frame: pd.DataFrame) -> None:
    late = frame[frame["unique_id"] == frame["unique_id"].iloc[0]].copy()
    late = late[late["ds"] > late["ds"].max() - pd.Timedelta(days=30)].assign(unique_id="late")
    dead = frame[frame["unique_id"] == frame["unique_id"].iloc[0]].assign(unique_id="dead", y=0.0)
    plan = _plan(pd.concat([frame, late, dead], ignore_index=True))
    assert "late" not in plan.series and "dead" not in plan.series
    assert len(plan.series) == frame["unique_id"].nunique()


def test_identical_recipes_are_computed_once(frame: pd.DataFrame) -> None:
    made: list[MeanModel] = []

    def factory() -> MeanModel:
        made.append(MeanModel())
        return made[-1]

    result = run_backtest(
        frame,
        _plan(frame),
        [Contender("a", "candidate", factory=factory), Contender("b", "baseline", factory=factory)],
        same_as={"b": "a"},
    )
    assert len(made) == 3
    assert result.overall["a"] == result.overall["b"]
    with pytest.raises(BacktestError, match="did not run"):
        run_backtest(
            frame, _plan(frame), [Contender("a", "candidate", factory=factory)], same_as={"b": "x"}
        )
