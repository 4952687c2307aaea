"""``salesloop infra diff`` on synthesized-JSON fixtures, and --ref through a real git worktree."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from salesloop.infra_diff import app, diff_configs, flatten, render_markdown

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def before() -> dict[str, Any]:
    return _load("stack_before.json")


@pytest.fixture
def after() -> dict[str, Any]:
    return _load("stack_after.json")


def test_added_removed_and_changed_attributes(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    d = diff_configs(before, after, "dev")
    assert list(d.added) == ["google_secret_manager_secret.secret_smtp_password"]
    assert list(d.removed) == ["google_pubsub_topic.dead_letter_topic"]
    table = {c.path: (c.old, c.new) for c in d.changed["google_bigquery_table.warehouse_sales"]}
    # Construct paths in cdktn's "//" metadata differ per stack and are not a change...
    assert not [p for p in table if "metadata" in p]
    # ...but a recorded policy skip is.
    assert table["//.checkov[0]"][1] == "checkov:skip=CKV_GCP_80:example reason for the fixture"
    assert table["deletion_protection"] == (False, True)
    # JSON inside a string (the table schema) is diffed field by field.
    assert table["schema[0].mode"] == ("NULLABLE", "REQUIRED")
    job = {
        c.path: (c.old, c.new) for c in d.changed["google_cloud_scheduler_job.scheduler_monitoring"]
    }
    # So is base64 JSON of a request body.
    assert job == {
        "http_target.body.templateUri": ("https://x/monitoring/latest", "https://x/monitoring/v2")
    }
    assert set(d.changed) == {
        "google_bigquery_table.warehouse_sales",
        "google_cloud_scheduler_job.scheduler_monitoring",
    }


def test_identical_configs_have_no_diff(before: dict[str, Any]) -> None:
    assert diff_configs(before, before, "dev").empty
    assert "No infrastructure change." in render_markdown([diff_configs(before, before, "x")], "h")


def test_markdown_is_a_readable_pr_comment(before: dict[str, Any], after: dict[str, Any]) -> None:
    text = render_markdown([diff_configs(before, after, "`dev`")], "Infra diff: a → b")
    assert text.startswith("## Infra diff: a → b\n")
    assert "### `dev`: 1 added, 1 removed, 2 changed" in text
    assert (
        "<summary>+ <code>google_secret_manager_secret.secret_smtp_password</code></summary>"
        in text
    )
    assert "<summary>- <code>google_pubsub_topic.dead_letter_topic</code></summary>" in text
    assert "| `deletion_protection` | `false` | `true` |" in text
    assert "| `schema[0].mode` | `NULLABLE` | `REQUIRED` |" in text


def test_flatten_paths() -> None:
    assert flatten({"a": {"b": [1, {"c": 2}]}, "e": [], "f": {}}) == {
        "a.b[0]": 1,
        "a.b[1].c": 2,
        "e": [],
        "f": {},
    }


def _synthesized(tmp_path: Path, dev: dict[str, Any], prod: dict[str, Any]) -> Path:
    out = tmp_path / "cdktf.out"
    for env, config in (("dev", dev), ("prod", prod)):
        (out / "stacks" / env).mkdir(parents=True)
        (out / "stacks" / env / "cdk.tf.json").write_text(json.dumps(config))
    return out


def test_cli_exit_codes(
    tmp_path: Path, before: dict[str, Any], after: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    out = _synthesized(tmp_path, before, after)
    runner = CliRunner()
    changed = runner.invoke(app, ["diff", "dev", "prod", "--synthesized", str(out)])
    assert changed.exit_code == 1, changed.output
    assert "## Infra diff: dev → prod" in changed.output
    same = runner.invoke(
        app, ["diff", "dev", "dev", "--synthesized", str(out), "-o", str(tmp_path / "d.md")]
    )
    assert same.exit_code == 0, same.output
    assert "No infrastructure change." in (tmp_path / "d.md").read_text()
    assert runner.invoke(app, ["diff", "dev"]).exit_code == 2  # one environment is not a diff
    assert runner.invoke(app, ["diff", "dev", "staging"]).exit_code == 2


# A stand-in for `python -m stacks` in a throwaway repository: it writes the stack that the
# repository's stack.json holds, so --ref can be exercised through git worktree in milliseconds.
_FAKE_STACKS_MAIN = textwrap.dedent(
    """
    import argparse, json, pathlib
    p = argparse.ArgumentParser(); p.add_argument("--outdir", type=pathlib.Path)
    out = p.parse_args().outdir
    config = json.loads(pathlib.Path("stack.json").read_text())
    for env in ("dev", "prod"):
        (out / "stacks" / env).mkdir(parents=True, exist_ok=True)
        (out / "stacks" / env / "cdk.tf.json").write_text(json.dumps(config))
    """
)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_ref_diff_synthesizes_the_other_tree_in_a_worktree(
    tmp_path: Path, before: dict[str, Any], after: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "cdktf.json").write_text("{}")
    (repo / "stacks" / "__init__.py").write_text("")
    (repo / "stacks" / "__main__.py").write_text(_FAKE_STACKS_MAIN)
    (repo / "stack.json").write_text(json.dumps(before))

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "before")
    (repo / "stack.json").write_text(json.dumps(after))  # the working tree moves on
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(app, ["diff", "--ref", "HEAD", "prod"])
    assert result.exit_code == 1, result.output
    assert "## Infra diff: HEAD → working tree" in result.output
    assert "### `prod`: 1 added, 1 removed, 2 changed" in result.output
    assert "`dev`" not in result.output.split("\n", 3)[2]
    # The worktree is gone again.
    listed = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True)
    assert len(listed.stdout.strip().splitlines()) == 1
    git("add", ".")
    git("commit", "-q", "-m", "after")
    assert CliRunner().invoke(app, ["diff", "--ref", "HEAD"]).exit_code == 0
