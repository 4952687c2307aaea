"""The dead-letter path as synthesized: what the function is told, may do, and what alerts on it.

The function publishes to the topic named in ``DEAD_LETTER_TOPIC`` (salesloop/dead_letter.py); the
stack must name the dead-letter topic there, grant the function's identity ``pubsub.publisher`` on
that topic and nowhere else, and count successful publishes to that same topic in the alert.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from modules.dead_letter import TOPIC_NAME
from salesloop.config import load_settings
from salesloop.dead_letter import TOPIC_PATTERN
from salesloop.infra_settings import infra_settings

ENVS = ("dev", "prod")
REF = re.compile(r"^\$\{google_pubsub_topic\.(?P<name>\w+)\.(?P<attr>id|name)\}$")


def _topic_ref(value: str, attr: str) -> str:
    m = REF.match(value)
    assert m is not None and m.group("attr") == attr, value
    return m.group("name")


@pytest.mark.parametrize("env", ENVS)
def test_function_publishes_to_the_dead_letter_topic_and_may_only_publish_there(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    res = synth_configs[env]["resource"]
    fn = res["google_cloudfunctions2_function"]["function_on_sale"]
    topic = _topic_ref(fn["service_config"]["environment_variables"]["DEAD_LETTER_TOPIC"], "id")
    assert res["google_pubsub_topic"][topic]["name"] == TOPIC_NAME
    # google_pubsub_topic.id is projects/<project>/topics/<name>: what the function accepts.
    settings = load_settings(env)
    assert TOPIC_PATTERN.match(f"projects/{settings.project}/topics/{TOPIC_NAME}")

    function_sa = fn["service_config"]["service_account_email"]
    member = "serviceAccount:" + function_sa
    grants = [
        g for g in res.get("google_pubsub_topic_iam_member", {}).values() if g["member"] == member
    ]
    assert [(_topic_ref(g["topic"], "name"), g["role"]) for g in grants] == [
        (topic, "roles/pubsub.publisher")
    ]
    project_roles = [
        g["role"]
        for g in res.get("google_project_iam_member", {}).values()
        if g["member"] == member
    ]
    assert not [r for r in project_roles if "pubsub" in r], "publisher must be topic-scoped"


@pytest.mark.parametrize("env", ENVS)
def test_the_dead_letter_alert_counts_successful_publishes_to_that_topic(
    env: str, synth_configs: dict[str, dict[str, Any]]
) -> None:
    res = synth_configs[env]["resource"]
    fn = res["google_cloudfunctions2_function"]["function_on_sale"]
    topic = _topic_ref(fn["service_config"]["environment_variables"]["DEAD_LETTER_TOPIC"], "id")
    (condition,) = res["google_monitoring_alert_policy"]["alert_dead_letters"]["conditions"]
    threshold = condition["condition_threshold"]
    clauses = {c.strip() for c in threshold["filter"].split(" AND ")}
    assert clauses == {
        'resource.type = "pubsub_topic"',
        f'resource.labels.topic_id = "${{google_pubsub_topic.{topic}.name}}"',
        'metric.type = "pubsub.googleapis.com/topic/send_request_count"',
        'metric.labels.response_class = "success"',
    }
    infra = infra_settings(load_settings(env))
    assert threshold["threshold_value"] == infra.alerting.dead_letters_per_5m
    hold = res["google_pubsub_subscription"]["dead_letter_hold"]
    assert hold["topic"] == f"${{google_pubsub_topic.{topic}.id}}"


@pytest.mark.parametrize("env", ENVS)
def test_give_up_settings_fit_the_function_and_eventarc(env: str) -> None:
    settings = load_settings(env)
    infra = infra_settings(settings)
    assert settings.events.dead_letter == "pubsub"
    assert settings.events.dead_letter_after_s < 24 * 3600  # Eventarc drops events at 24 h
    # A publish (retries included) must end before the function's own timeout cuts it off.
    assert settings.events.dead_letter_timeout_s + 5 < infra.function.timeout_s


def test_the_function_archive_ships_the_pubsub_client() -> None:
    from pathlib import Path

    from modules.function_archive import runtime_requirements

    pins = runtime_requirements(Path(__file__).resolve().parents[2]).splitlines()
    assert any(p.startswith("google-cloud-pubsub==") for p in pins), pins
