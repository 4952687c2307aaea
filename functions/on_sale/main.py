"""Cloud Function gen2 entry point: BigQuery insert (audit-log CloudEvent via Eventarc) → forecast.

The same file is served locally by functions-framework (``--signature-type cloudevent``). An
exception propagates as HTTP 500 so Eventarc (or the local dispatcher) redelivers; malformed events
are acknowledged inside the handler because retrying them cannot help. An event still failing when
it is older than ``events.dead_letter_after_s`` is published to the dead letter and acknowledged
(``salesloop.dead_letter``); if that publish fails, the event fails too and is redelivered.

A request the CloudEvents HTTP binding itself cannot read (required attributes missing or of the
wrong type, a body nested too deep to decode, an unreadable content type) never reaches the
handler: functions-framework would answer 400, 415 or 500, and Eventarc retries every non-2xx
answer until the message expires. Such a request will not become readable by retrying, so it is
acknowledged here too, with the reason logged (the exception class only: the binding's messages
quote headers and body). An exception raised once the handler runs still answers 500.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
import structlog
from werkzeug.exceptions import HTTPException

from salesloop.runtime import Runtime

_runtime: Runtime | None = None
_ENTERED = "salesloop_handler_entered"


def _get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:  # built on the first event: cold start pays once, not per request
        _runtime = Runtime.from_environment()
    return _runtime


@functions_framework.cloud_event
def on_sale(cloud_event: Any) -> None:
    setattr(flask.g, _ENTERED, True)
    _get_runtime().on_event.handle(cloud_event)


@functions_framework.errorhandler(Exception)
def _unreadable_request(exc: Exception) -> Any:
    if flask.has_request_context() and getattr(flask.g, _ENTERED, False):
        raise exc  # the handler failed: 500, redelivered
    if isinstance(exc, HTTPException) and exc.code not in (400, 415):
        return exc  # routing and method errors keep their status
    _get_runtime()  # logging configured even when the first request is an unreadable one
    reason = f"not a readable CloudEvent ({type(exc).__name__})"
    structlog.get_logger("on_sale").warning("event_rejected", reason=reason)
    return "rejected: " + reason, 200
