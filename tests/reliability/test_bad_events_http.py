"""Fuzzed CloudEvents POSTed to the real function server (functions-framework under gunicorn).

Whatever arrives (fields missing or garbled, wrong types, huge bodies, another table, an unknown
method, not even a CloudEvent), the server must never answer 5xx (Eventarc would retry a 5xx for
days) and never die: an event that is a CloudEvent but not an insert into our sales table is
acknowledged (2xx) and logged with its reason; a request that is not a CloudEvent at all gets the
framework's 4xx. After each property the server still processes a valid event.

These run on one worker (their own xdist group, not the reliability one): ~3,000 requests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.http import from_http
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloop.events import InvalidEvent, parse_insert_event
from salesloop.local.stack import LocalStack
from salesloop.warehouse.http import HttpWarehouse

# One worker, file order: the last property test checks what the fuzzing left behind.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("bad_events")]

GOLDEN = Path(__file__).parents[1] / "events" / "golden"
BASE = json.loads((GOLDEN / "bigquery_insert_binary.json").read_text())
TABLE: dict[str, Any] = {"project": None, "dataset": "salesloop", "table": "sales"}
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@dataclass
class Server:
    stack: LocalStack
    session: requests.Session = field(default_factory=requests.Session)
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    expected_rejections: int = 0

    def post(self, headers: dict[str, str], body: bytes) -> int:
        resp = self.session.post(self.stack.function_url, headers=headers, data=body, timeout=60)
        self.sent += 1
        self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
        assert 200 <= resp.status_code < 300, (
            f"{resp.status_code} for headers={headers!r}: {resp.text[:300]}"
        )
        return resp.status_code

    def outcomes_in_log(self) -> list[dict[str, Any]]:
        """One line per request the function answered: processed, duplicate or rejected."""
        log = (self.stack.run_dir / "logs" / "function.log").read_text(errors="replace")
        out = []
        for line in log.splitlines():
            if line.startswith("{") and '"event": "event_' in line:
                out.append(json.loads(line))
        return out

    def assert_alive_and_processing(self, n: int) -> None:
        """A valid event after the fuzzing is still processed (written to the ledger)."""
        assert self.stack.procs["function"].poll() is None, "the function server died"
        g = copy.deepcopy(BASE)
        g["headers"]["ce-id"] = f"alive-{n}-insert"
        g["body"]["protoPayload"]["metadata"]["tableDataChange"]["jobName"] = (
            f"projects/salesloop-local/jobs/alive_{n}"
        )
        status = self.post(g["headers"], json.dumps(g["body"]).encode())
        assert 200 <= status < 300


def _expect_rejection(headers: dict[str, str], body: bytes) -> bool:
    """Would the handler reject this (as opposed to the binding refusing it)?"""
    try:
        event = from_http(headers, body)
    except Exception:
        return False
    try:
        parse_insert_event(event, **TABLE)
    except InvalidEvent:
        return True
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    run = tmp_path_factory.mktemp("fuzz") / "run"
    stack = LocalStack(run, predictor_client="http")  # no event here ever reaches the model
    try:
        stack.start("warehouse", wait=False)
        stack.start("function", wait=False)
        stack.wait_ready("warehouse", 120)
        stack.wait_ready("function", 120)
        yield Server(stack)
    finally:
        stack.stop_all()


def _check_logged(server: Server, before: int, sent: int) -> None:
    """Every request left exactly one outcome line; every rejection says why."""
    new = server.outcomes_in_log()[before:]
    assert len(new) == sent, f"{sent} requests, {len(new)} outcome lines"
    rejected = [e for e in new if e["event"] == "event_rejected"]
    assert len(rejected) >= server.expected_rejections
    assert all(isinstance(e.get("reason"), str) and e["reason"] for e in rejected)


# -- strategies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


BODY_PATHS = _paths(BASE["body"])
HEADERS = sorted(BASE["headers"])
OTHER_TABLES = [
    "projects/salesloop-local/datasets/salesloop/tables/forecasts",
    "projects/salesloop-local/datasets/salesloop/tables/sales_backup",
    "projects/salesloop-local/datasets/other/tables/sales",
    "projects/x/datasets/salesloop/tables/sales/../../forecasts",
    "",
]
OTHER_METHODS = [
    "google.cloud.bigquery.v2.JobService.DeleteTable",
    "google.cloud.bigquery.v2.TableService.InsertTable",
    "jobservice.jobcompleted",
    "InsertJob",
]
text_values = st.text(max_size=60) | st.sampled_from(OTHER_TABLES + OTHER_METHODS)


@st.composite
def binary_events(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    g = copy.deepcopy(BASE)
    g["headers"]["ce-id"] = f"fuzz-{draw(st.integers(0, 10**9))}"
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(BODY_PATHS))
        parent = g["body"]
        try:
            for key in path[:-1]:
                parent = parent[key]
        except (KeyError, TypeError):
            continue
        if not isinstance(parent, dict):
            continue
        if draw(st.booleans()):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(json_values | text_values)
    for _ in range(draw(st.integers(0, 2))):
        header = draw(st.sampled_from(HEADERS))
        value = draw(
            st.none()
            | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
            | st.sampled_from(OTHER_TABLES + OTHER_METHODS)
        )
        if value is None:
            g["headers"].pop(header, None)
        else:
            g["headers"][header] = value.strip()  # HTTP trims header values anyway
    return g["headers"], json.dumps(g["body"]).encode()


@st.composite
def raw_bodies(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    headers = dict(BASE["headers"])
    headers["ce-id"] = f"raw-{draw(st.integers(0, 10**9))}"
    headers["content-type"] = draw(
        st.sampled_from(
            [
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "application/octet-stream",
                "application/x-www-form-urlencoded",
            ]
        )
    )
    kind = draw(st.sampled_from(["binary", "json", "huge", "deep"]))
    if kind == "binary":
        body = draw(st.binary(max_size=2000))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "huge":
        g = copy.deepcopy(BASE["body"])
        g["padding"] = "x" * draw(st.integers(100_000, 3_000_000))
        body = json.dumps(g).encode()
    else:
        depth = draw(st.integers(10, 5000))
        body = ("[" * depth + "]" * depth).encode()
    return headers, body


@st.composite
def structured_events(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"structured-{draw(st.integers(0, 10**9))}",
        "source": "//cloudaudit.googleapis.com/projects/salesloop-local/logs/data_access",
        "type": "google.cloud.audit.log.v1.written",
        "datacontenttype": "application/json",
        "data": copy.deepcopy(BASE["body"]),
    }
    for _ in range(draw(st.integers(1, 3))):
        key = draw(
            st.sampled_from(
                [
                    "specversion",
                    "id",
                    "source",
                    "type",
                    "data",
                    "methodname",
                    "time",
                    "subject",
                    "extra",
                ]
            )
        )
        if draw(st.booleans()):
            envelope.pop(key, None)
        else:
            envelope[key] = draw(json_values | text_values)
    return {"content-type": "application/cloudevents+json"}, json.dumps(envelope).encode()


# -- properties ----------------------------------------------------------------------------------


def _post(server: Server, request: tuple[dict[str, str], bytes]) -> None:
    headers, body = request
    server.post(headers, body)
    if _expect_rejection(headers, body):
        server.expected_rejections += 1


@settings(FUZZ, max_examples=1500)
@given(request=binary_events())
def test_mutated_binary_events_are_acknowledged_never_5xx(
    server: Server, request: tuple[dict[str, str], bytes]
) -> None:
    _post(server, request)


@settings(FUZZ, max_examples=600)
@given(request=raw_bodies())
def test_raw_and_huge_bodies_are_acknowledged_never_5xx(
    server: Server, request: tuple[dict[str, str], bytes]
) -> None:
    _post(server, request)


@settings(FUZZ, max_examples=900)
@given(request=structured_events())
def test_structured_mode_events_are_acknowledged_never_5xx(
    server: Server, request: tuple[dict[str, str], bytes]
) -> None:
    _post(server, request)


def test_after_the_fuzzing_the_server_is_alive_and_every_request_was_logged(
    server: Server,
) -> None:
    """Runs after the properties above (same worker, file order): one outcome line per request."""
    assert server.sent >= 2000, "the fuzzing properties did not run first in this module"
    assert server.expected_rejections > 500, "the fuzzing hardly reached the handler"
    server.assert_alive_and_processing(1)
    _check_logged(server, 0, server.sent)


def test_other_table_and_unknown_method_are_acknowledged_with_a_reason(server: Server) -> None:
    """The golden event for another table, and one for an unknown method: 2xx, logged, no effect."""
    other = json.loads((GOLDEN / "invalid_other_table.json").read_text())
    method = json.loads((GOLDEN / "invalid_other_method.json").read_text())
    before = len(server.outcomes_in_log())
    for g in (other, method):
        assert 200 <= server.post(g["headers"], json.dumps(g["body"]).encode()) < 300
    reasons = [e.get("reason", "") for e in server.outcomes_in_log()[before:]]
    assert any("another table" in r for r in reasons), reasons
    assert any("method" in r.lower() for r in reasons), reasons
    wh = HttpWarehouse(server.stack.warehouse_url)
    try:
        ids = set(wh.query("SELECT event_id FROM {{ processed_events }}")["event_id"])
    finally:
        wh.close()
    assert "j0001-insert" not in ids, "an event for another table or method reached the ledger"
