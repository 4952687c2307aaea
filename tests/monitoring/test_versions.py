"""A version's backtest and training window from the warehouse row or the registry metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from salesloop.config import load_settings
from salesloop.monitoring.monitor import run_monitor
from salesloop.monitoring.versions import backtest_summary, registry_metadata, registry_versions
from salesloop.warehouse import Exec
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.monitoring import scenario

REGISTRY_META = {
    "version": "v0003",
    "model_kind": "lightgbm",
    "candidate": "lightgbm",
    "train_start": "2016-01-01",
    "train_end": "2016-04-30",
    "metrics": {
        "backtest": {
            "lightgbm": {"mase": 0.71, "rmsse": 0.66, "coverage_80": 0.79},
            "SeasonalNaive": {"mase": 1.02},
            "AutoETS": {"mase": 0.8},
        }
    },
}


@pytest.mark.parametrize(
    ("doc", "mase", "naive"),
    [
        ({"backtest": {"mase": 0.8, "seasonal_naive_mase": 1.1}}, 0.8, 1.1),
        (json.dumps({"backtest": {"mase": 0.8}}), 0.8, None),
        ({"mase": 0.9}, 0.9, None),
        ({"backtest_mase": 0.7}, 0.7, None),
        (REGISTRY_META, 0.71, 1.02),
        (None, None, None),
        ("not json", None, None),
        ({"backtest": {"mase": "nan"}}, None, None),
    ],
)
def test_backtest_summary_shapes(doc: object, mase: float | None, naive: float | None) -> None:
    got = backtest_summary(doc)
    assert got["mase"] == mase and got["seasonal_naive_mase"] == naive


def test_registry_metadata(tmp_path: Path) -> None:
    (tmp_path / "versions" / "v0003").mkdir(parents=True)
    (tmp_path / "versions" / "v0003" / "metadata.json").write_text(json.dumps(REGISTRY_META))
    assert registry_metadata(tmp_path, "v0003")["candidate"] == "lightgbm"
    assert registry_metadata(tmp_path, "../etc") == {}
    assert registry_metadata(None, "v0003") == {} and registry_metadata(tmp_path, "v9") == {}
    assert [m["version"] for m in registry_versions(tmp_path)] == ["v0003"]


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(":memory:")
    yield w
    w.close()


def test_monitor_reads_the_registry_when_the_table_is_silent(
    wh: DuckDBWarehouse, tmp_path: Path
) -> None:
    sc = scenario.build(wh, daily_jobs=7, version="v0003", backtest_mase=None)
    wh.apply([Exec("DELETE FROM {{ model_versions }} WHERE version = 'v0003'")])
    (tmp_path / "versions" / "v0003").mkdir(parents=True)
    (tmp_path / "versions" / "v0003" / "metadata.json").write_text(json.dumps(REGISTRY_META))
    settings = load_settings("local")
    without = run_monitor(wh, settings, now=sc.now)
    assert without.backtest_mase is None
    assert without.baseline_source.startswith("the 364 days")
    ratio = without.measurement("mase_vs_backtest")
    assert ratio is not None and ratio.value is None and not ratio.breached
    with_reg = run_monitor(wh, settings, now=sc.now, registry=tmp_path, run_id="with-registry")
    assert with_reg.backtest_mase == 0.71
    assert with_reg.windows["baseline"] == (date(2016, 1, 1), date(2016, 4, 30))
    assert with_reg.baseline_source == "training window of v0003"
