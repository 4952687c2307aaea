"""The local mailbox: Maildir delivery, dedup on Message-ID across restarts, the CLI lifecycle."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import os
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from salesloop.local.mailbox import (
    INDEX_NAME,
    MailboxServer,
    MaildirStore,
    count_messages,
    read_messages,
)
from tests.mail.conftest import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def message(msg_id: str | None, subject: str = "hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "salesloop@example.com"
    msg["To"] = "owner@example.com"
    msg["Subject"] = subject
    if msg_id:
        msg["Message-ID"] = msg_id
    msg.set_content(f"body of {subject}")
    return msg


def send(port: int, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(msg)


def test_a_repeated_message_id_is_accepted_but_stored_once_across_a_restart(
    tmp_path: Path,
) -> None:
    maildir = tmp_path / "maildir"
    port = free_port()
    with MailboxServer(maildir, port=port) as server:
        send(port, message("<a@salesloop>", "first"))
        send(port, message("<a@salesloop>", "first, again"))  # 250, not stored
        assert (server.handler.stored, server.handler.duplicates) == (1, 1)
    # A new process on the same folder knows what it already has.
    with MailboxServer(maildir, port=port) as server:
        send(port, message("<a@salesloop>", "first, after restart"))
        send(port, message("<b@salesloop>", "second"))
        assert (server.handler.stored, server.handler.duplicates) == (1, 1)
    assert count_messages(maildir) == 2
    assert [m["Subject"] for m in read_messages(maildir)] == ["first", "second"]
    index = (maildir / INDEX_NAME).read_text().splitlines()
    assert [line.split("\t")[0] for line in index] == ["<a@salesloop>", "<b@salesloop>"]


def test_messages_without_message_id_are_all_kept(tmp_path: Path) -> None:
    with MailboxServer(tmp_path / "maildir") as server:
        send(server.port, message(None, "one"))
        send(server.port, message(None, "two"))
    assert count_messages(tmp_path / "maildir") == 2


def test_a_message_stored_but_not_indexed_is_found_at_start_up(tmp_path: Path) -> None:
    """A crash between writing the Maildir file and appending to the index must not lead to a
    second copy when the sender retries."""
    maildir = tmp_path / "maildir"
    MaildirStore(maildir)  # creates the folder and an empty index
    stdlib_mailbox.Maildir(maildir).add(message("<crash@salesloop>").as_bytes())
    store = MaildirStore(maildir)
    assert "<crash@salesloop>" in store
    stored, _ = store.deliver(message("<crash@salesloop>").as_bytes())
    assert not stored
    assert count_messages(maildir) == 1


def test_read_messages_gives_parsed_email_messages(tmp_path: Path) -> None:
    with MailboxServer(tmp_path / "maildir") as server:
        send(server.port, message("<p@salesloop>", "parsed"))
    (msg,) = read_messages(tmp_path / "maildir")
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "body of parsed"


def test_only_loopback_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        MailboxServer(tmp_path / "maildir", host="0.0.0.0")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_runs_until_signalled_and_exits_cleanly(tmp_path: Path, signum: int) -> None:
    maildir = tmp_path / "maildir"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "salesloop.local.mailbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--maildir",
            str(maildir),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "listening on" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "mailbox exited before listening"
        assert f"127.0.0.1:{port}" in line
        send(port, message("<cli@salesloop>"))
        send(port, message("<cli@salesloop>"))
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "1 stored, 1 duplicates" in out
    assert count_messages(maildir) == 1
