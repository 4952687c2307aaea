"""Reading sales files (CSV/Parquet, column mapping, clear errors) and ingesting into insert jobs.

The warehouse here is a recording test double of the port's ``insert_job``; the integration test
against the DuckDB warehouse lives with the warehouse tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from salesloop.config import Settings, load_settings
from salesloop.data import cli
from salesloop.data.generate import write_parquet
from salesloop.data.ingest import (
    IngestError,
    JobFailed,
    ingest_file,
    ingest_frame,
    inspect_sales_file,
    iter_sales_file,
    load_mapping,
    read_sales_file,
)
from salesloop.schemas import REJECTED_SALES, SALES

NOW = datetime(2016, 6, 1, 9, 0, tzinfo=UTC)


@dataclass
class _Result:
    job_id: str
    inserted: dict[str, int]
    committed_at: datetime


@dataclass
class RecordingWarehouse:
    """Test double of the Warehouse port: records each insert job; can fail on the n-th one."""

    fail_on_call: int | None = None
    calls: list[tuple[str | None, dict[str, pd.DataFrame]]] = field(default_factory=list)
    closed: bool = False

    def insert_job(self, frames: Mapping[str, pd.DataFrame], job_id: str | None = None) -> _Result:
        if self.fail_on_call is not None and len(self.calls) + 1 == self.fail_on_call:
            raise RuntimeError("disk full")
        self.calls.append((job_id, {k: v.copy() for k, v in frames.items()}))
        return _Result(job_id or "generated", {k: len(v) for k, v in frames.items()}, NOW)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def settings() -> Settings:
    return load_settings("local")


def _rows(n: int, *, bad_every: int = 0) -> pd.DataFrame:
    days = pd.date_range("2016-01-01", periods=n).strftime("%Y-%m-%d")
    units = [("-1" if bad_every and i % bad_every == 0 else str(i % 5)) for i in range(n)]
    return pd.DataFrame(
        {"store_id": "CA_1", "item_id": "FOODS_3_090", "date": days, "units": units}
    )


# --- reading -------------------------------------------------------------------------------


def test_csv_with_mapping_keeps_cells_as_written(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(
        "shop,sku,day,qty,note\nCA_1,FOODS_3_007,2016-01-01,0003,\nCA_2,007,2016-01-02,,x\n"
    )
    df = read_sales_file(
        path, {"store_id": "shop", "item_id": "sku", "date": "day", "units": "qty"}
    )
    assert list(df.columns) == ["store_id", "item_id", "date", "units", "note"]
    assert df["item_id"].tolist() == ["FOODS_3_007", "007"]  # leading zeros kept
    assert df["units"].tolist() == ["0003", ""]  # an empty cell stays empty: validation names it
    assert df.attrs["freq"] == "D"


def test_compressed_csv_and_tsv(tmp_path: Path) -> None:
    frame = _rows(5)
    frame.to_csv(tmp_path / "s.csv.gz", index=False)
    frame.to_csv(tmp_path / "s.tsv", index=False, sep="\t")
    assert read_sales_file(tmp_path / "s.csv.gz").equals(frame)
    assert read_sales_file(tmp_path / "s.tsv").equals(frame)


def test_parquet_with_mapping_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "g.parquet"
    write_parquet(path, 20, 5, progress=False)
    their = pd.read_parquet(path).rename(columns={"units": "qty"})
    their.to_parquet(tmp_path / "their.parquet")
    df = read_sales_file(tmp_path / "their.parquet", {"units": "qty"}, freq="D")
    assert "units" in df and "qty" not in df
    assert str(df["date"].dtype).startswith("datetime64[")
    assert len(df) == 100
    batches = list(iter_sales_file(tmp_path / "their.parquet", {"units": "qty"}, batch_rows=30))
    assert [len(b) for b in batches] == [30, 30, 30, 10]


def test_mapping_from_yaml(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("units: qty\ndate: day\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("columns:\n  units: qty\n")
    assert load_mapping(flat) == {"units": "qty", "date": "day"}
    assert load_mapping(nested) == {"units": "qty"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("units: [qty, q]\n")
    with pytest.raises(IngestError, match="must be strings"):
        load_mapping(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("units: 'qty\n")
    with pytest.raises(IngestError, match="not valid YAML"):
        load_mapping(broken)
    with pytest.raises(IngestError, match="not found"):
        load_mapping(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(IngestError, match="expected a mapping"):
        load_mapping(empty)


@pytest.mark.parametrize(
    ("name", "mapping", "message"),
    [
        ("sales.xlsx", None, r"unsupported file type \.xlsx.*expected \.csv"),
        ("sales", None, r"unsupported file type \(no extension\)"),
        ("missing.csv", None, "missing.csv: file not found"),
        (
            "ok.csv",
            {"units": "qty"},
            r"mapped column\(s\) not in the file: units <- 'qty'; the file has 'store_id'",
        ),
        ("ok.csv", {"quantity": "units"}, r"unknown target column\(s\) quantity"),
        ("nounits.csv", None, r"no column for units; the file has 'store_id', 'item_id', 'date'"),
        ("ok.csv", {"units": "store_id"}, r"also has column\(s\) named units"),
        ("empty.csv", None, "cannot read as CSV"),
        ("notparquet.parquet", None, "cannot read as Parquet"),
    ],
)
def test_clear_errors(
    tmp_path: Path, name: str, mapping: dict[str, str] | None, message: str
) -> None:
    (tmp_path / "sales.xlsx").write_text("x")
    (tmp_path / "sales").write_text("x")
    _rows(2).to_csv(tmp_path / "ok.csv", index=False)
    _rows(2).drop(columns="units").to_csv(tmp_path / "nounits.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "notparquet.parquet").write_text("not parquet")
    with pytest.raises(IngestError, match=message):
        read_sales_file(tmp_path / name, mapping)
    with pytest.raises(IngestError, match=message):
        inspect_sales_file(tmp_path / name, mapping)


def test_unknown_frequency(tmp_path: Path) -> None:
    _rows(2).to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(IngestError, match="unknown frequency 'H'"):
        read_sales_file(tmp_path / "ok.csv", freq="H")


def test_header_only_file_gives_empty_frame(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("store_id,item_id,date,qty\n")
    df = read_sales_file(tmp_path / "h.csv", {"units": "qty"})
    assert df.empty and list(df.columns) == ["store_id", "item_id", "date", "units"]


# --- ingesting -------------------------------------------------------------------------------


def test_ingest_frame_splits_into_jobs(settings: Settings) -> None:
    wh = RecordingWarehouse()
    raw = _rows(120_001 // 1000, bad_every=7)  # 120 rows
    report = ingest_frame(wh, raw, job_id="load1", settings=settings, job_rows=50, now=NOW)
    assert [c[0] for c in wh.calls] == ["load1_0000", "load1_0001", "load1_0002"]
    assert [j.rows for j in report.jobs] == [50, 50, 20]
    for job_id, frames in wh.calls:
        assert set(frames) == {"sales", "rejected_sales"}
        sales, rejected = frames["sales"], frames["rejected_sales"]
        assert list(sales.columns) == SALES.column_names
        assert list(rejected.columns) == REJECTED_SALES.column_names
        assert (sales["job_id"] == job_id).all() and (rejected["job_id"] == job_id).all()
        rows = sorted([*sales["row_num"], *rejected["row_num"]])
        assert rows == list(range(len(rows)))  # row_num counts within the job
        assert (sales["inserted_at"] == pd.Timestamp(NOW)).all()
    assert report.rows == 120 and report.rejected == 18 and report.good == 102
    assert report.reasons == {"bad_quantity": 18}
    assert report.to_dict()["jobs"][0]["committed_at"] == NOW.isoformat()


def test_ingest_frame_job_ids(settings: Settings) -> None:
    wh = RecordingWarehouse()
    ingest_frame(wh, _rows(10), job_id="one", settings=settings, now=NOW)
    ingest_frame(wh, _rows(10), settings=settings, job_rows=4, now=NOW)
    ids = [c[0] for c in wh.calls]
    assert ids[0] == "one"
    assert all(i and i.startswith("ingest_") for i in ids[1:]) and len(set(ids)) == 4
    assert ingest_frame(wh, _rows(0), settings=settings).jobs == []
    with pytest.raises(IngestError, match="job_rows"):
        ingest_frame(wh, _rows(1), settings=settings, job_rows=0)


def test_future_dates_use_settings(settings: Settings) -> None:
    wh = RecordingWarehouse()
    raw = pd.DataFrame(
        {
            "store_id": "CA_1",
            "item_id": "FOODS_3_090",
            "date": ["2016-06-03", "2016-06-04"],
            "units": "1",
        }
    )
    report = ingest_frame(wh, raw, settings=settings, now=NOW)  # local: max_future_days 2
    assert settings.warehouse.max_future_days == 2
    assert (report.good, report.reasons) == (1, {"future_date": 1})


def test_weekly_frequency_from_reader(tmp_path: Path, settings: Settings) -> None:
    raw = pd.DataFrame(
        {
            "store_id": "CA_1",
            "item_id": "FOODS_3_090",
            "date": ["2016-01-08", "2016-01-15"],
            "units": ["5", "6"],
        }
    )
    raw.to_csv(tmp_path / "w.csv", index=False)
    wh = RecordingWarehouse()
    ingest_frame(wh, read_sales_file(tmp_path / "w.csv", freq="W"), settings=settings, now=NOW)
    assert wh.calls[0][1]["sales"]["date"].tolist() == [
        pd.Timestamp("2016-01-04"),
        pd.Timestamp("2016-01-11"),
    ]


def test_failed_job_reports_what_was_committed(settings: Settings) -> None:
    wh = RecordingWarehouse(fail_on_call=2)
    with pytest.raises(
        JobFailed, match=r"insert job x_0001 failed after 1 committed job\(s\) \(10 rows\)"
    ) as err:
        ingest_frame(wh, _rows(25), job_id="x", settings=settings, job_rows=10, now=NOW)
    assert [j.job_id for j in err.value.report.jobs] == ["x_0000"]


def test_ingest_file_streams_csv_and_parquet(tmp_path: Path, settings: Settings) -> None:
    raw = _rows(95, bad_every=10)
    raw.to_csv(tmp_path / "s.csv", index=False)
    wh = RecordingWarehouse()
    report = ingest_file(
        wh, tmp_path / "s.csv", settings=settings, job_rows=40, job_id="f", now=NOW
    )
    assert [c[0] for c in wh.calls] == ["f_0000", "f_0001", "f_0002"]
    assert (report.rows, report.rejected) == (95, 10)
    rejected = pd.concat([c[1]["rejected_sales"] for c in wh.calls])
    assert json.loads(rejected["raw"].iloc[0]) == {
        "store_id": "CA_1",
        "item_id": "FOODS_3_090",
        "date": "2016-01-01",
        "units": "-1",
    }

    write_parquet(tmp_path / "g.parquet", 30, 20, start=date(2016, 1, 1), progress=False)
    wh = RecordingWarehouse()
    report = ingest_file(wh, tmp_path / "g.parquet", settings=settings, job_id="g", now=NOW)
    assert [c[0] for c in wh.calls] == ["g"]  # one job keeps the caller's id
    assert (report.rows, report.rejected) == (600, 0)
    sales = wh.calls[0][1]["sales"]
    assert set(sales["event_name"].dropna()) == {
        "NewYear",
        "OrthodoxChristmas",
        "MartinLutherKingDay",
    }
    assert sales["event_name"].isna().sum() == 600 - 3 * 30
    # Header-only input: no jobs at all.
    (tmp_path / "h.csv").write_text("store_id,item_id,date,units\n")
    assert ingest_file(RecordingWarehouse(), tmp_path / "h.csv", settings=settings).jobs == []


# --- CLI -------------------------------------------------------------------------------------


def test_cli_generate_and_shock_parsing(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "s.parquet"
    result = runner.invoke(
        cli.app,
        [
            "generate", "--series", "30", "--days", "40", "--start", "2016-01-01", "--out", str(out),
            "--shock", "category_drop:FOODS@CA_1:2016-01-20:0.5", "--shock", "store_closure:TX_1:2016-01-25:2016-01-27",
            "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows"] == 1200 and out.is_file()
    df = pd.read_parquet(out)
    closed = df[
        (df["store_id"] == "TX_1") & df["date"].between(date(2016, 1, 25), date(2016, 1, 27))
    ]
    assert len(closed) and (closed["units"] == 0).all()
    shock = cli.parse_shock("category_drop:HOBBIES_1:2016-01-01:2016-02-01:1.5")
    assert (shock.category, shock.factor, shock.end) == ("HOBBIES_1", 1.5, date(2016, 2, 1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shock", "category_drop:FOODS"], "expected KIND:TARGET:START"),
        (["--shock", "category_drop:FOODS:2016-01-01"], "needs a FACTOR"),
        (["--shock", "flood:FOODS:2016-01-01:0.5"], "unknown kind 'flood'"),
        (["--shock", "category_drop:FOODS:2016-13-01:0.5"], "not a date"),
        (["--shock", "category_drop:FOODS:2016-01-01:half"], "not a FACTOR"),
        (["--shock", "store_closure:NY_1:2016-01-01"], "unknown store 'NY_1'"),
        (["--series", "0"], "1..30490"),
        (["--start", "yesterday"], "not a date"),
        (["--out", "x.csv"], "use a .parquet name"),
    ],
)
def test_cli_generate_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli.app, ["generate", "--out", str(tmp_path / "o.parquet"), *args])
    assert result.exit_code == 2
    assert message in _flat(result.output)


def _flat(text: str) -> str:
    """CLI output without rich's box drawing and line wrapping."""
    return " ".join(text.replace("│", " ").split())


def test_cli_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import salesloop.warehouse as warehouse

    wh = RecordingWarehouse()
    monkeypatch.setattr(warehouse, "open_warehouse", lambda settings: wh)
    _rows(30, bad_every=10).rename(columns={"units": "qty"}).to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "m.yaml").write_text("units: qty\n")
    runner = CliRunner()
    result = runner.invoke(
        cli.app,
        [
            "ingest",
            str(tmp_path / "s.csv"),
            "--mapping",
            str(tmp_path / "m.yaml"),
            "--job-rows",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["rows"], report["rejected"], len(report["jobs"])) == (30, 3, 2)
    assert wh.closed

    bad = runner.invoke(cli.app, ["ingest", str(tmp_path / "s.csv")])
    assert bad.exit_code == 2 and "no column for units" in _flat(bad.output)
    missing = runner.invoke(cli.app, ["ingest", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "file not found" in _flat(missing.output)
    env = runner.invoke(cli.app, ["ingest", str(tmp_path / "s.csv"), "--env", "staging"])
    assert env.exit_code == 2 and "unknown environment" in _flat(env.output)

    wh.fail_on_call = 2
    wh.calls.clear()
    failed = runner.invoke(
        cli.app,
        [
            "ingest",
            str(tmp_path / "s.csv"),
            "--mapping",
            str(tmp_path / "m.yaml"),
            "--job-rows",
            "20",
        ],
    )
    assert failed.exit_code == 1
    assert "failed after 1 committed job" in failed.output
