from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from salesloop.config import Settings, load_settings
from salesloop.model.cli import app
from salesloop.model.train import train_and_register
from salesloop.registry import LocalRegistry
from tests.model.synthetic import small_config, synth_sales

pytestmark = pytest.mark.filterwarnings("ignore:Found null values in:UserWarning")


def _json(output: str) -> dict:
    """The command's JSON document (log lines may precede it: the main CLI sends them to stderr)."""
    return json.loads(output[output.index("{\n") :])


def test_train_and_register_sets_aliases_and_metrics(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    settings = Settings(project="salesloop-local")
    sales = synth_sales(30, 200, seed=3)
    v1 = train_and_register(sales, reg, settings, version_note="first", config=small_config())
    assert reg.aliases() == {"challenger": v1, "champion": v1}
    meta = reg.get(v1).metadata
    hold = meta["metrics"]["holdout_last_horizon"]
    assert {"mase", "rmsse", "seasonal_naive_mase", "relative_mase"} <= set(hold)
    assert 0 < hold["mase"] < 5 and meta["metrics"]["backtest"]["n_windows"] == 4
    assert meta["note"] == "first"
    v2 = train_and_register(sales, reg, settings, version_note="second", config=small_config())
    assert reg.aliases() == {"challenger": v2, "champion": v1}
    actions = [(e["action"], e.get("alias")) for e in reg.audit()]
    assert actions == [
        ("register", None),
        ("set_alias", "challenger"),
        ("set_alias", "champion"),
        ("register", None),
        ("set_alias", "challenger"),
    ]


def test_cli_train_from_warehouse_and_deploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from salesloop.warehouse import open_warehouse

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"local": {"run_dir": str(tmp_path / "run")}}))
    monkeypatch.setenv("SALESLOOP_OVERLAY", str(overlay))
    monkeypatch.setenv("SALESLOOP_REGISTRY", str(tmp_path / "reg"))
    settings = load_settings("local")
    sales = synth_sales(20, 150, seed=4)
    sales["date"] = pd.to_datetime(sales["date"])
    rows = sales.assign(
        job_id="job-1", row_num=range(len(sales)), inserted_at=pd.Timestamp.now(tz="UTC")
    )
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        wh.insert_job({"sales": rows}, job_id="job-1")
    finally:
        wh.close()
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--history-days", "150", "--note", "cli test"])
    assert result.exit_code == 0, result.output
    out = _json(result.output)
    assert out["version"] == "v0001" and out["n_series"] == 20
    assert out["train_end"] == str(sales["date"].max().date())
    result = runner.invoke(app, ["deploy", "v0001", "--reason", "go live"])
    assert result.exit_code == 0, result.output
    assert _json(result.output)["deployed_models"] == [
        {"id": "1", "version": "v0001", "traffic": 100}
    ]
    reg = LocalRegistry(tmp_path / "reg")
    assert reg.alias("champion") == "v0001"
    assert reg.audit()[-1]["reason"] == "go live"
    assert runner.invoke(app, ["deploy", "v0009"]).exit_code == 2
