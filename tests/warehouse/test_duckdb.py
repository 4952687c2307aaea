from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from salesloop import sql
from salesloop.data.calendar import already_processed, split_job_history
from salesloop.schemas import TABLES
from salesloop.warehouse import Exec, Merge, WarehouseError
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.warehouse.conftest import sales_rows

NOW = datetime(2016, 1, 11, tzinfo=UTC)


def forecast_rows(version: str = "v1", yhat: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series_id": "CA_1/FOODS_1_001",
            "store_id": "CA_1",
            "cat_id": "FOODS",
            "forecast_origin": pd.Timestamp("2016-01-10"),
            "horizon_day": range(1, 8),
            "target_date": pd.date_range("2016-01-11", periods=7),
            "model_version": version,
            "yhat": yhat,
            "lo_80": 0.5,
            "hi_80": 1.5,
            "lo_95": 0.2,
            "hi_95": 2.0,
            "event_id": "e1",
            "job_id": "j1",
            "created_at": NOW,
        }
    )


def test_schema_matches_single_source(wh: DuckDBWarehouse) -> None:
    for name, table in TABLES.items():
        cols = wh.query(f"SELECT * FROM {{{{ {name} }}}} LIMIT 0").columns.tolist()
        assert cols == table.column_names


def test_insert_job_is_one_transaction_with_its_audit_entry(wh: DuckDBWarehouse) -> None:
    res = wh.insert_job({"sales": sales_rows("j1", ["2016-01-01", "2016-01-02"], 2.0)}, job_id="j1")
    assert res.inserted == {"sales": 2}
    audit = wh.audit_entries()
    assert audit["job_name"].tolist() == [f"projects/{wh.project}/jobs/j1"]
    assert int(audit["inserted_rows"].iloc[0]) == 2
    # a job that fails half way leaves neither rows nor an audit entry
    bad = sales_rows("j2", ["2016-01-03"], 1.0).drop(columns=["series_id"])
    with pytest.raises(WarehouseError):
        wh.insert_job(
            {"sales": sales_rows("j2", ["2016-01-03"], 1.0), "rejected_sales": bad}, job_id="j2"
        )
    assert len(wh.audit_entries()) == 1
    assert wh.query("SELECT COUNT(*) AS n FROM {{ sales }}")["n"].iloc[0] == 2


def test_rejected_only_job_emits_no_event(wh: DuckDBWarehouse) -> None:
    rej = pd.DataFrame(
        [
            {
                "job_id": "j9",
                "row_num": 0,
                "reason": "bad_quantity: -1",
                "raw": "{}",
                "rejected_at": NOW,
            }
        ]
    )
    wh.insert_job({"rejected_sales": rej}, job_id="j9")
    assert wh.audit_entries().empty


def test_merge_is_insert_if_absent_and_idempotent(wh: DuckDBWarehouse) -> None:
    wh.apply([Merge("forecasts", forecast_rows(yhat=1.0))])
    wh.apply([Merge("forecasts", forecast_rows(yhat=9.0))])  # redelivery: first write wins
    out = wh.query("SELECT yhat FROM {{ forecasts }}")
    assert len(out) == 7 and set(out["yhat"]) == {1.0}
    wh.apply([Merge("forecasts", forecast_rows(version="v2"))])
    assert len(wh.query("SELECT * FROM {{ forecasts }}")) == 14


def test_merge_with_update_columns_updates(wh: DuckDBWarehouse) -> None:
    wh.apply([Merge("forecasts", forecast_rows(yhat=1.0))])
    wh.apply([Merge("forecasts", forecast_rows(yhat=3.0), update_columns=("yhat",))])
    assert set(wh.query("SELECT yhat FROM {{ forecasts }}")["yhat"]) == {3.0}


def test_apply_rolls_back_everything_on_failure(wh: DuckDBWarehouse) -> None:
    with pytest.raises(WarehouseError):
        wh.apply(
            [Merge("forecasts", forecast_rows()), Exec("UPDATE {{ alerts }} SET nonexistent = 1")]
        )
    assert wh.query("SELECT COUNT(*) AS n FROM {{ forecasts }}")["n"].iloc[0] == 0
    # The source view created inside the rolled-back transaction is gone; writes still work.
    wh.apply([Merge("forecasts", forecast_rows())])
    assert wh.query("SELECT COUNT(*) AS n FROM {{ forecasts }}")["n"].iloc[0] == 7


def test_repeated_merges_read_each_new_frame_and_keep_the_first_row_per_key(
    wh: DuckDBWarehouse,
) -> None:
    """The source view is created once and re-bound to every new frame (no stale rows)."""
    for version in ("v1", "v2", "v3"):
        wh.apply([Merge("forecasts", forecast_rows(version=version, yhat=float(version[1])))])
    out = wh.query("SELECT model_version, yhat FROM {{ forecasts }}")
    assert out.groupby("model_version")["yhat"].first().to_dict() == {
        "v1": 1.0,
        "v2": 2.0,
        "v3": 3.0,
    }
    doubled = pd.concat(
        [forecast_rows(version="v4", yhat=4.0), forecast_rows(version="v4", yhat=5.0)]
    )
    wh.apply([Merge("forecasts", doubled)])
    v4 = wh.query("SELECT yhat FROM {{ forecasts }} WHERE model_version = 'v4'")
    assert len(v4) == 7 and set(v4["yhat"]) == {4.0}


def history_params(job_id: str, event_id: str = "", job_name: str = "") -> dict[str, object]:
    return {
        "job_id": job_id,
        "recent_days": 28,
        "horizon": 7,
        "event_id": event_id,
        "job_name": job_name,
    }


def test_job_history_carries_the_ledger_row_of_a_processed_delivery(
    wh: DuckDBWarehouse,
) -> None:
    wh.insert_job({"sales": sales_rows("j1", ["2016-01-09", "2016-01-10"], 1.0)}, job_id="j1")
    name = "projects/p/jobs/j1"
    first = wh.query(sql.load("job_history"), history_params("j1", "e1", name))
    assert not already_processed(first)
    history, calendar = split_job_history(first)
    assert len(history) == 2 and calendar is None
    ledger = pd.DataFrame(
        [
            {
                "event_id": "e1",
                "job_name": name,
                "rows_read": 2,
                "series_forecast": 1,
                "alerts_raised": 0,
                "model_version": "v1",
                "job_committed_at": NOW,
                "processed_at": NOW,
            }
        ]
    )
    wh.apply([Merge("processed_events", ledger)])
    again = wh.query(sql.load("job_history"), history_params("j1", "e1", name))
    assert already_processed(again)
    assert (again["part"] == "ledger").sum() == 1
    # The same history either way: the ledger row is not part of it.
    cols = ["series_id", "date", "units", "sell_price"]
    pd.testing.assert_frame_equal(
        split_job_history(again)[0][cols].reset_index(drop=True),
        history[cols].reset_index(drop=True),
    )
    # Another delivery id, or the same id for another job: not processed.
    assert not already_processed(
        wh.query(sql.load("job_history"), history_params("j1", "e2", name))
    )
    assert not already_processed(
        wh.query(sql.load("job_history"), history_params("j1", "e1", "projects/p/jobs/j9"))
    )


def test_job_history_latest_insert_wins_and_windows(wh: DuckDBWarehouse) -> None:
    wh.insert_job(
        {"sales": sales_rows("j1", pd.date_range("2015-01-01", "2016-01-10"), 1.0)}, job_id="j1"
    )
    wh.insert_job({"sales": sales_rows("j2", ["2016-01-10"], 5.0)}, job_id="j2")
    wh.insert_job(
        {"sales": sales_rows("j3", ["2016-01-10"], 1.0, series="TX_1/HOBBIES_1_001")}, job_id="j3"
    )
    h = wh.query(sql.load("job_history"), history_params("j2"))
    assert set(h["series_id"]) == {"CA_1/FOODS_1_001"}  # only the series the job touched
    assert set(h["part"]) == {"history"}  # no calendar loaded: no horizon rows
    assert h[h["date"] == pd.Timestamp("2016-01-10")]["units"].tolist() == [5.0]
    recent = h[h["date"] > pd.Timestamp("2015-12-13")]
    assert len(recent) == 28
    last_year = h[h["date"] <= pd.Timestamp("2015-12-13")]
    assert len(last_year) == 7  # the same week one year (364 days) earlier
    assert last_year["date"].min() == pd.Timestamp("2016-01-10") - timedelta(days=363)


def calendar_rows(state: str, first: str, days: int, snap_every: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.date_range(first, periods=days),
            "state_id": state,
            "snap": [i % snap_every == 0 for i in range(days)],
            "event_name": [None] * days,
            "loaded_at": NOW,
        }
    )


def test_job_history_returns_the_horizon_calendar_of_each_series_state(
    wh: DuckDBWarehouse,
) -> None:
    wh.insert_job(
        {
            "sales": pd.concat(
                [
                    sales_rows("j1", pd.date_range("2016-01-01", "2016-01-10"), 1.0),
                    sales_rows("j1", pd.date_range("2016-01-01", "2016-01-08"), 1.0, "TX_1/X_1_1"),
                ]
            )
        },
        job_id="j1",
    )
    # Another job later extends the CA series: its origin moves to the 11th.
    wh.insert_job({"sales": sales_rows("j2", ["2016-01-11"], 2.0)}, job_id="j2")
    cal = pd.concat(
        [calendar_rows("CA", "2015-12-01", 60), calendar_rows("TX", "2015-12-01", 60, 3)]
    )
    cal.loc[(cal["state_id"] == "CA") & (cal["date"] == "2016-01-14"), "event_name"] = "Easter"
    wh.apply([Merge("calendar", cal.iloc[:-19])])  # TX only up to 2016-01-10
    h = wh.query(sql.load("job_history"), history_params("j1"))
    assert list(h.columns[-2:]) == ["origin", "part"]
    history = h[h["part"] == "history"]
    assert len(history) == 11 + 8 and history["units"].notna().all()
    horizon = h[h["part"] == "calendar"]
    ca = horizon[horizon["series_id"] == "CA_1/FOODS_1_001"]
    # The 7 days after the series' own origin (2016-01-11), from its state's calendar only.
    assert ca["date"].tolist() == list(pd.date_range("2016-01-12", periods=7))
    expected = cal[(cal["state_id"] == "CA") & cal["date"].between("2016-01-12", "2016-01-18")]
    assert ca["snap"].tolist() == expected["snap"].tolist()
    assert ca["event_name"].tolist() == [None, None, "Easter", None, None, None, None]
    assert (ca["origin"] == pd.Timestamp("2016-01-11")).all()
    assert ca[["units", "store_id", "sell_price"]].isna().all().all()
    # TX's calendar ends on the 10th: only the two days it has after the origin (the 8th).
    tx = horizon[horizon["series_id"] == "TX_1/X_1_1"]
    assert tx["date"].tolist() == list(pd.date_range("2016-01-09", periods=2))
    assert tx["snap"].tolist() == [bool(i % 3 == 0) for i in (39, 40)]
    # Ordered by series then date: each series' history, then its horizon.
    assert h.sort_values(["series_id", "date"], kind="stable").index.tolist() == h.index.tolist()


def test_every_sql_file_runs_on_duckdb(wh: DuckDBWarehouse) -> None:
    wh.insert_job(
        {"sales": sales_rows("j1", pd.date_range("2015-12-01", "2016-01-10"), 1.0)}, job_id="j1"
    )
    params: dict[str, dict[str, Any]] = {
        "job_history": {
            "job_id": "j1",
            "recent_days": 56,
            "horizon": 7,
            "event_id": "e",
            "job_name": "projects/p/jobs/j1",
        },
        "recent_alerts": {"since": NOW - timedelta(days=7)},
        "pending_alerts": {"event_id": "e"},
        "event_forecasts": {"job_id": "j1"},
        "training_frame": {"end_date": date(2016, 1, 10), "history_days": 30},
    }
    dml = {"mark_alerts_sent": {"message_id": "<m@x>", "sent_at": NOW, "alert_keys": ["a", "b"]}}
    # monitoring_*.sql are exercised on DuckDB by tests/monitoring; every other query needs a case here
    files = sorted(
        p.name[:-4]
        for p in resources.files("salesloop.sql").iterdir()
        if p.name.endswith(".sql") and not p.name.startswith("monitoring_")
    )
    assert set(files) == set(params) | set(dml), "every query needs a test here"
    for name, p in params.items():
        wh.query(sql.load(name), p)
    assert len(wh.query(sql.load("training_frame"), params["training_frame"])) == 30
    for name, p in dml.items():
        wh.apply([Exec(sql.load(name), p)])


@pytest.mark.parametrize(
    "bad",
    [
        "SELECT EXTRACT(DAYOFWEEK FROM date) FROM {{ sales }}",
        "SELECT x FROM UNNEST([1,2]) AS x WITH OFFSET",
        "SELECT ARRAY_AGG(units LIMIT 3) FROM {{ sales }}",
        "SELECT DATE_TRUNC(date, WEEK(MONDAY)) FROM {{ sales }}",
    ],
)
def test_known_bad_translations_are_refused(wh: DuckDBWarehouse, bad: str) -> None:
    with pytest.raises(sql.SqlError, match="non-portable"):
        wh.query(bad)


def test_unknown_table_and_missing_columns_are_clear(wh: DuckDBWarehouse) -> None:
    with pytest.raises(WarehouseError, match="unknown table"):
        wh.apply([Merge("nope", forecast_rows())])
    with pytest.raises(WarehouseError, match="lacks required columns"):
        wh.apply([Merge("forecasts", forecast_rows().drop(columns=["yhat"]))])


def test_file_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with DuckDBWarehouse(path) as w:
        w.insert_job({"sales": sales_rows("j1", ["2016-01-01"], 1.0)}, job_id="j1")
    with DuckDBWarehouse(path) as w:
        assert len(w.audit_entries()) == 1
