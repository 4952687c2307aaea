"""Structured JSON logs, with secrets redacted before anything is written.

Log events name ids and counts, never email bodies. As a second line of defence, any value that
equals a registered secret (or a key that looks like one) is replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_VALUES: set[str] = set()
_SECRET_KEYS = ("password", "secret", "token", "authorization", "body", "html")


def register_secret(value: str | None) -> None:
    """Values registered here never reach a log line, whatever key carries them."""
    if value and len(value) >= 4:
        _SECRET_VALUES.add(value)


def redact_text(text: str) -> str:
    """``text`` with every registered secret replaced: for text that leaves the process other
    than through the logger (an error message published with a dead-lettered event)."""
    for secret in _SECRET_VALUES:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event_dict[key] = "[REDACTED]"
        elif isinstance(value, str) and _SECRET_VALUES:
            for secret in _SECRET_VALUES:
                if secret in value:
                    value = value.replace(secret, "[REDACTED]")
            event_dict[key] = value
    return event_dict


def configure(level: str = "INFO", *, json: bool = True) -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer()
            if json
            else structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
