"""The BigQuery adapter, tested by what it sends.

There is no BigQuery here, so the real ``google-cloud-bigquery`` client talks to :class:`FakeBigQuery`,
a loopback HTTP server that records every REST request and answers with minimal canned resources
(jobs.insert, multipart upload, getQueryResults, jobs.get, tables.insert/delete, datasets.insert).
The assertions are on the request bodies: query text, parameter mode, types and values, load
configurations, job ids, the uploaded Parquet/CSV bytes, the transaction script. Whether BigQuery
would accept them is not tested anywhere (see the adapter's docstring).
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlglot
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from sqlglot import exp

from salesloop import sql as sqlmod
from salesloop.config import load_settings
from salesloop.schemas import TABLES, bigquery_schema_json
from salesloop.warehouse import Exec, Merge, Warehouse, WarehouseError
from salesloop.warehouse import bigquery as bqmod
from salesloop.warehouse.bigquery import (
    BigQueryWarehouse,
    UnsupportedParameter,
    arrow_to_frame,
    load_frame,
    merge_script,
    parameter_names,
    prefix_parameters,
    query_parameter,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Loading pandas DataFrame into BigQuery:FutureWarning"
)

PROJECT, DATASET, LOCATION = "p", "salesloop", "EU"
NOW = datetime(2016, 1, 11, 6, 30, tzinfo=UTC)
ENDED_MS = 1_452_493_800_000  # 2016-01-11T06:30:00Z


# -- the fake endpoint -------------------------------------------------------------------------


@dataclass
class Sent:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    media: bytes | None = None  # the uploaded file of a multipart load

    @property
    def job_id(self) -> str:
        return str(self.body["jobReference"]["jobId"])

    @property
    def load(self) -> dict[str, Any]:
        return dict(self.body["configuration"]["load"])


@dataclass
class FakeBigQuery:
    """State of one test: what was sent, which jobs exist, what queries return, what fails."""

    sent: list[Sent] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # query text → (schema fields, rows as lists of REST cell strings)
    results: Callable[[str], tuple[list[dict[str, str]], list[list[Any]]]] = lambda q: ([], [])
    fail_if: Callable[[str], bool] = lambda q: False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, method: str, pattern: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and re.search(pattern, s.path)]

    @property
    def uploads(self) -> list[Sent]:
        return self.of("POST", r"^/upload/")

    @property
    def queries(self) -> list[Sent]:
        return self.of("POST", r"^/bigquery/v2/projects/p/jobs$")


def _job_error(message: str) -> dict[str, Any]:
    return {"reason": "invalidQuery", "message": message, "location": "query"}


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    msg = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = [p for p in msg.walk() if not p.is_multipart()]
    meta: Message = parts[0]
    media: Message = parts[1]
    meta_bytes = meta.get_payload(decode=True)
    media_bytes = media.get_payload(decode=True)
    assert isinstance(meta_bytes, bytes) and isinstance(media_bytes, bytes)
    return json.loads(meta_bytes), media_bytes


def _count_rows(load: dict[str, Any], media: bytes) -> int:
    if load.get("sourceFormat") == "CSV":
        return len(list(csv.reader(io.StringIO(media.decode()))))
    return int(pq.read_table(io.BytesIO(media)).num_rows)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeBigQuery  # set on the server's handler class per test

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, obj: Any = None) -> None:
        data = b"" if obj is None else json.dumps(obj).encode()
        head = f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        self.wfile.write(head.encode() + data)  # one write: no Nagle stall

    def _error(self, code: int, message: str, reason: str) -> None:
        self._reply(
            code,
            {
                "error": {
                    "code": code,
                    "message": message,
                    "errors": [{"reason": reason, "message": message}],
                }
            },
        )

    def _record(self) -> tuple[Sent, FakeBigQuery]:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        sent = Sent(self.command, url.path, query)
        ctype = self.headers.get("Content-Type") or ""
        if ctype.startswith("multipart/related"):
            sent.body, sent.media = _multipart(ctype, raw)
        elif raw:
            sent.body = json.loads(raw)
        fake = type(self).fake
        with fake.lock:
            fake.sent.append(sent)
        return sent, fake

    def do_POST(self) -> None:
        sent, fake = self._record()
        if sent.path.endswith("/jobs"):  # jobs.insert, plain or multipart upload
            job = dict(sent.body)
            job_id = job["jobReference"]["jobId"]
            if job_id in fake.jobs:
                return self._error(
                    409, f"Already Exists: Job {PROJECT}:{LOCATION}.{job_id}", "duplicate"
                )
            job["jobReference"] = {**job["jobReference"], "location": LOCATION}
            job["status"] = {"state": "DONE"}
            job["statistics"] = {
                "creationTime": ENDED_MS - 2000,
                "startTime": ENDED_MS - 1000,
                "endTime": ENDED_MS,
            }
            if sent.media is not None:
                job["statistics"]["load"] = {"outputRows": str(_count_rows(sent.load, sent.media))}
            elif fake.fail_if(job["configuration"]["query"]["query"]):
                job["status"] = {
                    "state": "DONE",
                    "errorResult": _job_error("boom"),
                    "errors": [_job_error("boom")],
                }
            fake.jobs[job_id] = job
            return self._reply(200, job)
        if m := re.fullmatch(r"/bigquery/v2/projects/p/datasets/(\w+)/tables", sent.path):
            return self._reply(
                200,
                {**sent.body, "id": f"{PROJECT}:{m[1]}.{sent.body['tableReference']['tableId']}"},
            )
        if sent.path == "/bigquery/v2/projects/p/datasets":
            return self._reply(200, sent.body)
        return self._error(404, f"no fake for POST {sent.path}", "notFound")

    def do_GET(self) -> None:
        sent, fake = self._record()
        if m := re.fullmatch(r"/bigquery/v2/projects/p/queries/([\w-]+)", sent.path):
            job = fake.jobs[m[1]]
            if "errorResult" in job["status"]:
                return self._error(400, "boom", "invalidQuery")
            schema, rows = fake.results(job["configuration"]["query"]["query"])
            out = {
                "kind": "bigquery#getQueryResultsResponse",
                "jobReference": job["jobReference"],
                "jobComplete": True,
                "schema": {"fields": schema},
                "totalRows": str(len(rows)),
            }
            if sent.query.get("maxResults") != "0":
                out["rows"] = [{"f": [{"v": v} for v in row]} for row in rows]
            return self._reply(200, out)
        m = re.fullmatch(r"/bigquery/v2/projects/p/jobs/([\w-]+)", sent.path)
        if m and m[1] in fake.jobs:
            return self._reply(200, fake.jobs[m[1]])
        return self._error(404, f"no fake for GET {sent.path}", "notFound")

    def do_DELETE(self) -> None:
        self._record()
        self._reply(204)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"fake": FakeBigQuery()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake(endpoint: tuple[str, type[_Handler]]) -> FakeBigQuery:
    endpoint[1].fake = FakeBigQuery()
    return endpoint[1].fake


@pytest.fixture
def wh(endpoint: tuple[str, type[_Handler]], fake: FakeBigQuery) -> Iterator[BigQueryWarehouse]:
    client = bigquery.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        location=LOCATION,
        client_options={"api_endpoint": endpoint[0]},
    )
    w = BigQueryWarehouse(
        client, PROJECT, DATASET, LOCATION, {n: n for n in TABLES}, storage_read_api=False
    )
    yield w
    w.close()


# -- rows ----------------------------------------------------------------------------------------


def sales_rows(job: str, n: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "job_id": job, "row_num": range(n), "series_id": "CA_1/FOODS_1_001", "store_id": "CA_1",
            "item_id": "FOODS_1_001", "dept_id": "FOODS_1", "cat_id": "FOODS", "state_id": "CA",
            "date": pd.date_range("2016-01-01", periods=n), "units": 2.5, "sell_price": [1.25] + [None] * (n - 1),
            "snap": [True] + [None] * (n - 1), "event_name": None, "inserted_at": NOW,
        }
    )  # fmt: skip


def rejected_rows(job: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"job_id": job, "row_num": 7, "reason": "bad_quantity: -1", "raw": json.dumps({"units": -1, "note": 'a "b", c\nd'}), "rejected_at": NOW},
            {"job_id": job, "row_num": 8, "reason": "", "raw": {"units": None}, "rejected_at": pd.Timestamp("2016-01-11 08:30", tz="Europe/Berlin")},
        ]
    )  # fmt: skip


def forecast_rows(yhat: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series_id": "CA_1/FOODS_1_001", "store_id": "CA_1", "cat_id": "FOODS",
            "forecast_origin": pd.Timestamp("2016-01-10"), "horizon_day": range(1, 8),
            "target_date": pd.date_range("2016-01-11", periods=7), "model_version": "v1",
            "yhat": yhat, "lo_80": 0.5, "hi_80": 1.5, "lo_95": 0.2, "hi_95": 2.0,
            "event_id": "e1", "job_id": "j1", "created_at": NOW,
        }
    )  # fmt: skip


def expected_schema(name: str) -> list[dict[str, str]]:
    return bigquery_schema_json(TABLES[name])


# -- the port ------------------------------------------------------------------------------------


def test_is_a_warehouse_and_qualifies_every_table(wh: BigQueryWarehouse) -> None:
    assert isinstance(wh, Warehouse)
    assert wh.tables["sales"] == "`p.salesloop.sales`"
    assert set(wh.tables) == set(TABLES)


def test_from_settings_builds_the_client_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setattr(bqmod.bigquery, "Client", Recorder)
    settings = load_settings("dev")
    w = BigQueryWarehouse.from_settings(settings)
    assert made == [{"project": "salesloop-dev", "location": settings.warehouse.location}]
    assert w.tables["forecasts"] == f"`salesloop-dev.salesloop_dev.{settings.table('forecasts')}`"


# -- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "json_value"),
    [
        ("x", "STRING", "x"),
        (True, "BOOL", "true"),
        (np.bool_(False), "BOOL", "false"),
        (3, "INT64", "3"),
        (np.int64(3), "INT64", "3"),
        (1.5, "FLOAT64", 1.5),
        (np.float32(0.5), "FLOAT64", 0.5),
        (date(2016, 1, 10), "DATE", "2016-01-10"),
        (pd.Timestamp("2016-01-10"), "DATE", "2016-01-10"),
        (np.datetime64("2016-01-10"), "DATE", "2016-01-10"),
        (
            datetime(2016, 1, 11, 7, 30, tzinfo=timezone(timedelta(hours=1))),
            "TIMESTAMP",
            "2016-01-11 06:30:00+00:00",
        ),
        (
            pd.Timestamp("2016-01-11 07:30", tz="Europe/Berlin"),
            "TIMESTAMP",
            "2016-01-11 06:30:00+00:00",
        ),
    ],
)
def test_scalar_parameters_are_typed_by_value(value: Any, kind: str, json_value: Any) -> None:
    api = query_parameter("x", value).to_api_repr()
    assert api["parameterType"] == {"type": kind}
    assert api["parameterValue"] == {"value": json_value}


def test_list_parameters_are_arrays_of_their_element_type() -> None:
    keys = query_parameter("k", ["a", "b"]).to_api_repr()
    assert keys["parameterType"] == {"type": "ARRAY", "arrayType": {"type": "STRING"}}
    assert keys["parameterValue"] == {"arrayValues": [{"value": "a"}, {"value": "b"}]}
    days = query_parameter("d", (date(2016, 1, 1), pd.Timestamp("2016-01-02"))).to_api_repr()
    assert days["parameterType"]["arrayType"] == {"type": "DATE"}
    assert days["parameterValue"]["arrayValues"] == [
        {"value": "2016-01-01"},
        {"value": "2016-01-02"},
    ]
    assert query_parameter("e", []).to_api_repr()["parameterType"]["arrayType"] == {
        "type": "STRING"
    }


@pytest.mark.parametrize(
    "value",
    [
        None,
        pd.NaT,
        datetime(2016, 1, 1, 12),
        pd.Timestamp("2016-01-01 12:00"),
        Decimal("1.5"),
        {"a": 1},
        b"x",
        [1, "a"],
        [None],
    ],
)
def test_unsupported_parameters_are_refused_clearly(value: Any) -> None:
    with pytest.raises(UnsupportedParameter, match="@x"):
        query_parameter("x", value)


def test_prefixing_renames_parameters_and_nothing_else() -> None:
    text = (
        "UPDATE `p.d.alerts` SET status = 'sent @status', note = \"@x\", m = @message_id -- @c\n"
        "WHERE alert_key IN UNNEST(@alert_keys) AND `@col` = @date AND r'@raw' = @x /* @y */\n"
        "AND e = @@error.message AND t = '''@z''' AND u = @message_id_2"
    )
    out = prefix_parameters(text, "s3_")
    assert out == (
        "UPDATE `p.d.alerts` SET status = 'sent @status', note = \"@x\", m = @s3_message_id -- @c\n"
        "WHERE alert_key IN UNNEST(@s3_alert_keys) AND `@col` = @s3_date AND r'@raw' = @s3_x /* @y */\n"
        "AND e = @@error.message AND t = '''@z''' AND u = @s3_message_id_2"
    )
    assert parameter_names(text) == {"message_id", "alert_keys", "date", "x", "message_id_2"}


def test_parameters_must_match_the_sql_before_anything_is_sent(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    with pytest.raises(WarehouseError, match=r"unused \['extra'\]"):
        wh.query(sqlmod.load("event_forecasts"), {"job_id": "j1", "extra": 1})
    with pytest.raises(WarehouseError, match=r"no value for \['job_id'\]"):
        wh.query(sqlmod.load("event_forecasts"), {})
    with pytest.raises(WarehouseError):
        wh.apply(
            [
                Merge("forecasts", forecast_rows()),
                Exec(sqlmod.load("mark_alerts_sent"), {"message_id": "m"}),
            ]
        )
    assert fake.sent == []


# -- SQL files -----------------------------------------------------------------------------------

EXPECTED_PARAMS = {
    "event_forecasts": {"job_id"},
    "job_history": {"job_id", "recent_days", "horizon", "event_id", "job_name"},
    "mark_alerts_sent": {"message_id", "sent_at", "alert_keys"},
    "pending_alerts": {"event_id"},
    "recent_alerts": {"since"},
    "training_frame": {"end_date", "history_days"},
}


def test_every_sql_file_renders_for_bigquery_and_parses(wh: BigQueryWarehouse) -> None:
    names = sorted(
        Path(str(p)).stem for p in resources.files(sqlmod).iterdir() if str(p).endswith(".sql")
    )
    assert names, "no .sql files found"
    for name in names:
        text = wh.bigquery_sql(sqlmod.load(name))
        assert "{{" not in text and "}}" not in text, name
        statements = sqlglot.parse(text, read="bigquery")
        assert len(statements) == 1 and statements[0] is not None, name
        for table in statements[0].find_all(exp.Table):
            if table.name in TABLES:  # not a CTE
                assert (table.catalog, table.db) == (PROJECT, DATASET), (
                    name,
                    table.sql("bigquery"),
                )
        if name in EXPECTED_PARAMS:
            assert parameter_names(text) == EXPECTED_PARAMS[name], name


# -- reads ---------------------------------------------------------------------------------------

_RESULT_SCHEMA = [
    {"name": "s", "type": "STRING", "mode": "NULLABLE"},
    {"name": "i", "type": "INTEGER", "mode": "NULLABLE"},
    {"name": "n", "type": "INTEGER", "mode": "NULLABLE"},
    {"name": "f", "type": "FLOAT", "mode": "NULLABLE"},
    {"name": "b", "type": "BOOLEAN", "mode": "NULLABLE"},
    {"name": "c", "type": "BOOLEAN", "mode": "NULLABLE"},
    {"name": "d", "type": "DATE", "mode": "NULLABLE"},
    {"name": "ts", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "j", "type": "JSON", "mode": "NULLABLE"},
]
_RESULT_ROWS: list[list[str | None]] = [
    ["a", "1", "5", "1.5", "true", "true", "2016-01-10", "1452493800000000", '{"a":1}'],
    [None, "2", None, None, "false", None, None, None, None],
]


def test_query_sends_one_named_parameterized_job(wh: BigQueryWarehouse, fake: FakeBigQuery) -> None:
    params = {"job_id": "j1", "recent_days": 56, "horizon": 7, "event_id": "e", "job_name": "n"}
    wh.query(sqlmod.load("job_history"), params)
    (job,) = fake.queries
    config = job.body["configuration"]["query"]
    assert config["query"] == sqlmod.render(sqlmod.load("job_history"), wh.tables)
    assert "`p.salesloop.sales`" in config["query"]
    assert config["useLegacySql"] is False
    assert config["parameterMode"] == "NAMED"
    assert sorted(config["queryParameters"], key=lambda p: p["name"]) == [
        {"name": "event_id", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "e"}},
        {"name": "horizon", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "7"}},
        {"name": "job_id", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "j1"}},
        {"name": "job_name", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "n"}},
        {
            "name": "recent_days",
            "parameterType": {"type": "INT64"},
            "parameterValue": {"value": "56"},
        },
    ]
    assert job.body["jobReference"]["location"] == LOCATION
    assert job.job_id.startswith("salesloop_query_")


@pytest.mark.parametrize("with_json", [False, True], ids=["arrow-path", "row-path"])
def test_query_returns_the_frame_duckdb_would(
    wh: BigQueryWarehouse, fake: FakeBigQuery, with_json: bool
) -> None:
    keep = len(_RESULT_SCHEMA) if with_json else -1
    fake.results = lambda q: (_RESULT_SCHEMA[:keep], [r[:keep] for r in _RESULT_ROWS])
    got = wh.query("SELECT * FROM {{ sales }}")
    con = duckdb.connect()
    want = (
        con.execute(
            "SELECT * FROM (VALUES "
            "('a', 1::BIGINT, 5::BIGINT, 1.5::DOUBLE, true, true, DATE '2016-01-10', TIMESTAMPTZ '2016-01-11 06:30:00+00', '{\"a\":1}'),"
            "(NULL, 2, NULL, NULL, false, NULL, NULL, NULL, NULL)"
            ") AS t(s, i, n, f, b, c, d, ts, j)"
        )
        .df()
        .iloc[:, :keep]
    )
    con.close()
    assert (
        got.dtypes.astype(str).str.replace("Etc/UTC", "UTC").tolist()
        == want.dtypes.astype(str).str.replace("Etc/UTC", "UTC").tolist()
    )
    want["ts"] = want["ts"].dt.tz_convert("UTC")
    pd.testing.assert_frame_equal(got, want)
    # a result with no NULLs keeps numpy dtypes, as DuckDB's does
    fake.results = lambda q: (_RESULT_SCHEMA[:keep], [_RESULT_ROWS[0][:keep]])
    one = wh.query("SELECT * FROM {{ sales }}")
    assert (one["i"].dtype, one["b"].dtype) == (np.dtype("int64"), np.dtype("bool"))


def test_json_cells_come_back_as_json_text(wh: BigQueryWarehouse, fake: FakeBigQuery) -> None:
    cells = ['{"a": 1, "b": [1, 2.5]}', '[1, "x"]', '"s"', "3", None, '{"c": {"d": null}}']
    fake.results = lambda q: (
        [{"name": "raw", "type": "JSON", "mode": "NULLABLE"}],
        [[c] for c in cells],
    )
    got = wh.query("SELECT raw FROM {{ rejected_sales }}")
    assert got["raw"].tolist() == [
        '{"a":1,"b":[1,2.5]}',
        '[1,"x"]',
        '"s"',
        "3",
        None,
        '{"c":{"d":null}}',
    ]


def test_an_empty_result_has_the_columns(wh: BigQueryWarehouse, fake: FakeBigQuery) -> None:
    fake.results = lambda q: (_RESULT_SCHEMA, [])
    got = wh.query("SELECT * FROM {{ sales }} WHERE FALSE")
    assert got.empty and got.columns.tolist() == [f["name"] for f in _RESULT_SCHEMA]


def test_a_failing_query_is_a_warehouse_error(wh: BigQueryWarehouse, fake: FakeBigQuery) -> None:
    fake.fail_if = lambda q: True
    with pytest.raises(WarehouseError, match="boom"):
        wh.query("SELECT 1 FROM {{ sales }}")


def test_non_portable_sql_is_refused_before_sending(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    with pytest.raises(sqlmod.SqlError):
        wh.query("SELECT EXTRACT(DAYOFWEEK FROM date) FROM {{ sales }}")
    assert fake.sent == []


# -- insert jobs ---------------------------------------------------------------------------------


def test_insert_job_loads_rejected_rows_then_sales_under_the_event_job_id(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    res = wh.insert_job(
        {"sales": sales_rows("job_1"), "rejected_sales": rejected_rows("job_1")}, job_id="job_1"
    )
    rejected, sales = fake.uploads
    assert [rejected.job_id, sales.job_id] == ["job_1_rejected_sales", "job_1"]
    assert res.job_id == "job_1" and res.inserted == {"sales": 2, "rejected_sales": 2}
    assert res.committed_at == datetime.fromtimestamp(ENDED_MS / 1000, UTC)

    load = sales.load
    assert load["destinationTable"] == {
        "projectId": PROJECT,
        "datasetId": DATASET,
        "tableId": "sales",
    }
    assert load["schema"]["fields"] == expected_schema("sales")
    assert (load["writeDisposition"], load["createDisposition"], load["sourceFormat"]) == (
        "WRITE_APPEND",
        "CREATE_NEVER",
        "PARQUET",
    )
    assert sales.body["jobReference"]["location"] == LOCATION
    assert sales.media is not None
    sent = pq.read_table(io.BytesIO(sales.media))
    assert str(sent.schema.field("date").type) == "date32[day]"
    assert str(sent.schema.field("inserted_at").type) == "timestamp[us, tz=UTC]"
    rows = sent.to_pandas()
    assert rows["job_id"].tolist() == ["job_1", "job_1"]  # how the function finds them
    assert rows["date"].tolist() == [date(2016, 1, 1), date(2016, 1, 2)]
    assert rows["sell_price"].iloc[0] == 1.25 and pd.isna(rows["sell_price"].iloc[1])


def test_json_tables_load_as_csv_with_every_cell_rendered(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    wh.insert_job({"rejected_sales": rejected_rows("job_2")}, job_id="job_2")
    (up,) = fake.uploads
    load = up.load
    assert (
        load["sourceFormat"] == "CSV"
        and load["nullMarker"] == "\\N"
        and load["allowQuotedNewlines"] is True
    )
    assert load["schema"]["fields"] == expected_schema("rejected_sales")
    assert up.media is not None
    rows = list(csv.reader(io.StringIO(up.media.decode())))
    assert rows == [
        [
            "job_2",
            "7",
            "bad_quantity: -1",
            json.dumps({"units": -1, "note": 'a "b", c\nd'}),
            "2016-01-11 06:30:00.000000+00:00",
        ],
        ["job_2", "8", "", '{"units": null}', "2016-01-11 07:30:00.000000+00:00"],
    ]


def test_csv_cells_mark_nulls_and_keep_empty_strings() -> None:
    frame = load_frame(
        TABLES["model_versions"],
        pd.DataFrame(
            [
                {
                    "version": "v1",
                    "status": "",
                    "model_kind": "lgbm",
                    "train_start": pd.Timestamp("2015-01-01"),
                    "created_at": NOW,
                }
            ]
        ),
    )
    assert frame.iloc[0].tolist() == [
        "v1",
        "",
        "lgbm",
        "2015-01-01",
        "\\N",
        "\\N",
        "\\N",
        "2016-01-11 06:30:00.000000+00:00",
        "\\N",  # promoted_at
        "\\N",  # updated_at
    ]


def test_missing_optional_columns_are_sent_as_nulls(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    wh.insert_job(
        {"sales": sales_rows("job_3").drop(columns=["sell_price", "snap", "event_name"])},
        job_id="job_3",
    )
    (up,) = fake.uploads
    assert up.media is not None
    sent = pq.read_table(io.BytesIO(up.media))
    assert sent.column_names == TABLES["sales"].column_names
    assert sent.column("snap").null_count == 2 and str(sent.schema.field("snap").type) == "bool"


def test_sales_rows_must_carry_the_job_id_the_event_will_name(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    with pytest.raises(WarehouseError, match="must carry job_id 'job_4'"):
        wh.insert_job({"sales": sales_rows("other")}, job_id="job_4")
    with pytest.raises(WarehouseError, match="invalid BigQuery job id"):
        wh.insert_job({"sales": sales_rows("bad id!")}, job_id="bad id!")
    assert fake.sent == []
    # without a job id, the rows' own job id is the load job's
    assert wh.insert_job({"sales": sales_rows("job_5")}).job_id == "job_5"
    assert [u.job_id for u in fake.uploads] == ["job_5"]


def test_a_retried_insert_job_does_not_load_twice(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    first = wh.insert_job(
        {"sales": sales_rows("job_6", n=3), "rejected_sales": rejected_rows("job_6")},
        job_id="job_6",
    )
    again = wh.insert_job(
        {"sales": sales_rows("job_6", n=3), "rejected_sales": rejected_rows("job_6")},
        job_id="job_6",
    )
    assert again.inserted == first.inserted == {"sales": 3, "rejected_sales": 2}
    assert len(fake.jobs) == 2  # the second attempt created no job: 409, then jobs.get
    assert [s.path.rsplit("/", 1)[-1] for s in fake.of("GET", r"/jobs/")] == [
        "job_6_rejected_sales",
        "job_6",
    ]


def test_an_empty_frame_runs_no_load_job(wh: BigQueryWarehouse, fake: FakeBigQuery) -> None:
    res = wh.insert_job(
        {"sales": sales_rows("job_7").iloc[:0], "rejected_sales": rejected_rows("job_7")},
        job_id="job_7",
    )
    assert res.inserted == {"sales": 0, "rejected_sales": 2}
    assert [u.job_id for u in fake.uploads] == ["job_7_rejected_sales"]


# -- apply -------------------------------------------------------------------------------------


def test_apply_stages_merges_and_runs_one_transaction(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    sent_at = datetime(2016, 1, 11, 7, tzinfo=UTC)
    twice = pd.concat([forecast_rows(1.0), forecast_rows(9.0)])  # duplicate keys: the first wins
    wh.apply(
        [
            Merge("forecasts", twice),
            Exec(
                sqlmod.load("mark_alerts_sent"),
                {"message_id": "<m1>", "sent_at": sent_at, "alert_keys": ["k1", "k2"]},
            ),
            Merge("processed_events", pd.DataFrame()),  # nothing to merge: no staging, no statement
            Exec(
                "DELETE FROM {{ alerts }} WHERE alert_key IN UNNEST(@alert_keys) AND status = 'x'",
                {"alert_keys": ["k3"]},
            ),
            Merge("alerts", pd.DataFrame(), update_columns=("status",)),
        ]
    )
    (create,) = fake.of("POST", r"/datasets/salesloop/tables$")
    staging = create.body["tableReference"]["tableId"]
    assert staging.startswith("_staging_")
    assert create.body["schema"]["fields"] == expected_schema("forecasts")
    expires = datetime.fromtimestamp(int(create.body["expirationTime"]) / 1000, UTC)
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)

    (stage,) = fake.uploads
    assert stage.load["destinationTable"]["tableId"] == staging
    assert stage.load["schema"]["fields"] == expected_schema("forecasts")
    assert stage.media is not None
    staged = pq.read_table(io.BytesIO(stage.media)).to_pandas()
    assert len(staged) == 7 and set(staged["yhat"]) == {1.0}

    (script_job,) = fake.queries
    config = script_job.body["configuration"]["query"]
    script = config["query"]
    assert script.startswith(
        "BEGIN TRANSACTION;\nMERGE `p.salesloop.forecasts` AS T USING `p.salesloop."
        + staging
        + "` AS S ON "
    )
    assert script.endswith("COMMIT TRANSACTION;\n")
    assert "SET status = 'sent', message_id = @s1_message_id, sent_at = @s1_sent_at" in script
    assert "WHERE alert_key IN UNNEST(@s1_alert_keys)" in script
    assert "DELETE FROM `p.salesloop.alerts` WHERE alert_key IN UNNEST(@s3_alert_keys)" in script
    assert "alerts` AS T" not in script and "processed_events" not in script
    assert [type(s).__name__ for s in sqlglot.parse(script, read="bigquery")] == [
        "Transaction",
        "Merge",
        "Update",
        "Delete",
        "Commit",
    ]
    assert config["parameterMode"] == "NAMED"
    assert sorted(config["queryParameters"], key=lambda p: p["name"]) == [
        {
            "name": "s1_alert_keys",
            "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
            "parameterValue": {"arrayValues": [{"value": "k1"}, {"value": "k2"}]},
        },
        {
            "name": "s1_message_id",
            "parameterType": {"type": "STRING"},
            "parameterValue": {"value": "<m1>"},
        },
        {
            "name": "s1_sent_at",
            "parameterType": {"type": "TIMESTAMP"},
            "parameterValue": {"value": "2016-01-11 07:00:00+00:00"},
        },
        {
            "name": "s3_alert_keys",
            "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
            "parameterValue": {"arrayValues": [{"value": "k3"}]},
        },
    ]
    assert script_job.job_id.startswith("salesloop_apply_")
    (delete,) = fake.of("DELETE", r"/tables/")
    assert delete.path.endswith(f"/datasets/salesloop/tables/{staging}")
    assert [s.method for s in fake.sent if s.method != "GET"] == [
        "POST",
        "POST",
        "POST",
        "DELETE",
    ]  # create, load, script, drop


def test_merge_with_update_columns_updates_from_the_stage() -> None:
    script, params = merge_script(
        [Merge("alerts", pd.DataFrame(), update_columns=("status", "sent_at"))],
        tables={"alerts": "`p.d.alerts`"},
        staging={0: "`p.d._staging_1`"},
    )
    assert script is not None and params == {}
    assert "WHEN MATCHED THEN UPDATE SET `status` = S.`status`, `sent_at` = S.`sent_at`" in script
    assert merge_script([Merge("alerts", pd.DataFrame())], tables={}, staging={}) == (None, {})


def test_a_failing_transaction_is_a_warehouse_error_and_drops_its_staging(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    fake.fail_if = lambda q: q.startswith("BEGIN TRANSACTION")
    with pytest.raises(WarehouseError, match="rolled back"):
        wh.apply([Merge("forecasts", forecast_rows()), Merge("processed_events", pd.DataFrame([{
            "event_id": "e1", "job_name": "projects/p/jobs/j1", "rows_read": 2, "series_forecast": 1,
            "alerts_raised": 0, "processed_at": NOW}]))])  # fmt: skip
    created = [s.body["tableReference"]["tableId"] for s in fake.of("POST", r"/tables$")]
    dropped = [s.path.rsplit("/", 1)[-1] for s in fake.of("DELETE", r"/tables/")]
    assert len(created) == 2 and sorted(dropped) == sorted(created)


def test_apply_with_nothing_to_write_sends_nothing(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    wh.apply([Merge("forecasts", forecast_rows().iloc[:0])])
    wh.apply([])
    assert fake.sent == []
    with pytest.raises(WarehouseError, match="lacks required columns"):
        wh.apply([Merge("forecasts", forecast_rows().drop(columns=["yhat"]))])
    with pytest.raises(WarehouseError, match="unknown table"):
        wh.apply([Merge("nope", forecast_rows())])
    assert fake.sent == []


# -- schema --------------------------------------------------------------------------------------


def test_ensure_schema_creates_partitioned_clustered_tables(
    wh: BigQueryWarehouse, fake: FakeBigQuery
) -> None:
    wh.ensure_schema()
    (dataset,) = fake.of("POST", r"/projects/p/datasets$")
    assert dataset.body["datasetReference"] == {"projectId": PROJECT, "datasetId": DATASET}
    assert dataset.body["location"] == LOCATION
    bodies = {s.body["tableReference"]["tableId"]: s.body for s in fake.of("POST", r"/tables$")}
    assert set(bodies) == set(TABLES)
    assert bodies["sales"]["timePartitioning"] == {"type": "DAY", "field": "date"}
    assert bodies["sales"]["clustering"] == {"fields": ["store_id", "item_id"]}
    assert "clustering" not in bodies["model_versions"]
    for name, body in bodies.items():
        assert body["schema"]["fields"] == expected_schema(name)
        assert body["description"] == TABLES[name].description


def test_arrow_to_frame_of_nothing() -> None:
    import pyarrow as pa

    assert arrow_to_frame(pa.table({})).empty


def test_both_arrow_paths_give_nullable_columns_the_same_dtypes() -> None:
    """BigQuery results and the local service's IPC frames share one NULL rule (DuckDB's)."""
    import pyarrow as pa

    from salesloop.warehouse.http import frame_to_ipc, ipc_to_frame

    table = pa.table(
        {
            "n": pa.array([1, None, 3], pa.int64()),
            "small": pa.array([1, 2, 3], pa.int32()),
            "flag": pa.array([True, None, False]),
            "ok": pa.array([True, False, True]),
            "x": pa.array([1.5, None, 2.0]),
        }
    )
    via_bigquery = arrow_to_frame(table)
    assert dict(via_bigquery.dtypes.astype(str)) == {
        "n": "Int64",
        "small": "int64",
        "flag": "boolean",
        "ok": "bool",
        "x": "float64",
    }
    via_service = ipc_to_frame(frame_to_ipc(via_bigquery))
    for name in ("n", "flag", "ok", "x"):
        assert via_service[name].dtype == via_bigquery[name].dtype, name
        assert via_service[name].equals(via_bigquery[name]), name
