"""The generator's hidden state (DemandTruth): the oracles of the accuracy benchmark stand on it."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from salesloop.data.generate import demand_truth, generate_frame

START = date(2013, 1, 1)


def test_truth_matches_the_generated_units() -> None:
    frame = generate_frame(500, 400, start=START, seed=2)
    truth = demand_truth(500, 400, start=START, seed=2)
    ids = (frame["store_id"] + "/" + frame["item_id"]).to_numpy().reshape(500, 400)[:, 0]
    assert tuple(ids) == truth.series_id
    units = frame["units"].to_numpy().reshape(500, 400)
    mean = truth.expected_units()
    # Out of stock, before launch, on Christmas: nothing sells, and the oracle knows it.
    assert (units[mean == 0] == 0).all()
    assert (units[truth.spells_running > 0] == 0).all()
    assert truth.spells_running.max() >= 1 and (truth.spells_running == 0).mean() > 0.9
    # Gamma-Poisson noise around the expected demand: totals agree within sampling noise.
    assert units.sum() == pytest.approx(mean.sum(), rel=0.02)
    by_series = units.sum(axis=1) / np.maximum(mean.sum(axis=1), 1e-9)
    busy = mean.sum(axis=1) > 2000
    assert busy.any() and np.abs(by_series[busy] - 1).max() < 0.1


def test_the_truth_does_not_change_the_generated_data() -> None:
    before = generate_frame(300, 200, start=START, seed=5)
    demand_truth(300, 200, start=START, seed=5)
    after = generate_frame(300, 200, start=START, seed=5)
    assert before.equals(after)


@pytest.fixture(scope="module")
def truth_and_origins() -> tuple:
    truth = demand_truth(4000, 1000, start=START, seed=1)
    # Origins two spells' lengths apart, so one spell rarely counts at two origins.
    return truth, range(30, 990, 15)


@pytest.mark.parametrize("running", ["none", "some"])
def test_in_stock_chance_matches_the_spells_that_happened(
    truth_and_origins: tuple, running: str
) -> None:
    """Predicted P(in stock j days later) against the realized share, per step j (4 sigma)."""
    truth, origins = truth_and_origins
    predicted, realized = [], []
    for origin in origins:
        at = truth.spells_running[:, origin]
        sel = at == 0 if running == "none" else at >= 1
        predicted.append(truth.in_stock_chance(origin, 7)[sel])
        realized.append(truth.spells_running[sel, origin + 1 : origin + 8] == 0)
    p = np.concatenate(predicted).mean(axis=0)
    r = np.concatenate(realized).mean(axis=0)
    n = sum(len(x) for x in realized)
    assert n > (200_000 if running == "none" else 10_000)
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(p - r) < 4 * sigma + 1e-4), (p, r, sigma)
    # The chance falls with the step when in stock, and rises when a spell is running.
    assert np.all(np.diff(p) < 0) if running == "none" else np.all(np.diff(p) > 0)


def test_in_stock_chance_rejects_an_origin_outside_the_window() -> None:
    truth = demand_truth(10, 50, start=START, seed=0)
    with pytest.raises(ValueError, match="origin"):
        truth.in_stock_chance(50, 7)
    assert truth.in_stock_chance(49, 3).shape == (10, 3)
