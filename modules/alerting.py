"""Cloud Monitoring alert policies and the email channels they notify.

Three failure modes of the loop, each with the threshold its environment sets
(``infra.alerting``): the function failing (5xx of its Cloud Run service), events dead-lettered
(successful publishes to the dead-letter topic), and the endpoint slowing down (p99 online
prediction latency). Drift and accuracy are alerted by the monitoring pipeline itself.

Dead letters are counted as successful publish *requests* (``topic/send_request_count`` with
``response_class = "success"``): the function publishes one event per request
(``salesloop.dead_letter.PubSubDeadLetter``, ``max_messages=1``), so requests are events. A publish
that fails is not a dead letter (the event is retried) and shows in the function-errors policy.
``topic/send_message_operation_count`` is deprecated in Cloud Monitoring's metric list.
"""

from __future__ import annotations

from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicy,
    MonitoringAlertPolicyConditions,
)
from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicyConditionsConditionThreshold as Threshold,
)
from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicyConditionsConditionThresholdAggregations as Aggregation,
)
from cdktn_provider_google.monitoring_notification_channel import MonitoringNotificationChannel
from constructs import Construct

from modules.context import StackContext, named

WINDOW = "300s"


class Alerting(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        ctx: StackContext,
        function_service: str,
        dead_letter_topic: str,
        endpoint_id: str,
    ) -> None:
        super().__init__(scope, id_)
        conf = ctx.infra.alerting
        self.channels = [
            named(
                MonitoringNotificationChannel(
                    self,
                    f"email-{i}",
                    display_name=f"salesloop {ctx.env}: {email}",
                    type="email",
                    labels={"email_address": email},
                    user_labels=ctx.labels("alerting"),
                    project=ctx.project,
                ),
                f"alert_channel_email_{i}",
            )
            for i, email in enumerate(conf.notification_emails)
        ]
        channel_ids = [c.id for c in self.channels]
        auto_close = f"{conf.auto_close_days * 86400}s"

        def policy(key: str, name: str, severity: str, doc: str, condition: Threshold) -> None:
            named(
                MonitoringAlertPolicy(
                    self,
                    key,
                    display_name=f"salesloop {ctx.env}: {name}",
                    combiner="OR",
                    severity=severity,
                    conditions=[
                        MonitoringAlertPolicyConditions(
                            display_name=name, condition_threshold=condition
                        )
                    ],
                    notification_channels=channel_ids,
                    documentation={"content": doc, "mime_type": "text/markdown"},
                    alert_strategy={"auto_close": auto_close},
                    user_labels=ctx.labels("alerting"),
                    project=ctx.project,
                ),
                f"alert_{key.replace('-', '_')}",
            )

        policy(
            "function-errors",
            "on_sale function errors",
            "ERROR",
            "The on_sale function answered 5xx; Eventarc is retrying those events. Check the "
            'function\'s logs (`resource.labels.service_name="on-sale"`); events still failing '
            "after the retry window are dead-lettered.",
            Threshold(
                filter=(
                    'resource.type = "cloud_run_revision" AND '
                    f'resource.labels.service_name = "{function_service}" AND '
                    'metric.type = "run.googleapis.com/request_count" AND '
                    'metric.labels.response_code_class = "5xx"'
                ),
                comparison="COMPARISON_GT",
                threshold_value=conf.function_errors_per_5m,
                duration="0s",
                aggregations=[
                    Aggregation(
                        alignment_period=WINDOW,
                        per_series_aligner="ALIGN_DELTA",
                        cross_series_reducer="REDUCE_SUM",
                    )
                ],
                trigger={"count": 1},
            ),
        )
        policy(
            "dead-letters",
            "events dead-lettered",
            "ERROR",
            f"Events were published to `{dead_letter_topic}`: the function gave up on them "
            "(still failing past `events.dead_letter_after_s`). Each message is the CloudEvent as "
            "JSON, with attributes `ce-id`, `ce-type`, `ce-time`, `reason`, `age-seconds`. "
            "Inspect them on the `-hold` subscription and replay after the fix (docs/infra.md).",
            Threshold(
                filter=(
                    'resource.type = "pubsub_topic" AND '
                    f'resource.labels.topic_id = "{dead_letter_topic}" AND '
                    'metric.type = "pubsub.googleapis.com/topic/send_request_count" AND '
                    'metric.labels.response_class = "success"'
                ),
                comparison="COMPARISON_GT",
                threshold_value=conf.dead_letters_per_5m,
                duration="0s",
                aggregations=[
                    Aggregation(
                        alignment_period=WINDOW,
                        per_series_aligner="ALIGN_DELTA",
                        cross_series_reducer="REDUCE_SUM",
                    )
                ],
                trigger={"count": 1},
            ),
        )
        policy(
            "endpoint-latency",
            "forecast endpoint latency p99",
            "WARNING",
            "p99 online prediction latency of the forecast endpoint is above its threshold for "
            "5 minutes; forecasts still flow but events take longer (and may time out).",
            Threshold(
                filter=(
                    'resource.type = "aiplatform.googleapis.com/Endpoint" AND '
                    f'resource.labels.endpoint_id = "{endpoint_id}" AND '
                    'metric.type = "aiplatform.googleapis.com/prediction/online/prediction_latencies"'
                ),
                comparison="COMPARISON_GT",
                threshold_value=conf.endpoint_latency_p99_ms,
                duration=WINDOW,
                aggregations=[
                    Aggregation(
                        alignment_period=WINDOW,
                        per_series_aligner="ALIGN_PERCENTILE_99",
                        cross_series_reducer="REDUCE_MAX",
                    )
                ],
                trigger={"count": 1},
            ),
        )
