"""benchmarks/load.py's memory measure: growth after the ramp-up, not the ramp-up itself."""

from __future__ import annotations

import pytest

from tests.reliability.bench import load_benchmark

steady_growth = load_benchmark("load.py")._steady_growth


def test_a_step_during_the_ramp_is_not_growth_but_a_later_climb_is() -> None:
    # 100 MB, a step to 150 within the ramp (first 60 s), then flat: no growth after the ramp.
    flat = [(float(t), 100.0 if t < 20 else 150.0) for t in range(600)]
    assert steady_growth(flat, ramp_end=60.0) == {
        "after_ramp": 150.0,
        "end": 150.0,
        "growth_pct": 0.0,
    }
    # The same, then a steady climb of 30 MB over the remaining 540 s: a leak, reported.
    leak = [(t, v + (30.0 * (t - 60) / 540 if t > 60 else 0.0)) for t, v in flat]
    out = steady_growth(leak, ramp_end=60.0)
    assert out is not None and out["after_ramp"] == 150.0
    assert out["growth_pct"] == pytest.approx(100 * (179.5 / 150.0 - 1), abs=0.2)


def test_medians_ignore_a_single_spike_at_either_end() -> None:
    samples = [(float(t), 200.0) for t in range(120)]
    samples[59] = (59.0, 400.0)  # in the ramp's last window
    samples[-1] = (119.0, 400.0)  # the very last sample
    assert steady_growth(samples, ramp_end=60.0)["growth_pct"] == 0.0  # type: ignore[index]


def test_too_few_samples_give_none() -> None:
    assert steady_growth([], ramp_end=10.0) is None
    assert steady_growth([(0.0, 1.0), (5.0, 1.0)], ramp_end=10.0) is None
