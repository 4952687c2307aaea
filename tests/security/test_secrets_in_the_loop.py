"""Secrets and email bodies stay out of logs and tables, on the whole loop with real processes.

The SMTP password is a canary set only in the environment (``SALESLOOP_SECRET_SMTP_PASSWORD``, the
local stand-in for Secret Manager); the mailbox requires a login with it, so the function must
really read and use it. Every process logs at DEBUG. Afterwards the logs of every process, every
table of the warehouse and every file of the run folder outside the Maildir are searched for the
password and for the text of the emails that were sent.

Covered elsewhere, not repeated here: STARTTLS and implicit TLS with login
(tests/mail/test_smtp_mailer.py), the synthesized Terraform searched for secret values
(tests/infra/test_invariants.py::test_no_plaintext_secret), events for another table refused by
the real function server (tests/reliability/test_bad_events_http.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from salesloop.local.mailbox import MailboxServer, read_messages
from salesloop.local.prepare import PreparedRun, prepare_run
from salesloop.schemas import TABLES
from tests.reliability.loop import Loop, live_jobs

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("security")]

PASSWORD = "canary-Smtp-pw-3f9c1e77d2"
USER = "salesloop-sender"


class Auth:
    def __init__(self) -> None:
        self.logins: list[tuple[str, bool]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        ok = data.login.decode() == USER and data.password.decode() == PASSWORD
        self.logins.append((data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedRun:
    return prepare_run(
        tmp_path_factory.mktemp("secprep") / "run",
        series=40,
        days=400,
        replay_days=4,
        drop_category="FOODS",
        drop_factor=0.05,
    )


@pytest.fixture(scope="module")
def finished_loop(
    prepared: PreparedRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    run = prepared.copy_to(tmp_path_factory.mktemp("secrun") / "run")
    auth = Auth()
    mp = pytest.MonkeyPatch()
    mp.setenv("SALESLOOP_SECRET_SMTP_PASSWORD", PASSWORD)
    mp.setenv("SALESLOOP_LOG_LEVEL", "DEBUG")
    mailbox = MailboxServer(run.run_dir / "mailbox", authenticator=auth, auth_require_tls=False)
    mailbox.start()
    try:
        overlay = {"smtp": {"username": USER, "security": "none"}}
        with Loop(run, extra_overlay=overlay, ports={"mailbox": mailbox.port}) as loop:
            loop.start("warehouse", "model_server")
            loop.insert(live_jobs(run, days=4, jobs_per_day=2))
            loop.start("function", "dispatcher")
            loop.wait_drained(timeout_s=180)
            tables = {name: loop.table(name) for name in TABLES}
            ledger = tables["processed_events"]
            yield {
                "run_dir": run.run_dir,
                "tables": tables,
                "logins": list(auth.logins),
                "messages": read_messages(loop.stack.maildir),
                "events": len(ledger),
                "audit": loop.audit_count(),
            }
    finally:
        mailbox.stop()
        mp.undo()


def _body_lines(messages: list[Any]) -> set[str]:
    """Distinctive lines of what was emailed (long enough not to occur by chance).

    From the text part: its lines carry their labels ("Alert key: ..."), so an id that rightly
    appears in a table or a log line on its own is not mistaken for the email's text.
    """
    lines: set[str] = set()
    for msg in messages:
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                text = part.get_content()
                lines |= {ln.strip() for ln in text.splitlines() if len(ln.strip()) >= 30}
    return lines


def _searchable_files(run_dir: Path) -> list[Path]:
    maildir = run_dir / "mailbox"
    return [p for p in run_dir.rglob("*") if p.is_file() and maildir not in p.parents]


def test_the_loop_ran_and_used_the_password(finished_loop: dict[str, Any]) -> None:
    assert finished_loop["events"] == finished_loop["audit"] > 0
    assert finished_loop["messages"], "no alert email was sent: nothing to search for"
    assert finished_loop["logins"] and all(ok for _, ok in finished_loop["logins"])


def test_no_log_of_any_process_holds_the_password_or_an_email_body(
    finished_loop: dict[str, Any],
) -> None:
    logs = sorted((finished_loop["run_dir"] / "logs").glob("*.log"))
    assert {p.stem for p in logs} >= {"warehouse", "model_server", "function", "dispatcher"}
    markers = _body_lines(finished_loop["messages"])
    assert len(markers) >= 3
    for path in logs:
        text = path.read_text(errors="replace")
        assert PASSWORD not in text, f"the SMTP password is in {path.name}"
        leaked = [m for m in markers if m in text]
        assert not leaked, f"email text in {path.name}: {leaked[:3]}"


def test_no_table_and_no_file_of_the_run_holds_the_password(
    finished_loop: dict[str, Any],
) -> None:
    for name, frame in finished_loop["tables"].items():
        for column in frame.columns:
            values = frame[column].dropna().astype(str)
            assert not values.str.contains(PASSWORD, regex=False).any(), f"{name}.{column}"
    for path in _searchable_files(finished_loop["run_dir"]):
        assert PASSWORD.encode() not in path.read_bytes(), f"the password is in {path}"


def test_warehouse_tables_hold_no_email_text(finished_loop: dict[str, Any]) -> None:
    markers = _body_lines(finished_loop["messages"])
    for name, frame in finished_loop["tables"].items():
        text = "\n".join(
            frame[c].dropna().astype(str).str.cat(sep="\n")
            for c in frame.columns
            if frame[c].dtype == object
        )
        leaked = [m for m in markers if m in text]
        assert not leaked, f"email text stored in {name}: {leaked[:3]}"
    assert isinstance(finished_loop["tables"]["alerts"], pd.DataFrame)
