"""Where events go that the function gives up on.

Eventarc retries a failed delivery of an audit-log event with exponential backoff for up to 24
hours and then drops it; neither ``google_eventarc_trigger`` nor the function's ``event_trigger``
has a dead-letter setting (provider 8.7: the transport topic and subscription are Eventarc's).
So the dead-letter path is explicit: the function publishes an event that is still failing when
it is older than ``events.dead_letter_after_s`` (23 h) to this topic, named in its
``DEAD_LETTER_TOPIC`` environment variable, and acknowledges it (:mod:`salesloop.dead_letter`;
malformed events are not dead-lettered: the handler rejects them with a logged reason). The hold
subscription keeps those events for inspection and replay; any message published here opens an
incident (:mod:`modules.alerting`).
"""

from __future__ import annotations

from cdktn_provider_google.pubsub_subscription import PubsubSubscription
from cdktn_provider_google.pubsub_topic import PubsubTopic
from constructs import Construct

from modules.context import StackContext, named

TOPIC_NAME = "on-sale-dead-letter"


class DeadLetter(Construct):
    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        retention = f"{ctx.infra.dead_letter_retention_days * 86400}s"
        self.topic = named(
            PubsubTopic(
                self,
                "topic",
                name=TOPIC_NAME,
                project=ctx.project,
                kms_key_name=ctx.regional_key,
                message_retention_duration=retention,
                message_storage_policy={"allowed_persistence_regions": [ctx.region]},
                labels=ctx.labels("events"),
                depends_on=ctx.kms_grants or None,
            ),
            "dead_letter_topic",
        )
        ctx.accept_no_cmek(self.topic, "CKV_GCP_83")
        self.hold = named(
            PubsubSubscription(
                self,
                "hold",
                name=f"{TOPIC_NAME}-hold",
                project=ctx.project,
                topic=self.topic.id,
                ack_deadline_seconds=60,
                message_retention_duration=retention,
                retain_acked_messages=False,
                expiration_policy={"ttl": ""},  # never expires while idle
                labels=ctx.labels("events"),
            ),
            "dead_letter_hold",
        )

    @property
    def topic_path(self) -> str:
        return self.topic.id
