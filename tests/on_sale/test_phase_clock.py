"""PhaseClock: laps between steps, summed per phase name."""

from __future__ import annotations

import pytest

from salesloop.on_sale import PhaseClock


def ticking(*ticks: float) -> PhaseClock:
    return PhaseClock(timer=iter(ticks).__next__)


def test_each_lap_is_the_time_since_the_previous_one() -> None:
    clock = ticking(10.0, 10.004, 10.0105, 10.0125)
    clock.lap("read")
    clock.lap("predict")
    clock.lap("write")
    assert clock.ms == pytest.approx({"read": 4.0, "predict": 6.5, "write": 2.0})


def test_a_phase_lapped_twice_sums_its_laps() -> None:
    clock = ticking(0.0, 0.001, 0.003, 0.006)
    clock.lap("read")
    clock.lap("predict")
    clock.lap("read")
    assert clock.ms == pytest.approx({"read": 4.0, "predict": 2.0})
