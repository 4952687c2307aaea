"""BigQuery insert events shaped as Eventarc delivers them: audit-log CloudEvents.

Eventarc's BigQuery trigger delivers ``google.cloud.audit.log.v1.written`` events whose data is a
LogEntry; for a load or DML job that changed a table, the entry's ``protoPayload.metadata`` is a
``BigQueryAuditMetadata`` carrying ``tableDataChange {jobName, insertedRowsCount, reason}``. The
local warehouse emits the same shape, so the function's parser is the same code in both places.

:func:`parse_insert_event` is strict: anything that is not an insert into the configured sales table
raises :class:`InvalidEvent` with a reason. The function logs it and acknowledges (2xx), because a
malformed event will never become well-formed by retrying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cloudevents.http import CloudEvent

AUDIT_EVENT_TYPE = "google.cloud.audit.log.v1.written"
BIGQUERY_SERVICE = "bigquery.googleapis.com"
INSERT_JOB_METHOD = "google.cloud.bigquery.v2.JobService.InsertJob"
AUDIT_LOG_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"
BQ_METADATA_TYPE = "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"
DATA_SCHEMA = "https://googleapis.github.io/google-cloudevents/jsonschema/google/events/cloud/audit/v1/LogEntryData.json"

_JOB_NAME = re.compile(
    r"^projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])/jobs/(?P<job_id>[A-Za-z0-9_-]{1,1024})$"
)
_TABLE_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/datasets/(?P<dataset>[A-Za-z0-9_]+)/tables/(?P<table>[A-Za-z0-9_$-]+)$"
)
MAX_EVENT_BYTES = 512 * 1024
INT64_MAX = 2**63 - 1


class InvalidEvent(ValueError):
    """The event is not an insert into the configured sales table; ``reason`` says why."""


@dataclass(frozen=True)
class InsertEvent:
    event_id: str
    job_name: str
    job_id: str
    project: str
    dataset: str
    table: str
    inserted_rows: int
    committed_at: datetime | None


def table_resource(project: str, dataset: str, table: str) -> str:
    return f"projects/{project}/datasets/{dataset}/tables/{table}"


def build_insert_event(
    *,
    event_id: str,
    project: str,
    dataset: str,
    table: str,
    job_id: str,
    inserted_rows: int,
    committed_at: datetime,
    principal: str = "salesloop-loader@local",
) -> CloudEvent:
    """The audit-log CloudEvent BigQuery + Eventarc would deliver for one committed insert job."""
    resource = table_resource(project, dataset, table)
    ts = committed_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    log_name = f"projects/{project}/logs/{quote('cloudaudit.googleapis.com/data_access', safe='')}"
    attributes = {
        "id": event_id,
        "source": f"//cloudaudit.googleapis.com/projects/{project}/logs/data_access",
        "type": AUDIT_EVENT_TYPE,
        "specversion": "1.0",
        "subject": f"{BIGQUERY_SERVICE}/{resource}",
        "time": ts,
        "datacontenttype": "application/json; charset=utf-8",
        "dataschema": DATA_SCHEMA,
        "servicename": BIGQUERY_SERVICE,
        "methodname": INSERT_JOB_METHOD,
        "resourcename": resource,
        "recordedtime": ts,
    }
    data = {
        "protoPayload": {
            "@type": AUDIT_LOG_TYPE,
            "status": {},
            "authenticationInfo": {"principalEmail": principal},
            "serviceName": BIGQUERY_SERVICE,
            "methodName": INSERT_JOB_METHOD,
            "resourceName": resource,
            "metadata": {
                "@type": BQ_METADATA_TYPE,
                "tableDataChange": {
                    "reason": "JOB",
                    "jobName": f"projects/{project}/jobs/{job_id}",
                    # int64 is a string in proto3 JSON, as in the real payload.
                    "insertedRowsCount": str(inserted_rows),
                },
            },
        },
        "insertId": event_id,
        "resource": {
            "type": "bigquery_dataset",
            "labels": {"project_id": project, "dataset_id": dataset},
        },
        "timestamp": ts,
        "severity": "INFO",
        "logName": log_name,
        "receiveTimestamp": ts,
    }
    return CloudEvent(attributes, data)


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            raise InvalidEvent(f"missing field {'.'.join(path)}")
        d = d[key]
    return d


def parse_insert_event(event: Any, *, project: str | None, dataset: str, table: str) -> InsertEvent:
    """Validate an audit-log CloudEvent and extract the insert job it reports.

    ``project`` None accepts any project (local tests); the dataset and table must match: the
    function refuses to act on events for tables other than its own.
    """
    try:
        attrs = (
            dict(event.get_attributes())
            if hasattr(event, "get_attributes")
            else dict(event["attributes"])
        )
        data = event.get_data() if hasattr(event, "get_data") else event.get("data")
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidEvent(f"not a CloudEvent: {exc}") from None
    event_id = attrs.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 1024:
        raise InvalidEvent("missing or invalid event id")
    if attrs.get("type") != AUDIT_EVENT_TYPE:
        raise InvalidEvent(f"unexpected event type {str(attrs.get('type'))[:100]!r}")
    if attrs.get("methodname") not in (None, INSERT_JOB_METHOD):
        raise InvalidEvent(f"unexpected method {str(attrs.get('methodname'))[:100]!r}")
    if attrs.get("servicename") not in (None, BIGQUERY_SERVICE):
        raise InvalidEvent(f"unexpected service {str(attrs.get('servicename'))[:100]!r}")
    if isinstance(data, bytes | str):
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidEvent(f"event data larger than {MAX_EVENT_BYTES} bytes")
        import json

        try:
            data = json.loads(data)
        except ValueError:
            raise InvalidEvent("event data is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidEvent("event data is not a JSON object")
    payload = _get(data, "protoPayload")
    if _get(payload, "methodName") != INSERT_JOB_METHOD:
        raise InvalidEvent(f"unexpected methodName {str(payload.get('methodName'))[:100]!r}")
    if payload.get("serviceName", BIGQUERY_SERVICE) != BIGQUERY_SERVICE:
        raise InvalidEvent("unexpected serviceName")
    resource = _get(payload, "resourceName")
    m = _TABLE_NAME.match(resource) if isinstance(resource, str) else None
    if m is None:
        raise InvalidEvent(f"resourceName is not a table: {str(resource)[:200]!r}")
    if (
        m["dataset"] != dataset
        or m["table"] != table
        or (project is not None and m["project"] != project)
    ):
        raise InvalidEvent(f"event for another table: {resource[:200]}")
    change = _get(payload, "metadata", "tableDataChange")
    job_name = _get(change, "jobName")
    jm = _JOB_NAME.match(job_name) if isinstance(job_name, str) else None
    if jm is None:
        raise InvalidEvent(f"invalid jobName {str(job_name)[:200]!r}")
    raw_rows = change.get("insertedRowsCount", "0")
    # int64 as proto3 JSON writes it (a string; a JSON integer is tolerated). A float or a bool
    # would be silently truncated, and a count beyond int64 fails the ledger write on every retry.
    if isinstance(raw_rows, bool) or not isinstance(raw_rows, int | str):
        raise InvalidEvent(f"invalid insertedRowsCount {str(raw_rows)[:50]!r}")
    try:
        inserted = int(raw_rows)
    except (TypeError, ValueError):
        raise InvalidEvent(f"invalid insertedRowsCount {str(raw_rows)[:50]!r}") from None
    if inserted < 0:
        raise InvalidEvent("negative insertedRowsCount")
    if inserted > INT64_MAX:
        raise InvalidEvent("insertedRowsCount beyond int64")
    committed_at = None
    ts = data.get("timestamp") or attrs.get("time")
    if isinstance(ts, str):
        try:
            committed_at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent(f"invalid timestamp {ts[:50]!r}") from None
    return InsertEvent(
        event_id=event_id,
        job_name=job_name,
        job_id=jm["job_id"],
        project=m["project"],
        dataset=m["dataset"],
        table=m["table"],
        inserted_rows=inserted,
        committed_at=committed_at,
    )
