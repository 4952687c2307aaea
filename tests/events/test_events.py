"""Audit-log CloudEvents: golden files, the real HTTP binding, and fuzzing of the parser."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import from_http
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloop.events import InsertEvent, InvalidEvent, build_insert_event, parse_insert_event

GOLDEN = Path(__file__).parent / "golden"
TABLE = {"project": "salesloop-local", "dataset": "salesloop", "table": "sales"}


def load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / name).read_text())


def from_golden(g: dict[str, Any]) -> Any:
    return from_http(g["headers"], json.dumps(g["body"]).encode())


def test_golden_insert_event_parses() -> None:
    ev = parse_insert_event(from_golden(load("bigquery_insert_binary.json")), **TABLE)
    assert ev == InsertEvent(
        event_id="j0001-insert",
        job_name="projects/salesloop-local/jobs/salesloop_0a1b2c",
        job_id="salesloop_0a1b2c",
        project="salesloop-local",
        dataset="salesloop",
        table="sales",
        inserted_rows=1234,
        committed_at=datetime(2016, 5, 1, 6, 30, tzinfo=UTC),
    )


def test_builder_reproduces_the_golden_file() -> None:
    """The local warehouse emits exactly the golden shape (a change to it must be deliberate)."""
    ev = build_insert_event(
        event_id="j0001-insert",
        project="salesloop-local",
        dataset="salesloop",
        table="sales",
        job_id="salesloop_0a1b2c",
        inserted_rows=1234,
        committed_at=datetime(2016, 5, 1, 6, 30, tzinfo=UTC),
    )
    headers, body = to_binary(ev)
    assert {"headers": dict(sorted(headers.items())), "body": json.loads(body)} == load(
        "bigquery_insert_binary.json"
    )


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("invalid_*.json")))
def test_invalid_goldens_are_rejected_with_a_reason(name: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_insert_event(from_golden(load(name)), **TABLE)
    assert str(err.value)


def test_other_project_is_refused_when_pinned() -> None:
    with pytest.raises(InvalidEvent, match="another table"):
        parse_insert_event(
            from_golden(load("bigquery_insert_binary.json")),
            project="salesloop-prod",
            dataset="salesloop",
            table="sales",
        )


# -- fuzzing: whatever arrives, the parser either returns an InsertEvent or raises InvalidEvent ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


BASE = load("bigquery_insert_binary.json")
BODY_PATHS = _paths(BASE["body"])
HEADER_KEYS = sorted(BASE["headers"])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body_path=st.sampled_from(BODY_PATHS),
    action=st.sampled_from(["delete", "replace"]),
    value=json_values,
    header=st.sampled_from(HEADER_KEYS),
    header_value=st.none() | st.text(max_size=40),
)
def test_fuzzed_events_never_crash_the_parser(
    body_path: tuple[Any, ...], action: str, value: Any, header: str, header_value: str | None
) -> None:
    g = copy.deepcopy(BASE)
    parent = g["body"]
    for key in body_path[:-1]:
        parent = parent[key]
    if action == "delete":
        parent.pop(body_path[-1])
    else:
        parent[body_path[-1]] = value
    if header_value is not None and header not in (
        "ce-specversion",
        "content-type",
        "ce-id",
        "ce-source",
        "ce-type",
    ):
        g["headers"][header] = header_value
    try:
        event = from_http(g["headers"], json.dumps(g["body"]).encode())
    except Exception:
        return  # the HTTP binding itself refused it: functions-framework answers 400
    try:
        parsed = parse_insert_event(event, **TABLE)
    except InvalidEvent as exc:
        assert str(exc)
    else:
        assert parsed.inserted_rows >= 0 and parsed.job_name.startswith("projects/")


@settings(max_examples=300, deadline=None)
@given(payload=json_values)
def test_arbitrary_data_is_rejected_not_crashing(payload: Any) -> None:
    g = copy.deepcopy(BASE)
    event = from_http(g["headers"], json.dumps(payload).encode())
    with pytest.raises(InvalidEvent):
        parse_insert_event(event, **TABLE)


def test_huge_payload_is_rejected() -> None:
    g = copy.deepcopy(BASE)
    g["body"]["padding"] = "x" * (600 * 1024)
    event = from_http(g["headers"], json.dumps(g["body"]).encode())
    # the binding hands us a dict: the size check applies to raw bodies, so check both paths
    parse_insert_event(event, **TABLE)
    with pytest.raises(InvalidEvent, match="larger than"):
        parse_insert_event(
            {"attributes": event.get_attributes(), "data": json.dumps(g["body"])}, **TABLE
        )
