"""Giving up on an event: the dead-letter port, its two adapters, and the rule that uses them.

Eventarc has no dead-letter setting: it retries a failing audit-log event with backoff for up to
24 hours and then drops it without a trace. So the function decides when to stop failing:

* an event whose processing raises is retried (the exception answers 5xx) while it is young;
* once its age (the CloudEvent ``time`` attribute against the clock) exceeds
  ``events.dead_letter_after_s`` (23 h by default, below Eventarc's window), the next failure
  publishes it to the dead-letter sink with the reason and answers 2xx;
* if that publish fails, the event fails as before, and Eventarc retries it: nothing is lost;
* a missing or unreadable ``time`` counts as young: such an event is never given up on by this
  rule (it keeps failing loudly, and the function-errors alert shows it), because an age we cannot
  read must not turn a retry into an acknowledgement.

Two sinks side by side, chosen by ``events.dead_letter``: :class:`PubSubDeadLetter` publishes the
CloudEvent (structured-mode JSON) to the topic the stack names in ``DEAD_LETTER_TOPIC``;
:class:`LocalDeadLetter` marks it dead in the local dispatcher's store, where the dispatcher's own
dead letters live, so ``salesloop events status|redeliver-dead`` shows and replays both kinds.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from salesloop.config import PUBSUB_TOPIC_PATTERN, Settings
from salesloop.logging import redact_text

log = structlog.get_logger("on_sale")

TOPIC_PATTERN = re.compile(PUBSUB_TOPIC_PATTERN)
# The local dispatcher's state file in the run folder (salesloop.local.stack, salesloop.cli).
DISPATCHER_STATE = "dispatcher.sqlite"
# Pub/Sub limits an attribute value to 1,024 bytes.
_ATTRIBUTE_BYTES = 1024
_REASON_CHARS = 300
# Longer than any RFC 3339 timestamp: a longer value is not one, and is not parsed at all.
_MAX_TIME_CHARS = 64


class DeadLetterError(RuntimeError):
    """The event could not be dead-lettered; it must fail so that it is delivered again."""


class DeadLetterSink(Protocol):
    """Where the function puts an event it stops retrying. ``publish`` returns only once the
    event is stored durably; it raises otherwise."""

    def publish(self, event: Any, reason: str, age_s: float) -> None: ...


class EventHandler(Protocol):
    def handle(self, cloud_event: Any) -> Any: ...


# -- the event's age --------------------------------------------------------------------------


def event_attributes(event: Any) -> dict[str, Any]:
    """The CloudEvent's context attributes (a ``cloudevents`` event or a plain mapping)."""
    getter = getattr(event, "get_attributes", None)
    if callable(getter):
        return dict(getter())
    if isinstance(event, Mapping):
        return dict(event)
    return {}


def event_time(event: Any) -> datetime | None:
    """The ``time`` attribute as an aware datetime; None when absent or not RFC 3339 with an
    offset (a naive timestamp has no defined age)."""
    value = event_attributes(event).get("time")
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 0 < len(value) <= _MAX_TIME_CHARS:
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed


def event_age_s(event: Any, now: datetime) -> float | None:
    """Seconds from the event's ``time`` to ``now``; None when the time cannot be read."""
    sent = event_time(event)
    if sent is None:
        return None
    try:
        age = (now - sent).total_seconds()
    except (OverflowError, ValueError):
        return None
    return age if math.isfinite(age) else None


# -- what is published ------------------------------------------------------------------------


def failure_reason(exc: BaseException) -> str:
    """Exception class and the first line of its message, short, registered secrets removed:
    it travels with the event and into logs, where a long message (SQL, a response) has no place."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    text = redact_text(text)
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def _fit(value: str) -> str:
    raw = value.encode()
    if len(raw) <= _ATTRIBUTE_BYTES:
        return value
    return raw[:_ATTRIBUTE_BYTES].decode(errors="ignore")


def message_attributes(event: Any, reason: str, age_s: float) -> dict[str, str]:
    """Pub/Sub attributes of a dead-lettered event: enough to filter and triage without parsing
    the body (``ce-*`` as in the CloudEvents Pub/Sub binding, plus why and how old)."""
    attrs = event_attributes(event)
    out: dict[str, str] = {}
    for name in ("id", "source", "type", "time", "subject"):
        value = attrs.get(name)
        if value is not None and str(value):
            out[f"ce-{name}"] = _fit(
                value.isoformat() if isinstance(value, datetime) else str(value)
            )
    out["reason"] = _fit(reason or "unknown")
    out["age-seconds"] = f"{age_s:.0f}"
    return out


def structured_json(event: Any) -> bytes:
    """The CloudEvent in structured mode (JSON with the attributes and ``data``/``data_base64``),
    so that a replay can rebuild exactly the event that was given up on."""
    from cloudevents.conversion import to_json

    try:
        return bytes(to_json(event))
    except Exception as exc:  # an event the SDK cannot encode must fail, not vanish
        raise DeadLetterError(f"cannot encode the event as JSON ({type(exc).__name__})") from exc


# -- the two sinks ----------------------------------------------------------------------------


def _retryable() -> Callable[[Exception], bool]:
    from google.api_core import exceptions as gexc
    from google.api_core.retry import if_exception_type

    # What the generated Publisher client retries by default.
    return if_exception_type(
        gexc.Aborted,
        gexc.Cancelled,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.ResourceExhausted,
        gexc.ServiceUnavailable,
        gexc.Unknown,
    )


class PubSubDeadLetter:
    """Publishes to a Pub/Sub topic with google-cloud-pubsub's PublisherClient.

    The client is built on the first give-up, not at cold start (it is rarely needed and costs an
    import and a channel). One message per request (``max_messages=1``), and every retry within
    ``timeout_s``: the function must answer well within its own timeout either way. The client
    honours ``PUBSUB_EMULATOR_HOST`` (insecure channel, anonymous credentials).
    """

    kind = "pubsub"

    def __init__(self, topic: str | None, *, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                import google.cloud.pubsub_v1 as pubsub_v1
                from google.api_core.retry import Retry

                self._client = pubsub_v1.PublisherClient(
                    batch_settings=pubsub_v1.types.BatchSettings(max_messages=1),
                    publisher_options=pubsub_v1.types.PublisherOptions(
                        retry=Retry(
                            predicate=_retryable(),
                            initial=0.1,
                            maximum=min(5.0, self.timeout_s),
                            multiplier=2.0,
                            timeout=self.timeout_s,
                        ),
                        timeout=self.timeout_s,
                    ),
                )
            return self._client

    def publish(self, event: Any, reason: str, age_s: float) -> None:
        if not self.topic or not TOPIC_PATTERN.match(self.topic):
            raise DeadLetterError(
                f"no valid dead-letter topic (DEAD_LETTER_TOPIC or events.dead_letter_topic): "
                f"{self.topic!r}"
            )
        data = structured_json(event)
        attributes = message_attributes(event, reason, age_s)
        try:
            future = self._publisher().publish(self.topic, data, **attributes)
            future.result(timeout=self.timeout_s + 5.0)
        except Exception as exc:
            raise DeadLetterError(
                f"publishing to {self.topic} failed ({type(exc).__name__})"
            ) from exc


class LocalDeadLetter:
    """Marks the event dead in the local dispatcher's store (``<run_dir>/dispatcher.sqlite``).

    The dispatcher then keeps it dead when the function's 2xx comes back, and
    ``salesloop events redeliver-dead`` requeues it with the dispatcher's own dead letters.
    """

    kind = "local"

    def __init__(self, state: Path) -> None:
        self.state = Path(state)

    def publish(self, event: Any, reason: str, age_s: float) -> None:
        from salesloop.local.dispatcher import DeliveryStore

        attributes = event_attributes(event)
        getter = getattr(event, "get_data", None)
        data = getter() if callable(getter) else None
        try:
            json.dumps(attributes)
            json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise DeadLetterError(
                f"the local dead letter stores JSON events only ({type(exc).__name__})"
            ) from exc
        if not attributes.get("id"):
            raise DeadLetterError("an event without an id cannot be stored for replay")
        store = DeliveryStore(self.state)
        try:
            store.dead_letter(
                attributes, data, f"dead-lettered by the function at age {age_s:.0f} s: {reason}"
            )
        finally:
            store.close()


def open_dead_letter(settings: Settings) -> DeadLetterSink:
    if settings.events.dead_letter == "local":
        return LocalDeadLetter(settings.run_dir / DISPATCHER_STATE)
    topic = os.environ.get("DEAD_LETTER_TOPIC") or settings.events.dead_letter_topic
    return PubSubDeadLetter(topic, timeout_s=settings.events.dead_letter_timeout_s)


# -- the rule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLettered:
    """The outcome of an event given up on (the function acknowledges it)."""

    event_id: str | None
    reason: str
    age_s: float
    status: Literal["dead_lettered"] = "dead_lettered"


class GiveUpRule:
    """The function's entry point: the handler, with the give-up rule around it."""

    def __init__(
        self,
        handler: EventHandler,
        sink: DeadLetterSink,
        *,
        max_age_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.handler = handler
        self.sink = sink
        self.max_age_s = max_age_s
        self.clock = clock

    def handle(self, cloud_event: Any) -> Any:
        try:
            return self.handler.handle(cloud_event)
        except Exception as exc:
            age = event_age_s(cloud_event, self.clock())
            if age is None or age <= self.max_age_s:
                raise  # young, or of unknown age: fail, and be delivered again
            return self._give_up(cloud_event, exc, age)

    def _give_up(self, cloud_event: Any, exc: Exception, age: float) -> DeadLettered:
        attrs = event_attributes(cloud_event)
        event_id = str(attrs["id"]) if attrs.get("id") is not None else None
        reason = failure_reason(exc)
        context = {
            "event_id": event_id,
            "event_type": attrs.get("type"),
            "age_s": round(age),
            "max_age_s": self.max_age_s,
            "reason": reason,
            "sink": getattr(self.sink, "kind", type(self.sink).__name__),
        }
        try:
            self.sink.publish(cloud_event, reason, age)
        except Exception as pub_exc:
            log.error("dead_letter_failed", **context, error=failure_reason(pub_exc))
            raise DeadLetterError(
                f"event {event_id} could not be dead-lettered; it stays failing"
            ) from pub_exc
        log.warning("event_dead_lettered", **context)
        return DeadLettered(event_id, reason, age)
