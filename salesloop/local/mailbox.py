"""The local environment's mail server: real SMTP (aiosmtpd) into a Maildir on disk.

Every message the loop sends locally goes through the same :class:`~salesloop.mail.smtp.SmtpMailer`
as in the cloud and lands here as a file, so tests and the demo read what a recipient would get.

Idempotent on Message-ID: a message whose Message-ID is already in the Maildir is answered with
250 but not stored again. This is the local stand-in for the dedup the cloud path needs when the
function crashes (or its connection drops) between the server's DATA acknowledgement and our
bookkeeping (marking the alert sent): the redelivered event re-sends the same message with the same
deterministic Message-ID, and the recipient sees it once. The Message-IDs live in an index file
next to the Maildir (one line per stored message, appended and fsynced), so the check is a set
lookup and survives restarts; at start-up the index is reconciled with the Maildir in case a crash
fell between storing a message and indexing it.

Run: ``python -m salesloop.local.mailbox --host 127.0.0.1 --port 8025 --maildir runs/local/mailbox``
(until SIGTERM or SIGINT; ``--port 0`` picks a free port and prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import mailbox
import os
import sys
import threading
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.controller import Controller

from salesloop.stop_signals import StopSignals


def _log() -> Any:
    return structlog.get_logger("salesloop.local.mailbox")


INDEX_NAME = ".salesloop-message-ids"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _message_id(raw: bytes) -> str | None:
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = headers.get("Message-ID")
    if not value:
        return None
    # A long header may arrive folded; the id itself never contains whitespace.
    return "".join(str(value).split()) or None


class MaildirStore:
    """A Maildir plus the Message-ID index that makes delivery idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.maildir = mailbox.Maildir(self.path, create=True)
        self.index_path = self.path / INDEX_NAME
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}  # Message-ID -> Maildir key
        self._load_index()

    def _load_index(self) -> None:
        indexed_keys: set[str] = set()
        if self.index_path.exists():
            for line in self.index_path.read_text(encoding="utf-8").splitlines():
                msg_id, _, key = line.partition("\t")
                if key:
                    indexed_keys.add(key)
                    if msg_id:
                        self._ids[msg_id] = key
        # Reconcile: a message stored but not indexed (crash between the two) is indexed now.
        missing = [k for k in self.maildir.iterkeys() if k not in indexed_keys]
        for key in sorted(missing):
            raw = self.maildir.get_bytes(key)
            self._append_index(_message_id(raw), key)

    def _append_index(self, msg_id: str | None, key: str) -> None:
        with open(self.index_path, "a", encoding="utf-8") as fh:
            fh.write(f"{msg_id or ''}\t{key}\n")
            fh.flush()
            os.fsync(fh.fileno())
        if msg_id:
            self._ids[msg_id] = key

    def deliver(self, raw: bytes) -> tuple[bool, str | None]:
        """Store ``raw`` unless its Message-ID is already here; (stored, message_id)."""
        msg_id = _message_id(raw)
        with self._lock:
            if msg_id and msg_id in self._ids:
                return False, msg_id
            key = self.maildir.add(raw)
            self._append_index(msg_id, key)
        return True, msg_id

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._ids


class MaildirHandler:
    """aiosmtpd handler: DATA → :meth:`MaildirStore.deliver`."""

    def __init__(self, store: MaildirStore) -> None:
        self.store = store
        self.stored = 0
        self.duplicates = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        stored, msg_id = self.store.deliver(raw)
        if stored:
            self.stored += 1
            _log().info("mailbox.stored", message_id=msg_id, recipients=len(envelope.rcpt_tos))
            return "250 Message accepted for delivery"
        self.duplicates += 1
        _log().info("mailbox.duplicate", message_id=msg_id, recipients=len(envelope.rcpt_tos))
        return "250 Message accepted (duplicate Message-ID, not stored again)"


class _Controller(Controller):
    """aiosmtpd's Controller, able to bind port 0 (it would try to connect to port 0)."""

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class MailboxServer:
    """An SMTP server on loopback writing to a Maildir; a context manager for tests."""

    def __init__(self, maildir: Path, *, host: str = "127.0.0.1", port: int = 0, **smtp: Any):
        if host not in _LOOPBACK:
            raise ValueError(f"the local mailbox binds to loopback only, not {host!r}")
        self.store = MaildirStore(Path(maildir))
        self.handler = MaildirHandler(self.store)
        # A fixed server name: aiosmtpd's default is socket.getfqdn(), a DNS lookup that can
        # stall start-up for seconds on a machine without a resolver.
        smtp.setdefault("server_hostname", "salesloop-mailbox.localhost")
        self._controller = _Controller(self.handler, hostname=host, port=port, **smtp)

    @property
    def host(self) -> str:
        return str(self._controller.hostname)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> MailboxServer:
        self._controller.start()
        _log().info(
            "mailbox.listening", host=self.host, port=self.port, maildir=str(self.store.path)
        )
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _message_paths(maildir: Path) -> list[Path]:
    files = [
        p for sub in ("new", "cur") if (maildir / sub).is_dir() for p in (maildir / sub).iterdir()
    ]
    files = [p for p in files if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def count_messages(maildir: Path | str) -> int:
    return len(_message_paths(Path(maildir)))


def read_messages(maildir: Path | str) -> list[EmailMessage]:
    """Every stored message, oldest first, parsed with the modern email policy."""
    parser = BytesParser(_class=EmailMessage, policy=email.policy.default)
    out: list[EmailMessage] = []
    for path in _message_paths(Path(maildir)):
        msg = parser.parsebytes(path.read_bytes())
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m salesloop.local.mailbox",
        description="Local SMTP server writing every message into a Maildir (dedup on Message-ID).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)

    stop = StopSignals().install()
    try:
        server = MailboxServer(args.maildir, host=args.host, port=args.port).start()
    except (OSError, ValueError) as exc:
        print(f"mailbox: cannot start: {exc}", file=sys.stderr)
        return 2
    print(f"mailbox listening on {server.host}:{server.port} -> {args.maildir}", flush=True)
    try:
        stop.wait()
        _log().info("mailbox.stopping", signal=stop.signal_name)
    finally:
        server.stop()
    print(
        f"mailbox stopped: {server.handler.stored} stored, {server.handler.duplicates} duplicates",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
