"""The horizon's known calendar at serving time, through the real handler, warehouse and model.

Train/serve skew this guards against: the model learns SNAP and events from the sales rows, the
backtest gives it the true future values, but a forecast's horizon has no sales rows. The event
function reads the horizon's calendar rows with the history (one query) and sends them as the
instances' ``future``. Here a LightGBM is trained on sales whose SNAP days (random, so only the
flag can tell them) triple demand; the same insert event is then handled on two copies of the
warehouse, one with the calendar loaded and one without, and the requests and forecasts compared.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from salesloop.config import Settings, load_settings
from salesloop.data.calendar import load_calendar
from salesloop.data.ingest import ingest_frame
from salesloop.events import build_insert_event
from salesloop.model.lgbm import LightGBMConfig
from salesloop.model.train import train_and_register
from salesloop.on_sale import OnSaleHandler, Outcome
from salesloop.predictor.base import PredictionBatch
from salesloop.predictor.codec import instances_from_history
from salesloop.predictor.in_process import InProcessPredictor
from salesloop.registry import LocalRegistry
from salesloop.warehouse.duckdb import DuckDBWarehouse

pytestmark = [pytest.mark.slow]

START = date(2016, 1, 1)
DAYS = 240
ORIGIN = START + timedelta(days=DAYS - 1)
ENDPOINT = "sales-forecast"
SERIES = [(store, f"FOODS_1_{k:03d}") for store in ("CA_1", "TX_1") for k in range(1, 5)]
SNAP_DAY = 3  # the horizon day the calendar makes a SNAP day in CA


def snap_calendar(seed: int = 3) -> pd.DataFrame:
    """SNAP on a random third of the days per state: no weekday or day of month predicts it."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, periods=DAYS + 7)
    parts = [
        pd.DataFrame(
            {
                "date": days,
                "state_id": state,
                "snap": rng.random(len(days)) < 0.3,
                "event_name": None,
            }
        )
        for state in ("CA", "TX")
    ]
    return pd.concat(parts, ignore_index=True)


def sales(calendar: pd.DataFrame, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, periods=DAYS)
    frames = []
    for store, item in SERIES:
        state = store[:2]
        snap = calendar[calendar["state_id"] == state]["snap"].to_numpy()[:DAYS]
        rate = rng.uniform(3, 6) * np.where(snap, 3.0, 1.0)
        frames.append(
            pd.DataFrame(
                {
                    "store_id": store,
                    "item_id": item,
                    "dept_id": "FOODS_1",
                    "cat_id": "FOODS",
                    "state_id": state,
                    "date": days,
                    "units": rng.poisson(rate).astype(float),
                    "sell_price": 2.5,
                    "snap": snap,
                    "event_name": None,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class World:
    warehouse: Path  # history + the last day's job, no calendar loaded
    registry: Path
    calendar: pd.DataFrame  # the true calendar (what the sales rows carry)
    settings: Settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("horizon_calendar")
    settings = load_settings("local")
    calendar = snap_calendar()
    rows = sales(calendar)
    last = pd.to_datetime(rows["date"]) == pd.Timestamp(ORIGIN)
    wh = DuckDBWarehouse(root / "warehouse.duckdb", settings=settings)
    try:
        ingest_frame(wh, rows[~last], settings=settings, job_id="history")
        train = wh.query("SELECT * FROM {{ sales }} ORDER BY series_id, date")
        config = LightGBMConfig.for_frequency(
            lgbm={**LightGBMConfig().lgbm, "n_estimators": 60, "learning_rate": 0.15},
            calibration_windows=2,
            min_per_bin=20,
        )
        registry = LocalRegistry(root / "registry")
        version = train_and_register(train, registry, settings, config=config)
        registry.deploy(ENDPOINT, version)
        ingest_frame(wh, rows[last], settings=settings, job_id="last")
        wh.checkpoint()
    finally:
        wh.close()
    return World(root / "warehouse.duckdb", root / "registry", calendar, settings)


class RecordingPredictor:
    """The in-process model (the server's own prediction path), keeping every request."""

    def __init__(self, registry: Path):
        self.inner = InProcessPredictor(registry, ENDPOINT)
        self.requests: list[list[dict[str, Any]]] = []
        self.batches: list[PredictionBatch] = []

    def predict(self, instances: list[dict[str, Any]]) -> PredictionBatch:
        self.requests.append(instances)
        batch = self.inner.predict(instances)
        self.batches.append(batch)
        return batch


def handle_last_job(
    world: World, path: Path, calendar: pd.DataFrame | None, source: Path | None = None
) -> tuple[RecordingPredictor, DuckDBWarehouse, Outcome]:
    """The last day's insert event, handled on a copy of ``source`` (default: the world's)."""
    shutil.copy2(source or world.warehouse, path)
    wh = DuckDBWarehouse(path, settings=world.settings)
    if calendar is not None:
        load_calendar(wh, calendar)
    predictor = RecordingPredictor(world.registry)
    handler = OnSaleHandler(
        world.settings,
        wh,
        predictor,
        lambda msg: None,
        clock=lambda: datetime(2016, 8, 28, 7, tzinfo=UTC),
    )
    outcome = handler.handle(last_job_event(world, wh))
    assert outcome.status == "processed" and outcome.series == len(SERIES)
    return predictor, wh, outcome


def last_job_event(world: World, wh: DuckDBWarehouse) -> Any:
    return build_insert_event(
        event_id="ev-last",
        project=wh.project,
        dataset=world.settings.warehouse.dataset,
        table=world.settings.table("sales"),
        job_id="last",
        inserted_rows=len(SERIES),
        committed_at=datetime(2016, 8, 28, 6, tzinfo=UTC),
    )


def by_series(items: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(i["series_id"]): i for i in items}


def horizon_calendar(world: World) -> pd.DataFrame:
    """The true calendar with the horizon set: SNAP in CA on day SNAP_DAY only, none in TX."""
    cal = world.calendar.copy()
    horizon = cal["date"] > pd.Timestamp(ORIGIN)
    day = (cal["date"] - pd.Timestamp(ORIGIN)).dt.days
    cal.loc[horizon, "snap"] = (cal["state_id"] == "CA") & (day == SNAP_DAY)
    cal.loc[horizon & (cal["state_id"] == "CA") & (day == 5), "event_name"] = "SuperBowl"
    return cal


def test_a_snap_day_in_the_horizon_reaches_the_model_and_lifts_its_forecast(
    world: World, tmp_path: Path
) -> None:
    known, known_wh, _ = handle_last_job(world, tmp_path / "known.duckdb", horizon_calendar(world))
    unknown, unknown_wh, _ = handle_last_job(world, tmp_path / "unknown.duckdb", None)
    try:
        (request,) = known.requests
        for sid, inst in by_series(request).items():
            future = inst["future"]
            if sid.startswith("CA_"):
                assert future["snap"] == [1.0 if d == SNAP_DAY else 0.0 for d in range(1, 8)]
                assert future["event"] == [1.0 if d == 5 else 0.0 for d in range(1, 8)]
            else:
                assert future["snap"] == [0.0] * 7 and future["event"] == [0.0] * 7
        assert all("future" not in inst for inst in unknown.requests[0])

        with_cal = by_series(known.batches[0].predictions)
        without = by_series(unknown.batches[0].predictions)
        for sid, pred in with_cal.items():
            before = np.asarray(without[sid]["yhat"])
            after = np.asarray(pred["yhat"])
            if sid.startswith("TX_"):
                # Nothing known in TX's horizon: exactly the calendar-less forecast.
                np.testing.assert_array_equal(after, before)
                continue
            # Days before the SNAP day are unchanged; the SNAP day is forecast well above.
            np.testing.assert_array_equal(after[: SNAP_DAY - 1], before[: SNAP_DAY - 1])
            assert after[SNAP_DAY - 1] > 1.5 * before[SNAP_DAY - 1], (sid, after, before)
        # The lifted forecast is what the function wrote.
        stored = known_wh.query(
            "SELECT series_id, yhat FROM {{ forecasts }} WHERE horizon_day = @d", {"d": SNAP_DAY}
        )
        expected = {sid: p["yhat"][SNAP_DAY - 1] for sid, p in with_cal.items()}
        assert dict(zip(stored["series_id"], stored["yhat"], strict=True)) == pytest.approx(
            expected
        )
    finally:
        known_wh.close()
        unknown_wh.close()


def test_without_calendar_rows_the_function_serves_as_before(world: World, tmp_path: Path) -> None:
    """An older run folder (no calendar table) or a calendar not reaching the horizon: the model
    gets no ``future`` and takes SNAP and events as 0, exactly the request it got before."""
    old = tmp_path / "old.duckdb"
    shutil.copy2(world.warehouse, old)
    con = duckdb.connect(str(old))
    con.execute("DROP TABLE calendar")  # the warehouse as it was before the calendar existed
    con.close()
    stale = world.calendar[world.calendar["date"] <= pd.Timestamp(ORIGIN)]  # ends at the origin
    for name, calendar, source in (("old", None, old), ("stale", stale, None)):
        predictor, wh, _ = handle_last_job(world, tmp_path / f"{name}-run.duckdb", calendar, source)
        try:
            (request,) = predictor.requests
            assert all("future" not in inst for inst in request), name
            history = wh.query(
                "SELECT * FROM {{ sales }} WHERE date > @since ORDER BY series_id, date",
                {"since": ORIGIN - timedelta(days=63)},
            )
            assert request == instances_from_history(history, recent_days=63), name
            assert len(wh.query("SELECT * FROM {{ forecasts }}")) == len(SERIES) * 7, name
        finally:
            wh.close()


def test_the_outcome_says_where_the_event_time_went(world: World, tmp_path: Path) -> None:
    """Every step of a processed event has its lap (the event_processed log line carries them)."""
    predictor, wh, outcome = handle_last_job(world, tmp_path / "timed.duckdb", None)
    try:
        steps = {"read", "instances", "predict", "decode", "alerts", "write"}
        assert steps <= set(outcome.phase_ms) <= steps | {"email"}
        assert all(ms >= 0 for ms in outcome.phase_ms.values())
        # The model ran inside the predict lap: the slowest step of a cold in-process prediction.
        assert outcome.phase_ms["predict"] > 0 and len(predictor.requests) == 1
        # The same delivery again: found in the ledger, only the pending emails are looked at.
        handler = OnSaleHandler(world.settings, wh, predictor, lambda msg: None)
        again = handler.handle(last_job_event(world, wh))
        assert again.status == "duplicate" and set(again.phase_ms) == {"read", "email"}
        assert len(predictor.requests) == 1
    finally:
        wh.close()
