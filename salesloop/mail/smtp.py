"""SMTP delivery with bounded retries: the same code talks to aiosmtpd locally and a relay in the cloud.

What is retried: failures after which the message was certainly *not* accepted and that usually
pass (connection refused or reset, timeouts, the server closing the connection, 4xx replies such
as 421 "try again later" or 451 "local error"). What is not: 5xx replies and authentication or
TLS-certificate failures, which will fail the same way on every attempt. Either way the caller gets
one :class:`MailDeliveryError` saying how many attempts were made and what the last error was.

What is retried is bounded by :class:`RetryPolicy` (attempts and total time), passed by the caller.

Exactly-once is not something SMTP can promise: if the connection drops after the server stored
the message but before its 250 reached us, a retry sends it again. That is why the Message-ID is
deterministic (see :mod:`salesloop.mail.render`) and the local mailbox drops a repeated one.

Logs carry the Message-ID, the number of recipients, the attempt and the error class; never the
body, the addresses or the password.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from salesloop.config import SmtpSettings


def _log() -> Any:
    # A fresh proxy per send: a module-level one would be frozen by whichever structlog
    # configuration was active at its first use (cache_logger_on_first_use).
    return structlog.get_logger("salesloop.mail.smtp")


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class MailDeliveryError(RuntimeError):
    """The message could not be handed to the SMTP server (after retries, or permanently)."""

    def __init__(
        self, message: str, *, message_id: str | None, attempts: int, permanent: bool
    ) -> None:
        super().__init__(message)
        self.message_id = message_id
        self.attempts = attempts
        self.permanent = permanent


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff, bounded both by attempts and by total time (the function has a
    deadline, and an event redelivery will try again later anyway)."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_elapsed_s: float = 60.0


@dataclass(frozen=True)
class SendResult:
    message_id: str | None
    accepted: int
    refused: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    attempts: int = 1


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "smtp_code", None)
    return int(code) if isinstance(code, int) else None


def is_transient(exc: BaseException) -> bool:
    """True for failures worth another attempt (see the module docstring)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= c < 500 for c in codes)
    if isinstance(exc, smtplib.SMTPResponseException):  # incl. 454 vs 535 on AUTH
        code = _code(exc)
        return code is not None and 400 <= code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPException):  # e.g. STARTTLS or AUTH not supported
        return False
    if isinstance(exc, ssl.SSLError):  # wrong port, bad certificate: configuration, not luck
        return False
    # Refused/reset connections, timeouts, unreachable networks, DNS hiccups.
    return isinstance(exc, OSError)


def _describe(exc: BaseException) -> str:
    """Error class and SMTP code only: server replies can echo addresses."""
    code = _code(exc)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({c for c, _ in exc.recipients.values()})
        return f"SMTPRecipientsRefused {codes}"
    return type(exc).__name__ + (f" {code}" if code is not None else "")


def _recipient_count(msg: EmailMessage) -> int:
    fields = [str(v) for h in ("To", "Cc", "Bcc") for v in (msg.get_all(h) or [])]
    return len({addr for _, addr in getaddresses(fields) if addr})


class SmtpMailer:
    """``send(msg)`` over SMTP as configured by :class:`SmtpSettings`.

    ``security``: ``none`` (plain, loopback only when logging in), ``starttls`` (upgrade, then
    EHLO again), ``ssl`` (implicit TLS, usually port 465). ``ssl_context`` defaults to the system
    trust store; tests pass one that trusts their self-signed certificate.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        password: str | None,
        *,
        retry: RetryPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if settings.username and password is None:
            raise ValueError(
                f"SMTP user {settings.username!r} is configured but no password was given "
                f"(secret {settings.secret_name!r})"
            )
        if settings.username and settings.security == "none" and settings.host not in _LOOPBACK:
            raise ValueError(
                f"refusing to send the SMTP password in clear text to {settings.host}: "
                "set smtp.security to starttls or ssl"
            )
        self.settings = settings
        self._password = password
        self.retry = retry or RetryPolicy()
        self._ssl_context = ssl_context
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the password, even in a debugger or a traceback
        s = self.settings
        return f"SmtpMailer({s.host}:{s.port}, security={s.security}, user={s.username!r})"

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        client: smtplib.SMTP
        if s.security == "ssl":
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=self._context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        try:
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=self._context())
                client.ehlo()
            if s.username:
                assert self._password is not None
                self._login(client, s.username, self._password)
        except BaseException:
            client.close()
            raise
        return client

    @staticmethod
    def _login(client: smtplib.SMTP, username: str, password: str) -> None:
        """One AUTH attempt with PLAIN when offered (always over TLS or loopback here).

        ``SMTP.login`` would try every advertised mechanism in turn with the same credentials: a
        wrong password then costs several failed logins (lockout policies count them) and, with
        some servers, a read timeout that looks transient instead of a clear 535.
        """
        advertised = client.esmtp_features.get("auth", "").upper().split()
        if "PLAIN" in advertised:
            client.user, client.password = username, password
            client.auth("PLAIN", client.auth_plain)
        else:
            client.login(username, password)

    def _attempt(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        client = self._connect()
        try:
            refused = client.send_message(msg)
        except BaseException:
            client.close()
            raise
        # The message is accepted: a failing QUIT must not turn into a retry (a duplicate).
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
        return refused

    def send(self, msg: EmailMessage) -> None:
        """Deliver or raise :class:`MailDeliveryError` (the port the function is given)."""
        self.deliver(msg)

    def deliver(self, msg: EmailMessage) -> SendResult:
        """:meth:`send`, returning attempts and any recipients the server refused."""
        message_id = str(msg["Message-ID"]) if msg["Message-ID"] else None
        recipients = _recipient_count(msg)
        policy = self.retry
        bound = _log().bind(message_id=message_id, recipients=recipients)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            bound.warning(
                "mail.retry",
                attempt=state.attempt_number,
                error=_describe(exc) if exc else None,
                wait_s=round(state.upcoming_sleep, 3),
            )

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_elapsed_s),
            wait=wait_exponential(
                multiplier=policy.initial_backoff_s,
                min=policy.initial_backoff_s,
                max=policy.max_backoff_s,
            ),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        attempts = 0

        def attempt() -> dict[str, tuple[int, bytes]]:
            nonlocal attempts
            attempts += 1
            return self._attempt(msg)

        started = time.monotonic()
        try:
            refused = retrying(attempt)
        except Exception as exc:
            permanent = not is_transient(exc)
            what = _describe(exc)
            bound.error("mail.failed", attempts=attempts, error=what, permanent=permanent)
            s = self.settings
            raise MailDeliveryError(
                f"could not deliver {message_id or 'message'} via {s.host}:{s.port} after "
                f"{attempts} attempt{'s' if attempts != 1 else ''}: {what}"
                + (" (permanent)" if permanent else " (gave up retrying)"),
                message_id=message_id,
                attempts=attempts,
                permanent=permanent,
            ) from exc
        if refused:
            # Some recipients were refused but the others have the message: retrying would
            # duplicate it for them. Report the count; the caller decides.
            bound.warning("mail.partially_refused", refused=len(refused))
        bound.info(
            "mail.sent",
            attempts=attempts,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return SendResult(message_id, recipients - len(refused), dict(refused), attempts)


__all__ = [
    "MailDeliveryError",
    "RetryPolicy",
    "SendResult",
    "SmtpMailer",
    "is_transient",
]
