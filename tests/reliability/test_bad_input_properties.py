"""Bad input, in process and in volume: the event parser and the sales-row path into the warehouse.

The parser either returns an insert into *our* table with sane values or raises ``InvalidEvent``
with a reason: no other exception, whatever type each field has. Sales rows go through the real
ingest path into a DuckDB warehouse: every row ends in ``sales`` or in ``rejected_sales`` with the
class of its first fault, the good rows of a job with bad rows are kept, and a job fires an event
exactly when it committed sales rows. (The HTTP-level fuzzing is in test_bad_events_http.py.)
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cloudevents.http import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloop.config import Settings, load_settings
from salesloop.data.ingest import ingest_frame
from salesloop.data.validate import KNOWN_COLUMNS, REASON_CLASSES, validate_sales
from salesloop.events import INT64_MAX, InvalidEvent, parse_insert_event
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.data.test_validate import NOW, frame_of, jobs, oracle

GOLDEN = Path(__file__).parents[1] / "events" / "golden"
BASE = json.loads((GOLDEN / "bigquery_insert_binary.json").read_text())
ATTRIBUTES = {k.removeprefix("ce-"): v for k, v in BASE["headers"].items() if k.startswith("ce-")}
QUICK = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

# -- the event parser --------------------------------------------------------------------------

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats()
    | st.text(max_size=50)
    | st.sampled_from(["", " ", "0", "-1", "1e3", "٣", "\x00", "\u202e", "a" * 5000, "NaN"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)


def _body_paths(d: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append((*prefix, k))
            out.extend(_body_paths(v, (*prefix, k)))
    return out


BODY_PATHS = _body_paths(BASE["body"])


def _check_parse(event: Any, project: str | None = None) -> None:
    try:
        parsed = parse_insert_event(event, project=project, dataset="salesloop", table="sales")
    except InvalidEvent as exc:
        assert str(exc), "a rejection without a reason"
        return
    assert parsed.table == "sales" and parsed.dataset == "salesloop"
    assert project is None or parsed.project == project
    assert 0 <= parsed.inserted_rows <= INT64_MAX
    assert parsed.job_name == f"projects/{parsed.project}/jobs/{parsed.job_id}"
    assert 0 < len(parsed.event_id) <= 1024


@settings(QUICK, max_examples=2500)
@given(
    attrs=st.dictionaries(st.sampled_from(sorted(ATTRIBUTES)), anything, max_size=3),
    drop_attrs=st.sets(st.sampled_from(sorted(ATTRIBUTES)), max_size=2),
    body=st.lists(st.tuples(st.sampled_from(BODY_PATHS), st.booleans(), anything), max_size=4),
    raw=st.booleans(),
)
def test_any_field_of_any_type_is_parsed_or_rejected_with_a_reason(
    attrs: dict[str, Any],
    drop_attrs: set[str],
    body: list[tuple[tuple[str, ...], bool, Any]],
    raw: bool,
) -> None:
    attributes: dict[str, Any] = {**ATTRIBUTES, **attrs}
    for key in drop_attrs:
        attributes.pop(key, None)
    data = copy.deepcopy(BASE["body"])
    for path, delete, value in body:
        parent: Any = data
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if delete:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
    # The parser meets both shapes: the SDK's CloudEvent and a plain mapping with raw JSON data.
    event: Any = {"attributes": attributes, "data": json.dumps(data) if raw else data}
    _check_parse(event)


names = st.from_regex(r"\A[A-Za-z0-9_$-]{1,20}\Z") | st.sampled_from(
    ["sales", "salesloop", "forecasts", "sales_v2", "SALES", "sales$20160501"]
)


@settings(QUICK, max_examples=1500)
@given(
    project=st.sampled_from(["salesloop-local", "salesloop-prod", "other-project1"]),
    dataset=names,
    table=names,
    pin=st.booleans(),
)
def test_only_the_configured_table_is_accepted(
    project: str, dataset: str, table: str, pin: bool
) -> None:
    data = copy.deepcopy(BASE["body"])
    resource = f"projects/{project}/datasets/{dataset}/tables/{table}"
    data["protoPayload"]["resourceName"] = resource
    event = CloudEvent({**ATTRIBUTES, "resourcename": resource}, data)
    ours = dataset == "salesloop" and table == "sales" and (not pin or project == "salesloop-local")
    try:
        parse_insert_event(
            event, project="salesloop-local" if pin else None, dataset="salesloop", table="sales"
        )
    except InvalidEvent as exc:
        assert not ours, f"our own table refused: {exc}"
        assert "another table" in str(exc) or "not a table" in str(exc)
    else:
        assert ours, f"an event for {resource} was accepted"


@pytest.mark.parametrize(
    ("count", "ok"),
    [
        ("0", True),
        ("1234", True),
        (str(INT64_MAX), True),
        (str(INT64_MAX + 1), False),
        (1.0e308, False),
        (True, False),
        ("-1", False),
        (12, True),
    ],
)
def test_inserted_rows_count_is_an_int64(count: Any, ok: bool) -> None:
    data = copy.deepcopy(BASE["body"])
    data["protoPayload"]["metadata"]["tableDataChange"]["insertedRowsCount"] = count
    event = {"attributes": ATTRIBUTES, "data": data}
    if ok:
        assert parse_insert_event(
            event, project=None, dataset="salesloop", table="sales"
        ).inserted_rows == int(count)
    else:
        with pytest.raises(InvalidEvent, match="insertedRowsCount"):
            parse_insert_event(event, project=None, dataset="salesloop", table="sales")


# -- sales rows through validation and ingest ----------------------------------------------------


@pytest.fixture(scope="module")
def warehouse() -> Iterator[tuple[DuckDBWarehouse, Settings]]:
    settings_ = load_settings("local")
    wh = DuckDBWarehouse(":memory:", settings=settings_)
    yield wh, settings_
    wh.close()


_JOB_IDS = iter(range(10**9))


@settings(QUICK, max_examples=400)
@given(job=jobs())
def test_ingested_jobs_keep_good_rows_and_store_each_rejection_with_its_class(
    warehouse: tuple[DuckDBWarehouse, Settings], job: tuple[list[dict[str, Any]], bool]
) -> None:
    wh, settings_ = warehouse
    rows, _ = job
    job_id = f"fuzz_{next(_JOB_IDS):06d}"
    expected = oracle(rows)
    report = ingest_frame(wh, frame_of(rows), job_id=job_id, settings=settings_, now=NOW)
    good = wh.query("SELECT row_num FROM {{ sales }} WHERE job_id = @j", {"j": job_id})
    rejected = wh.query(
        "SELECT row_num, reason, raw FROM {{ rejected_sales }} WHERE job_id = @j", {"j": job_id}
    )
    assert sorted(good["row_num"]) == [i for i, e in enumerate(expected) if e is None]
    assert len(good) + len(rejected) == len(rows), "a row vanished or was stored twice"
    for num, reason, raw in zip(
        rejected["row_num"], rejected["reason"], rejected["raw"], strict=True
    ):
        cls = reason.split(":", 1)[0]
        assert cls in REASON_CLASSES and len(reason) > len(cls) + 2
        if expected[num] != "copy_of_bad":
            assert cls == expected[num], (num, reason, rows[num])
        assert isinstance(json.loads(raw), dict)
    audit = wh.audit_entries(0, 1_000_000)
    mine = audit[audit["event_id"] == f"{job_id}-insert"]
    assert len(mine) == (1 if len(good) else 0), "an event without rows, or rows without one"
    if len(good):
        assert int(mine["inserted_rows"].iloc[0]) == len(good) == report.good


cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.dates(min_value=date(1, 1, 1)),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.sampled_from(
        ["", "NA", "null", "2016-05-01", "2016-02-30", "CA_1", "FOODS_3_090", "1e400", "-0", "inf"]
    ),
)


@pytest.mark.filterwarnings("ignore:Could not infer format")
@settings(QUICK, max_examples=800)
@given(
    columns=st.lists(
        st.lists(cells, min_size=1, max_size=12).map(lambda v: v),
        min_size=len(KNOWN_COLUMNS),
        max_size=len(KNOWN_COLUMNS),
    ),
    extra=st.booleans(),
    data=st.data(),
)
def test_arbitrary_cells_never_break_validation(
    columns: list[list[Any]], extra: bool, data: st.DataObject
) -> None:
    n = min(len(c) for c in columns)
    frame = pd.DataFrame(
        {
            name: pd.Series(col[:n], dtype=object)
            for name, col in zip(KNOWN_COLUMNS, columns, strict=True)
        }
    )
    if extra:
        frame["comment"] = data.draw(st.lists(cells, min_size=n, max_size=n))
    # Some columns typed, as a CSV or Parquet reader would hand them over.
    for name in data.draw(
        st.sets(st.sampled_from(["units", "sell_price", "date", "snap"]), max_size=2)
    ):
        frame[name] = (
            pd.to_numeric(frame[name], errors="coerce")
            if name != "date"
            else pd.to_datetime(frame[name], errors="coerce", utc=True)
        )
    result = validate_sales(
        frame,
        "job-x",
        today=date(2016, 6, 1),
        max_future_days=2,
        inserted_at=datetime(2016, 6, 1, tzinfo=UTC),
    )
    good, rejected = result.good, result.rejected
    assert sorted([*good["row_num"], *rejected["row_num"]]) == list(range(n))
    for reason, raw in zip(rejected["reason"], rejected["raw"], strict=True):
        assert reason.split(":", 1)[0] in REASON_CLASSES
        assert isinstance(json.loads(raw), dict)
    if len(good):
        assert good["units"].ge(0).all() and np.isfinite(good["units"]).all()
        assert good["date"].notna().all()
        assert not good.duplicated(["series_id", "date"]).any()
        prices = good["sell_price"].dropna()
        assert prices.ge(0).all() and all(math.isfinite(p) for p in prices)
