"""The monitoring CLI on a local run folder (DuckDB file; no servers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from salesloop.local.dispatcher import DeliveryStore
from salesloop.monitoring.cli import app
from salesloop.monitoring.monitor import MonitorResult, RetrainOutcome
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.monitoring import scenario

HOOK_CALLS: list[str] = []


def fake_retrain(result: MonitorResult) -> RetrainOutcome:
    HOOK_CALLS.append(result.run_id)
    return RetrainOutcome("promoted", version="v9", reason="cli test")


@pytest.fixture(autouse=True)
def _logs_to_real_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI configures structlog to print to the stderr of the moment; under CliRunner that is a
    capture closed after the call, and cached loggers would keep writing to it in later tests."""
    import logging
    import sys

    import structlog

    def configure(*_: object, **__: object) -> None:
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__),
        )

    monkeypatch.setattr("salesloop.logging.configure", configure)
    yield
    structlog.reset_defaults()


@pytest.fixture
def run_dir(tmp_path: Path) -> tuple[Path, scenario.Scenario]:
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as wh:
        sc = scenario.build(wh, daily_jobs=7, closed_store="TX_1")
    return tmp_path, sc


def test_monitor_replay_report(run_dir: tuple[Path, scenario.Scenario]) -> None:
    path, sc = run_dir
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "monitor",
            "--env",
            "local",
            "--run-dir",
            str(path),
            "--now",
            "data",
            "--no-email",
            "--json",
            "--retrain-hook",
            "tests.monitoring.test_cli:fake_retrain",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["computed_at"].startswith(str(sc.end + timedelta(days=1)))
    assert summary["retrain"] and summary["outcome"]["version"] == "v9"
    assert summary["run_id"] in HOOK_CALLS

    res = runner.invoke(
        app,
        [
            "replay",
            "--run-dir",
            str(path),
            "--from",
            str(sc.end),
            "--to",
            str(sc.end),
            "--tag",
            "t1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "queued 1 replayed event(s) with tag t1" in res.stdout
    assert DeliveryStore(path / "dispatcher.sqlite").counts()["pending"] == 1

    out = path / "report.html"
    res = runner.invoke(app, ["report", "--run-dir", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert summary["run_id"] in html and "v9" in html


def test_bad_inputs_fail_clearly(run_dir: tuple[Path, scenario.Scenario]) -> None:
    path, _ = run_dir
    runner = CliRunner()
    res = runner.invoke(
        app, ["monitor", "--run-dir", str(path), "--now", "yesterday", "--no-email"]
    )
    assert res.exit_code == 2 and "'yesterday' is not a date" in res.output
    res = runner.invoke(
        app, ["monitor", "--run-dir", str(path), "--no-email", "--retrain-hook", "nope.mod:fn"]
    )
    assert res.exit_code == 2 and "cannot load retrain hook" in res.output
    res = runner.invoke(
        app, ["replay", "--run-dir", str(path), "--from", "2016-02-02", "--to", "2016-02-01"]
    )
    assert res.exit_code == 2 and "empty period" in res.output
    res = runner.invoke(
        app, ["replay", "--env", "prod", "--from", "2016-02-01", "--to", "2016-02-01"]
    )
    assert res.exit_code == 2


@pytest.mark.integration
def test_monitor_emails_the_ml_owner_over_smtp(run_dir: tuple[Path, scenario.Scenario]) -> None:
    """The CLI's real mail path: SmtpMailer to the local aiosmtpd mailbox (loopback)."""
    import mailbox

    from salesloop.local.mailbox import MailboxServer

    path, _ = run_dir
    with MailboxServer(path / "mailbox") as server:
        (path / "overlay.yaml").write_text(f"smtp:\n  host: 127.0.0.1\n  port: {server.port}\n")
        res = CliRunner().invoke(
            app, ["monitor", "--run-dir", str(path), "--now", "data", "--email"]
        )
        assert res.exit_code == 0, res.output
    messages = list(mailbox.Maildir(path / "mailbox", create=False))
    assert len(messages) == 1
    msg = messages[0]
    assert msg["To"] == "ml-owner@example.com" and "Monitoring: model v1" in msg["Subject"]
    assert any(p.get_content_type() == "image/png" for p in msg.walk())
