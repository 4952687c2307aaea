"""PubSubDeadLetter with the real google-cloud-pubsub PublisherClient against a local endpoint.

What reaches the wire is checked on the recorded ``PublishRequest``: the topic, one message per
give-up, the data (the CloudEvent in structured mode, rebuilt into the same event) and the
attributes. No real Pub/Sub is involved: the endpoint is the test's own gRPC server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cloudevents.http import from_json

from salesloop.dead_letter import DeadLettered, DeadLetterError, GiveUpRule, PubSubDeadLetter
from salesloop.logging import register_secret
from tests.dead_letter.conftest import TOPIC, Failing, FakePublisher, insert_event

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_publish_sends_the_structured_event_and_its_attributes(pubsub: FakePublisher) -> None:
    event = insert_event(timedelta(hours=23, minutes=30), now=NOW)
    PubSubDeadLetter(TOPIC, timeout_s=5).publish(event, "RuntimeError: boom", 84_600.4)

    assert len(pubsub.requests) == 1
    request = pubsub.requests[0]
    assert request.topic == TOPIC
    assert len(request.messages) == 1
    message = request.messages[0]
    assert dict(message.attributes) == {
        "ce-id": "ev-1",
        "ce-source": event["source"],
        "ce-type": "google.cloud.audit.log.v1.written",
        "ce-time": "2026-12-04T12:30:00Z",
        "ce-subject": event["subject"],
        "reason": "RuntimeError: boom",
        "age-seconds": "84600",
    }
    body = json.loads(message.data)
    assert body["specversion"] == "1.0" and body["id"] == "ev-1"
    assert body["data"] == event.get_data()
    replayed = from_json(message.data)  # what a replay reads back
    assert dict(replayed.get_attributes()) == dict(event.get_attributes())
    assert replayed.get_data() == event.get_data()


def test_long_or_non_ascii_reasons_fit_a_pubsub_attribute(pubsub: FakePublisher) -> None:
    event = insert_event(DAY, now=NOW)
    PubSubDeadLetter(TOPIC, timeout_s=5).publish(event, "é" * 2000, 90_000)
    reason = pubsub.requests[0].messages[0].attributes["reason"]
    assert len(reason.encode()) <= 1024 and set(reason) == {"é"}


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE],
)
def test_a_failed_publish_raises(pubsub: FakePublisher, code: grpc.StatusCode) -> None:
    pubsub.fail_with = code
    with pytest.raises(DeadLetterError, match=r"publishing to .* failed"):
        PubSubDeadLetter(TOPIC, timeout_s=1.0).publish(insert_event(DAY), "r", 90_000)
    assert pubsub.requests == []
    if code == grpc.StatusCode.UNAVAILABLE:
        assert pubsub.calls > 1, "a transient failure is retried within the timeout"
    else:
        assert pubsub.calls == 1


@pytest.mark.parametrize("topic", [None, "", "on-sale-dead-letter", "projects/x/topics/y"])
def test_a_missing_or_malformed_topic_raises_without_calling_pubsub(
    pubsub: FakePublisher, topic: str | None
) -> None:
    with pytest.raises(DeadLetterError, match="no valid dead-letter topic"):
        PubSubDeadLetter(topic).publish(insert_event(DAY), "r", 90_000)
    assert pubsub.calls == 0


def test_give_up_rule_through_pubsub(pubsub: FakePublisher) -> None:
    """Young → the failure propagates (5xx); old → published and acknowledged; publish fails →
    the failure propagates again; a fixed handler processes the old event normally."""
    handler = Failing(RuntimeError("endpoint 503\nresponse body: <html>…"))
    rule = GiveUpRule(
        handler, PubSubDeadLetter(TOPIC, timeout_s=1.0), max_age_s=23 * 3600, clock=lambda: NOW
    )

    with pytest.raises(RuntimeError, match="endpoint 503"):
        rule.handle(insert_event(timedelta(hours=22), now=NOW, event_id="young"))
    assert pubsub.calls == 0

    old = insert_event(timedelta(hours=23, seconds=1), now=NOW, event_id="old")
    outcome = rule.handle(old)
    assert isinstance(outcome, DeadLettered)
    assert outcome.event_id == "old" and outcome.reason == "RuntimeError: endpoint 503"
    assert outcome.age_s == pytest.approx(23 * 3600 + 1)
    (message,) = pubsub.requests[0].messages
    assert message.attributes["ce-id"] == "old"
    assert message.attributes["reason"] == "RuntimeError: endpoint 503"  # first line only

    pubsub.fail_with = grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(DeadLetterError) as failed:
        rule.handle(old)
    assert isinstance(failed.value.__cause__, DeadLetterError)  # the sink's error, chained
    assert len(pubsub.requests) == 1

    handler.fixed = True
    assert rule.handle(old) == "processed"


def test_registered_secrets_never_leave_with_the_reason(pubsub: FakePublisher) -> None:
    register_secret("s3cr3t-smtp-pw-canary")
    handler = Failing(RuntimeError("login failed for s3cr3t-smtp-pw-canary"))
    rule = GiveUpRule(
        handler, PubSubDeadLetter(TOPIC, timeout_s=5), max_age_s=60, clock=lambda: NOW
    )
    rule.handle(insert_event(DAY, now=NOW))
    message = pubsub.requests[0].messages[0]
    assert b"s3cr3t" not in message.data
    assert all("s3cr3t" not in v for v in message.attributes.values())
    assert message.attributes["reason"] == "RuntimeError: login failed for [REDACTED]"
