"""A local Pub/Sub Publisher endpoint (gRPC on 127.0.0.1) for the real google-cloud-pubsub client.

The client library talks to whatever ``PUBSUB_EMULATOR_HOST`` names, over an insecure channel with
anonymous credentials; this server implements the one RPC it calls, ``Publisher.Publish``, records
every request, and can be told to fail with a gRPC status.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.pubsub_v1.types import PublishRequest, PublishResponse

from salesloop.events import build_insert_event

TOPIC = "projects/salesloop-test/topics/on-sale-dead-letter"


@dataclass
class FakePublisher:
    requests: list[PublishRequest] = field(default_factory=list)
    fail_with: grpc.StatusCode | None = None
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        with self.lock:
            self.calls += 1
            if self.fail_with is not None:
                context.abort(self.fail_with, "injected failure")
            self.requests.append(request)
            first = sum(len(r.messages) for r in self.requests) - len(request.messages)
        return PublishResponse(message_ids=[str(first + i) for i in range(len(request.messages))])


@pytest.fixture
def pubsub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePublisher]:
    fake = FakePublisher()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "google.pubsub.v1.Publisher",
                {
                    "Publish": grpc.unary_unary_rpc_method_handler(
                        fake.publish,
                        request_deserializer=PublishRequest.deserialize,
                        response_serializer=PublishResponse.serialize,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    try:
        yield fake
    finally:
        server.stop(grace=None)


def insert_event(age: timedelta, *, now: datetime | None = None, event_id: str = "ev-1") -> Any:
    """An audit-log CloudEvent (what Eventarc sends) whose ``time`` is ``age`` before ``now``."""
    now = now or datetime.now(UTC)
    return build_insert_event(
        event_id=event_id,
        project="salesloop-local",
        dataset="salesloop",
        table="sales",
        job_id=f"job-{event_id}",
        inserted_rows=3,
        committed_at=now - age,
    )


class Failing:
    """The handler port, failing (like a warehouse or endpoint outage) until ``fixed``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or RuntimeError("warehouse unavailable")
        self.fixed = False
        self.calls = 0

    def handle(self, cloud_event: Any) -> str:
        self.calls += 1
        if not self.fixed:
            raise self.error
        return "processed"
