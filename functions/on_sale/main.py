"""Cloud Function gen2 entry point: BigQuery insert (audit-log CloudEvent via Eventarc) → forecast.

The same file is served locally by functions-framework (``--signature-type cloudevent``). An
exception propagates as HTTP 500 so Eventarc (or the local dispatcher) redelivers; malformed events
are acknowledged inside the handler because retrying them cannot help.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from salesloop.runtime import Runtime

_runtime: Runtime | None = None


@functions_framework.cloud_event
def on_sale(cloud_event: Any) -> None:
    global _runtime
    if _runtime is None:  # built on the first event: cold start pays once, not per request
        _runtime = Runtime.from_environment()
    _runtime.handler.handle(cloud_event)
