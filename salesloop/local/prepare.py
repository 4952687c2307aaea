"""A prepared run folder: the state a local loop starts from, built once and copied many times.

Fault-injection tests and the load benchmark all need the same starting point: a warehouse holding
a sales history, a trained model deployed on the endpoint, and a dispatcher whose audit cursor is
already past the history (the history was there before the loop existed, so it fires no events).
Building it costs a training run; copying it costs milliseconds, so each test gets a private,
identical copy and none of them can disturb another.

The rows *after* the history (``live.parquet``) are generated with the history so that replayed
days continue the same series; callers replay them as insert jobs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

# What a prepared folder holds; logs, overlays and mailboxes belong to the run that copies it.
_STATE = ("warehouse.duckdb", "registry", "dispatcher.sqlite", "live.parquet", "prepared.json")
ENDPOINT_ID = "sales-forecast"


@dataclass(frozen=True)
class PreparedRun:
    run_dir: Path
    series: int
    days: int
    replay_days: int
    start: date
    model_version: str
    drop_category: str | None

    @property
    def history_end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    def live(self) -> pd.DataFrame:
        """Generated rows after the history, one day after another (not yet in the warehouse)."""
        return pd.read_parquet(self.run_dir / "live.parquet")

    def live_days(self) -> list[date]:
        return [self.history_end + timedelta(days=i + 1) for i in range(self.replay_days)]

    def copy_to(self, dst: Path) -> PreparedRun:
        """A private copy of the prepared state in ``dst`` (created)."""
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        for name in _STATE:
            src = self.run_dir / name
            if src.is_dir():
                shutil.copytree(src, dst / name)
            elif src.exists():
                shutil.copy2(src, dst / name)
        return load_prepared(dst)


def load_prepared(run_dir: Path) -> PreparedRun:
    meta = json.loads((Path(run_dir) / "prepared.json").read_text())
    meta["start"] = date.fromisoformat(meta["start"])
    return PreparedRun(run_dir=Path(run_dir).resolve(), **meta)


def prepare_run(
    run_dir: Path,
    *,
    series: int = 60,
    days: int = 400,
    replay_days: int = 5,
    seed: int = 7,
    start: date = date(2013, 1, 1),
    drop_category: str | None = None,
    drop_after_days: int = 0,
    drop_factor: float = 0.1,
    n_estimators: int = 30,
) -> PreparedRun:
    """Generate, load (sales history and calendar), train a small fast model, deploy it; set the
    dispatcher past the history.

    ``drop_category`` scripts a demand drop in that category from ``drop_after_days`` after the
    history ends, so replaying the live days raises alerts (and emails).
    """
    from salesloop.config import load_settings
    from salesloop.data.calendar import generated_calendar, load_calendar
    from salesloop.data.generate import Shock, generate_frame
    from salesloop.data.ingest import ingest_frame
    from salesloop.local.dispatcher import DeliveryStore
    from salesloop.model.lgbm import LightGBMConfig
    from salesloop.model.train import train_and_register
    from salesloop.registry import LocalRegistry
    from salesloop.warehouse.duckdb import DuckDBWarehouse

    run_dir = Path(run_dir).resolve()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    settings = load_settings("local")
    history_end = start + timedelta(days=days - 1)
    shocks: tuple[Any, ...] = ()
    if drop_category:
        shocks = (
            Shock(
                "category_drop",
                start=history_end + timedelta(days=1 + drop_after_days),
                factor=drop_factor,
                category=drop_category,
            ),
        )
    frame = generate_frame(series, days + replay_days, start=start, seed=seed, shocks=shocks)
    day = pd.to_datetime(frame["date"])
    history = frame[day <= pd.Timestamp(history_end)]
    frame[day > pd.Timestamp(history_end)].reset_index(drop=True).to_parquet(
        run_dir / "live.parquet"
    )
    wh = DuckDBWarehouse(run_dir / "warehouse.duckdb", settings=settings)
    try:
        ingest_frame(wh, history, settings=settings)
        # Known ahead: the history, the live days and the horizon after the last of them.
        load_calendar(wh, generated_calendar(start, days + replay_days + settings.forecast.horizon))
        train = wh.query("SELECT * FROM {{ sales }} ORDER BY series_id, date")
        defaults = LightGBMConfig()
        config = LightGBMConfig.for_frequency(
            settings.forecast.freq,
            settings.forecast.season_length,
            settings.forecast.horizon,
            settings.forecast.interval_levels,
            lgbm={**defaults.lgbm, "n_estimators": n_estimators},
            calibration_windows=2,
        )
        registry = LocalRegistry(run_dir / "registry")
        version = train_and_register(train, registry, settings, config=config, version_note="v1")
        registry.deploy(ENDPOINT_ID, version)
        audit = wh.audit_entries(0, limit=1_000_000)
        last_seq = int(audit["seq"].max()) if len(audit) else 0
        wh.checkpoint()
    finally:
        wh.close()
    store = DeliveryStore(run_dir / "dispatcher.sqlite")
    store.enqueue([], new_cursor=last_seq)
    store.close()
    prepared = PreparedRun(
        run_dir=run_dir,
        series=series,
        days=days,
        replay_days=replay_days,
        start=start,
        model_version=version,
        drop_category=drop_category,
    )
    meta = {k: v for k, v in asdict(prepared).items() if k != "run_dir"}
    (run_dir / "prepared.json").write_text(json.dumps(meta, default=str, indent=2))
    return prepared
