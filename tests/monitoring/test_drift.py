"""Drift distances against distributions whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesloop.monitoring import drift


def test_identical_samples_have_zero_divergence() -> None:
    x = np.random.default_rng(0).normal(size=5000)
    assert drift.js_divergence_numeric(x, x) == pytest.approx(0.0, abs=1e-9)


def test_same_distribution_different_samples_is_small() -> None:
    rng = np.random.default_rng(1)
    assert drift.js_divergence_numeric(rng.normal(size=20_000), rng.normal(size=20_000)) < 0.005


def test_disjoint_supports_reach_the_bound_in_bits_and_nats() -> None:
    a = np.linspace(0, 1, 1000)
    b = a + 10
    assert drift.js_divergence_numeric(a, b) == pytest.approx(1.0, abs=1e-3)
    assert drift.js_divergence_numeric(a, b, base=math.e) == pytest.approx(math.log(2), abs=1e-3)
    # Below the baseline's range too: the lower outer bin catches it.
    assert drift.js_divergence_numeric(a, a - 10) == pytest.approx(1.0, abs=1e-3)


def test_divergence_grows_with_the_shift_of_a_normal() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=20_000)
    cur = rng.normal(size=20_000)
    values = [drift.js_divergence_numeric(base, cur + s) for s in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values)
    assert values[0] < 0.01 < values[2] < values[-1] <= 1.0


def test_jensen_shannon_of_known_vectors() -> None:
    # p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25); JS = ½[log(1/.75)] + ½[½ log(.5/.75) + ½ log(.5/.25)]
    expected = 0.5 * math.log2(1 / 0.75) + 0.25 * (math.log2(0.5 / 0.75) + math.log2(2))
    assert drift.jensen_shannon([1, 0], [0.5, 0.5]) == pytest.approx(expected)


def test_zero_inflated_point_mass_gets_its_own_bin() -> None:
    base = np.r_[np.zeros(600), np.arange(1, 401)]
    edges = drift.quantile_edges(base, bins=10)
    assert 0.0 in edges  # the mass at 0 is bin (lower, 0]
    counts = drift.histogram(base, edges)
    assert counts[np.searchsorted(edges, 0.0)] == 600
    # Moving zeros to positive values is visible.
    cur = np.r_[np.zeros(100), np.arange(1, 901) % 400 + 1]
    assert drift.js_divergence_numeric(base, cur, bins=10) > 0.1


def test_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(3)
    vals = rng.integers(0, 30, 2000).astype(float)
    cur = rng.integers(5, 40, 2000).astype(float)
    u, n = np.unique(vals, return_counts=True)
    cu, cn = np.unique(cur, return_counts=True)
    assert drift.js_divergence_numeric(
        u, cu, baseline_weights=n, current_weights=cn
    ) == pytest.approx(drift.js_divergence_numeric(vals, cur))


def test_weighted_quantiles_match_numpy_inverted_cdf() -> None:
    x = np.random.default_rng(4).normal(size=1001)
    qs = [0.1, 0.25, 0.5, 0.9]
    assert drift.weighted_quantiles(x, qs) == pytest.approx(
        np.quantile(x, qs, method="inverted_cdf")
    )


def test_nan_values_are_ignored_and_empty_side_is_missing() -> None:
    d = drift.numeric_drift("price", [1.0, 2.0, np.nan], [np.nan])
    assert d.value is None and d.baseline_n == 2 and d.current_n == 0
    with pytest.raises(ValueError):
        d.value_or_raise()


def test_linf_exact_on_hand_made_cases() -> None:
    assert drift.linf_distance_categorical(["a", "a", "b", "b"], ["a", "b"]) == 0.0
    # p = (a .75, b .25), q = (a .25, b .5, c .25) → max(.5, .25, .25) = .5
    assert drift.linf_distance_categorical(
        ["a", "a", "a", "b"], ["a", "b", "b", "c"]
    ) == pytest.approx(0.5)
    assert drift.linf_distance_categorical(["x"], ["y"]) == 1.0
    # Booleans and missing values: None is its own category.
    assert drift.linf_distance_categorical(
        [True, False, False, None], [True, True, True, True]
    ) == pytest.approx(0.75)
    # Weighted form.
    assert drift.linf_distance_categorical(
        ["a", "b"], ["a", "b"], baseline_weights=[9, 1], current_weights=[1, 1]
    ) == pytest.approx(0.4)


def test_categorical_drift_carries_its_evidence() -> None:
    d = drift.categorical_drift("snap", [True, False], [True, True, True, False])
    assert d.metric == "linf_distance" and d.baseline_n == 2 and d.current_n == 4
    assert dict(zip(d.labels, d.current_p, strict=True)) == {"False": 0.25, "True": 0.75}
    assert drift.categorical_drift("snap", [], [True]).value is None


_samples = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=200
)
_cats = st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=100)


@settings(max_examples=150, deadline=None)
@given(_samples, _samples)
def test_js_is_bounded_and_zero_on_itself(a: list[float], b: list[float]) -> None:
    v = drift.js_divergence_numeric(a, b, bins=10)
    assert 0.0 <= v <= 1.0
    assert drift.js_divergence_numeric(a, a, bins=10) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=10), min_size=2, max_size=20),
    st.lists(st.floats(min_value=0, max_value=10), min_size=2, max_size=20),
)
def test_jensen_shannon_is_symmetric_and_bounded(p: list[float], q: list[float]) -> None:
    n = min(len(p), len(q))
    pa, qa = drift.smooth(np.r_[p[:n], 1.0]), drift.smooth(np.r_[q[:n], 1.0])
    v = drift.jensen_shannon(pa, qa)
    assert v == pytest.approx(drift.jensen_shannon(qa, pa), abs=1e-12)
    assert 0.0 <= v <= 1.0


@settings(max_examples=150, deadline=None)
@given(_cats, _cats)
def test_linf_is_symmetric_bounded_and_zero_on_itself(
    a: list[str | None], b: list[str | None]
) -> None:
    v = drift.linf_distance_categorical(a, b)
    assert v == pytest.approx(drift.linf_distance_categorical(b, a))
    assert 0.0 <= v <= 1.0
    assert drift.linf_distance_categorical(a, a) == 0.0


def test_category_frequencies_sum_to_one() -> None:
    f = drift.category_frequencies(pd.Series(["a", None, "a"]))
    assert f.sum() == pytest.approx(1.0) and f[drift.MISSING] == pytest.approx(1 / 3)
