from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from salesloop.pipeline_cli import app


def test_compile_then_submit_dry_run_for_dev(tmp_path: Path) -> None:
    out = tmp_path / "training.yaml"
    compiled = CliRunner().invoke(app, ["compile", "--out", str(out)], env={"SALESLOOP_ENV": "dev"})
    assert compiled.exit_code == 0, compiled.output
    spec = yaml.safe_load(out.read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"europe-west1-docker.pkg.dev/salesloop-dev/salesloop/training:latest"}
    assert spec["pipelineInfo"]["name"] == "salesloop-training"

    submitted = CliRunner().invoke(
        app,
        ["submit", "--template", str(out), "--history-days", "365", "--dry-run"],
        env={"SALESLOOP_ENV": "dev"},
    )
    assert submitted.exit_code == 0, submitted.output
    described = json.loads(submitted.stdout)
    assert described["service_account"] == "pipelines@salesloop-dev.iam.gserviceaccount.com"
    assert described["pipeline_root"] == "gs://salesloop-dev-pipelines/root"
    assert described["parameters"]["history_days"] == 365
    assert described["parameters"]["env"] == "dev"


def test_submit_is_refused_for_local_and_without_template(tmp_path: Path) -> None:
    local = CliRunner().invoke(
        app,
        ["submit", "--template", str(tmp_path / "x.yaml"), "--dry-run"],
        env={"SALESLOOP_ENV": "local"},
    )
    assert local.exit_code == 2
    missing = CliRunner().invoke(
        app,
        ["submit", "--template", str(tmp_path / "x.yaml"), "--dry-run"],
        env={"SALESLOOP_ENV": "dev"},
    )
    assert missing.exit_code == 2 and "pipeline compile" in missing.output


def test_run_refuses_bigquery_environments_without_a_local_warehouse() -> None:
    result = CliRunner().invoke(app, ["run"], env={"SALESLOOP_ENV": "dev"})
    assert result.exit_code == 2 and "pipeline submit" in result.output
