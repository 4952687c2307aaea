from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from salesloop.evaluation.metrics import evaluate, model_metrics, relative, scales_before


def _history() -> pd.DataFrame:
    # Two series, season 2: a: 1,3,1,3,... (seasonal diff 0 → scale 0, excluded); b: 0..7
    ds = pd.date_range("2020-01-01", periods=8, freq="D")
    return pd.DataFrame(
        {
            "unique_id": ["a"] * 8 + ["b"] * 8,
            "ds": list(ds) * 2,
            "y": [1, 3, 1, 3, 1, 3, 1, 3, *range(8)],
        }
    ).astype({"y": float})


def _rows(yhat_b: list[float], y_b: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["b"] * len(y_b),
            "ds": pd.date_range("2020-01-09", periods=len(y_b)),
            "cutoff": pd.Timestamp("2020-01-08"),
            "model": "m",
            "y": y_b,
            "yhat": yhat_b,
            "lo_80": [v - 1 for v in yhat_b],
            "hi_80": [v + 1 for v in yhat_b],
        }
    )


def test_scales_are_seasonal_differences_before_the_cutoff() -> None:
    scales = scales_before(_history(), pd.Timestamp("2020-01-08"), season_length=2)
    assert scales.loc["a", "mae_scale"] == 0.0
    # b: y_t - y_{t-2} = 2 everywhere
    assert scales.loc["b", "mae_scale"] == pytest.approx(2.0)
    assert scales.loc["b", "mse_scale"] == pytest.approx(4.0)
    later = scales_before(_history(), pd.Timestamp("2020-01-03"), season_length=2)
    assert later.loc["b", "mae_scale"] == pytest.approx(2.0)
    assert len(later) == 2


def test_metric_values_by_hand() -> None:
    scales = scales_before(_history(), pd.Timestamp("2020-01-08"), season_length=2)
    rows = _rows(yhat_b=[8, 10, 12, 10], y_b=[8, 9, 10, 11])  # errors 0, 1, 2, -1
    m = model_metrics(rows, scales, [80])
    assert m["mase"] == pytest.approx((0 + 1 + 2 + 1) / 4 / 2.0)
    assert m["rmsse"] == pytest.approx(math.sqrt((0 + 1 + 4 + 1) / 4 / 4.0), rel=1e-4)
    assert m["wape"] == pytest.approx(4 / 38, rel=1e-4)
    assert m["bias"] == pytest.approx(2 / 38, rel=1e-4)
    # |error| ≤ 1 inside the ±1 interval: rows 0, 1, 3
    assert m["coverage_80"] == pytest.approx(0.75)
    assert m["n_series"] == 1 and m["n_rows"] == 4


def test_zero_scale_series_are_left_out_of_scaled_errors_only() -> None:
    scales = scales_before(_history(), pd.Timestamp("2020-01-08"), season_length=2)
    rows = pd.concat(
        [_rows([8, 9], [8, 9]), _rows([8, 9], [8, 9]).assign(unique_id="a", y=[1.0, 3.0])]
    )
    m = model_metrics(rows, scales, [80])
    assert m["n_series"] == 1  # only b has a scale
    assert m["mase"] == 0.0
    assert m["wape"] > 0  # a's errors still count in volume-weighted metrics


def test_evaluate_breaks_down_by_category_and_window() -> None:
    scales = scales_before(_history(), pd.Timestamp("2020-01-08"), season_length=2)
    good = _rows([8, 9, 10, 11], [8, 9, 10, 11]).assign(cat_id="X")
    bad = good.assign(model="bad", yhat=good["yhat"] * 2)
    out = evaluate(pd.concat([good, bad]), scales, [80])
    assert set(out["overall"]) == {"m", "bad"}
    assert out["overall"]["m"]["rmsse"] == 0.0
    assert out["overall"]["bad"]["rmsse"] > 1.0
    assert set(out["by_category"]) == {"X"}
    assert list(out["by_window_rmsse"]) == ["2020-01-08"]
    rel = relative(out["overall"], "rmsse", "bad")
    assert rel["bad"] == 1.0 and rel["m"] == 0.0


def test_nan_when_nothing_sold() -> None:
    scales = pd.DataFrame({"mae_scale": [1.0], "mse_scale": [1.0]}, index=["b"])
    rows = _rows([0.0, 0.0], [0.0, 0.0])
    m = model_metrics(rows, scales, [80])
    assert np.isnan(m["wape"]) and np.isnan(m["bias"])
    assert m["rmsse"] == 0.0
