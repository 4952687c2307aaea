"""SmtpMailer against a real aiosmtpd server on loopback: delivery, retries, TLS, quiet logs."""

from __future__ import annotations

import smtplib
import socket
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from salesloop.config import SmtpSettings
from salesloop.local.mailbox import MailboxServer, count_messages, read_messages
from salesloop.mail.smtp import MailDeliveryError, RetryPolicy, SmtpMailer, is_transient
from tests.mail.conftest import free_port
from tests.mail.tls import make_cert

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05, max_elapsed_s=10)
BODY = "Confidential body text: FOODS at CA_1 falls 42 percent"
PASSWORD = "correct-horse-battery-staple"


def smtp_settings(port: int, **kw: Any) -> SmtpSettings:
    return SmtpSettings.model_validate({"host": "127.0.0.1", "port": port, **kw})


def message(msg_id: str = "<0123456789abcdef0123456789abcdef@salesloop>") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "salesloop@example.com"
    msg["To"] = "ca1@example.com, foods@example.com"
    msg["Subject"] = "[salesloop] test"
    msg["Message-ID"] = msg_id
    msg.set_content(BODY)
    return msg


def test_send_delivers_into_the_mailbox(mailbox: MailboxServer) -> None:
    mailer = SmtpMailer(smtp_settings(mailbox.port), None, retry=FAST)
    result = mailer.deliver(message())
    assert (result.attempts, result.accepted, result.refused) == (1, 2, {})
    (got,) = read_messages(mailbox.store.path)
    assert got["Message-ID"] == "<0123456789abcdef0123456789abcdef@salesloop>"
    body = got.get_body(("plain",))
    assert body is not None and BODY in str(body.get_content())


def test_server_down_then_up_is_retried_and_delivered_once(tmp_path: Path) -> None:
    port = free_port()
    maildir = tmp_path / "maildir"
    started: list[MailboxServer] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # The first backoff is when the server comes up: the retry must then get through.
        sleeps.append(seconds)
        if not started:
            started.append(MailboxServer(maildir, port=port).start())

    mailer = SmtpMailer(smtp_settings(port), None, retry=FAST, sleep=sleep)
    try:
        result = mailer.deliver(message())
    finally:
        for server in started:
            server.stop()
    assert result.attempts == 2
    assert len(sleeps) == 1
    assert count_messages(maildir) == 1


def test_exhausted_retries_raise_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    sleeps: list[float] = []
    mailer = SmtpMailer(smtp_settings(port), None, retry=FAST, sleep=sleeps.append)
    with pytest.raises(MailDeliveryError) as err:
        mailer.send(message())
    assert err.value.attempts == 4
    assert not err.value.permanent
    assert err.value.message_id == "<0123456789abcdef0123456789abcdef@salesloop>"
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "ConnectionRefusedError" in str(err.value)
    assert sleeps == sorted(sleeps) and len(sleeps) == 3  # exponential, bounded


class _Flaky:
    """Answers DATA with the given replies in turn, then accepts (and counts) messages."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.accepted: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        self.accepted.append(envelope.original_content)
        return "250 OK"


def _serve(handler: Any, **kw: Any) -> Controller:
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), server_hostname="test.localhost", **kw
    )
    controller.start()
    return controller


def test_a_4xx_reply_is_retried() -> None:
    handler = _Flaky("451 4.3.0 try again later")
    controller = _serve(handler)
    try:
        mailer = SmtpMailer(smtp_settings(controller.port), None, retry=FAST, sleep=lambda _: None)
        assert mailer.deliver(message()).attempts == 2
    finally:
        controller.stop()
    assert len(handler.accepted) == 1


def test_a_5xx_reply_is_permanent_and_not_retried() -> None:
    handler = _Flaky("554 5.7.1 rejected")
    controller = _serve(handler)
    try:
        mailer = SmtpMailer(smtp_settings(controller.port), None, retry=FAST, sleep=lambda _: None)
        with pytest.raises(MailDeliveryError) as err:
            mailer.send(message())
    finally:
        controller.stop()
    assert (err.value.attempts, err.value.permanent) == (1, True)
    assert "SMTPDataError 554" in str(err.value)


class _Auth:
    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), data.password.decode()))
        # handled=False: let aiosmtpd answer 535 itself on failure.
        return AuthResult(success=data.password.decode() == PASSWORD, handled=False)


def test_starttls_with_login_delivers_and_logs_nothing_sensitive(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cert = make_cert(tmp_path)
    handler, auth = _Flaky(), _Auth()
    controller = _serve(
        handler,
        tls_context=cert.server_context(),
        require_starttls=True,
        authenticator=auth,
        auth_require_tls=True,
    )
    try:
        settings = smtp_settings(controller.port, security="starttls", username="salesloop")
        mailer = SmtpMailer(settings, PASSWORD, retry=FAST, ssl_context=cert.client_context())
        with structlog.testing.capture_logs() as logs:
            mailer.send(message())
    finally:
        controller.stop()
    assert auth.logins == [("salesloop", PASSWORD)]
    assert len(handler.accepted) == 1
    assert [e["event"] for e in logs] == ["mail.sent"]
    assert logs[0]["message_id"] == "<0123456789abcdef0123456789abcdef@salesloop>"
    assert logs[0]["recipients"] == 2
    out, err = capfd.readouterr()
    everything = repr(logs) + out + err + repr(mailer)
    for secret in (PASSWORD, "Confidential body", "ca1@example.com", "foods@example.com"):
        assert secret not in everything


def test_wrong_password_is_permanent_and_not_logged(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    controller = _serve(
        _Flaky(), tls_context=cert.server_context(), require_starttls=True, authenticator=_Auth()
    )
    try:
        settings = smtp_settings(controller.port, security="starttls", username="salesloop")
        mailer = SmtpMailer(
            settings, "wrong-password-123", retry=FAST, ssl_context=cert.client_context()
        )
        with structlog.testing.capture_logs() as logs, pytest.raises(MailDeliveryError) as err:
            mailer.send(message())
    finally:
        controller.stop()
    assert (err.value.attempts, err.value.permanent) == (1, True)
    assert "SMTPAuthenticationError 535" in str(err.value)
    assert "wrong-password-123" not in repr(logs) + str(err.value)


def test_implicit_tls(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    handler = _Flaky()
    controller = _serve(handler, ssl_context=cert.server_context())
    try:
        mailer = SmtpMailer(
            smtp_settings(controller.port, security="ssl"), None, ssl_context=cert.client_context()
        )
        mailer.send(message())
    finally:
        controller.stop()
    assert len(handler.accepted) == 1


def test_retry_logs_name_the_error_not_the_server_reply(mailbox: MailboxServer) -> None:
    port = free_port()
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)

    mailer = SmtpMailer(smtp_settings(port), None, retry=FAST, sleep=sleep)
    with structlog.testing.capture_logs() as logs, pytest.raises(MailDeliveryError):
        mailer.send(message())
    events = [e["event"] for e in logs]
    assert events == ["mail.retry"] * 3 + ["mail.failed"]
    assert all(e["error"] == "ConnectionRefusedError" for e in logs)
    assert all("body" not in e and "password" not in e for e in logs)


def test_configuration_that_would_leak_or_cannot_log_in_is_refused() -> None:
    with pytest.raises(ValueError, match="no password"):
        SmtpMailer(smtp_settings(25, username="u", security="starttls"), None)
    with pytest.raises(ValueError, match="clear text"):
        SmtpMailer(
            SmtpSettings.model_validate({"host": "smtp.example.com", "username": "u"}), "pw-1234"
        )


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (socket.gaierror(), True),
        (smtplib.SMTPServerDisconnected(), True),
        (smtplib.SMTPDataError(451, b"later"), True),
        (smtplib.SMTPDataError(554, b"no"), False),
        (smtplib.SMTPAuthenticationError(454, b"temporary"), True),
        (smtplib.SMTPAuthenticationError(535, b"bad"), False),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy")}), True),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy"), "b@x": (550, b"no")}), False),
        (smtplib.SMTPNotSupportedError(), False),
        (ValueError(), False),
    ],
)
def test_which_failures_are_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_concurrent_sends_of_the_same_message_are_stored_once(mailbox: MailboxServer) -> None:
    mailer = SmtpMailer(smtp_settings(mailbox.port), None, retry=FAST)
    threads = [threading.Thread(target=mailer.send, args=(message(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert count_messages(mailbox.store.path) == 1
    assert mailbox.handler.duplicates == 3


def test_rendered_json_logs_hold_ids_and_counts_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the real log configuration (JSON on stderr) and no secret registered for redaction:
    what our code logs is safe by itself."""
    from salesloop.logging import configure

    cert = make_cert(tmp_path)
    handler = _Flaky("421 4.3.2 busy")
    controller = _serve(
        handler, tls_context=cert.server_context(), require_starttls=True, authenticator=_Auth()
    )
    configure("INFO", json=True)
    try:
        settings = smtp_settings(controller.port, security="starttls", username="salesloop")
        mailer = SmtpMailer(
            settings, PASSWORD, retry=FAST, ssl_context=cert.client_context(), sleep=lambda _: None
        )
        mailer.send(message())
    finally:
        controller.stop()
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert '"event": "mail.retry"' in err and '"event": "mail.sent"' in err
    assert "0123456789abcdef0123456789abcdef@salesloop" in err
    for secret in (PASSWORD, "Confidential body", "ca1@example.com", "421 4.3.2 busy"):
        assert secret not in err
