"""The give-up settings are validated like every other key: a bad value names its file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from salesloop.config import SettingsError, load_settings


def _with(tmp_path: Path, events: dict[str, object]) -> Path:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"events": events}))
    return overlay


def test_defaults_per_environment() -> None:
    assert load_settings("local").events.dead_letter == "local"
    for env in ("dev", "prod"):
        events = load_settings(env).events
        assert events.dead_letter == "pubsub"
        assert events.dead_letter_after_s == 23 * 3600
        assert events.dead_letter_topic is None  # the stack's DEAD_LETTER_TOPIC names it
        assert 0 < events.dead_letter_timeout_s <= 300


@pytest.mark.parametrize(
    ("events", "key"),
    [
        ({"dead_letter_after_s": 86_400}, "events.dead_letter_after_s"),  # Eventarc drops at 24 h
        ({"dead_letter_after_s": 0}, "events.dead_letter_after_s"),
        ({"dead_letter": "kafka"}, "events.dead_letter"),
        ({"dead_letter_topic": "on-sale-dead-letter"}, "events.dead_letter_topic"),
        (
            {"dead_letter_topic": "projects/salesloop-dev/topics/goo gle"},
            "events.dead_letter_topic",
        ),
        ({"dead_letter_timeout_s": -1}, "events.dead_letter_timeout_s"),
        ({"dead_lettre_after_s": 60}, "events.dead_lettre_after_s"),
    ],
)
def test_bad_values_name_the_file_and_key(
    tmp_path: Path, events: dict[str, object], key: str
) -> None:
    overlay = _with(tmp_path, events)
    with pytest.raises(SettingsError, match=rf"{overlay}: {key}"):
        load_settings("dev", extra_overlay=overlay)


def test_a_valid_override(tmp_path: Path) -> None:
    overlay = _with(
        tmp_path,
        {
            "dead_letter_after_s": 3600,
            "dead_letter_topic": "projects/salesloop-dev/topics/on-sale-dead-letter",
        },
    )
    events = load_settings("dev", extra_overlay=overlay).events
    assert events.dead_letter_after_s == 3600
    assert events.dead_letter_topic == "projects/salesloop-dev/topics/on-sale-dead-letter"
