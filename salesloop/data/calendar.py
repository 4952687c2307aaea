"""The retailer's calendar (SNAP days per state, events), loaded ahead of the days it describes.

Why a table of its own: the model uses SNAP and event flags as dynamic features, and a forecast's
horizon has no sales rows yet to carry them. Training and the backtest see the true values (they
are in the sales rows), so a server that sends zeros for the horizon forecasts every SNAP day as an
ordinary one. A retailer knows its calendar in advance (M5 ships ``calendar.csv`` for the whole
evaluation period), so the calendar is loaded into ``calendar`` (:data:`salesloop.schemas.CALENDAR`)
covering the history and the days ahead, and the event function reads the horizon's rows in the
same query as the history (``job_history.sql``, rows with ``part = 'calendar'``).

Three sources end in the same long frame (``date, state_id, snap, event_name``): the generator's
calendar (:func:`generated_calendar`, the one the generated sales rows carry), M5's wide
``calendar.csv`` (``snap_CA, snap_TX, snap_WI``, ``event_name_1/2``) and a long CSV/Parquet with
our column names (:func:`read_calendar_file`). This module's top level imports pandas and numpy
only: the event function imports :func:`split_job_history` on its cold start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = ("date", "state_id", "snap", "event_name")
# job_history.sql's marker column and the values of its calendar and ledger rows.
PART_COLUMN = "part"
CALENDAR_PART = "calendar"
LEDGER_PART = "ledger"
# What the model's future frame takes from a calendar row (codec.instances_from_history's future).
FUTURE_COLUMNS: tuple[str, ...] = ("series_id", "date", "snap", "event_name")

_TRUE = frozenset({True, "1", "true", "True", "TRUE", "t", "T", "y", "Y", "yes"})
_FALSE = frozenset({False, "0", "false", "False", "FALSE", "f", "F", "n", "N", "no", ""})


class CalendarError(ValueError):
    """A calendar file or frame cannot be loaded (the message names the column or rows)."""


class MergeSink(Protocol):
    """The part of the warehouse port loading needs (``salesloop.warehouse.Warehouse`` has it)."""

    def apply(self, mutations: Sequence[Any]) -> None: ...


@dataclass(frozen=True)
class CalendarReport:
    rows: int
    states: tuple[str, ...]
    first: date | None
    last: date | None
    snap_days: int
    event_days: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "states": list(self.states),
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "snap_days": self.snap_days,
            "event_days": self.event_days,
        }


# -- serving side ----------------------------------------------------------------------------
def split_job_history(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``job_history.sql``'s result → (history rows, the horizon's calendar rows or None).

    None when the calendar has no rows for the horizon (an older warehouse, a calendar not loaded
    or not reaching that far): the caller then sends no ``future`` and the model takes SNAP and
    events as 0, as before the calendar existed. Rows without the marker column are all history.
    """
    if PART_COLUMN not in rows.columns or rows.empty:
        return rows, None
    part = rows[PART_COLUMN].to_numpy()
    is_calendar = part == CALENDAR_PART
    is_history = ~is_calendar & (part != LEDGER_PART)
    history = rows if is_history.all() else rows[is_history]
    if not is_calendar.any():
        return history, None
    return history, rows.loc[is_calendar, list(FUTURE_COLUMNS)]


def already_processed(rows: pd.DataFrame) -> bool:
    """Whether ``job_history.sql`` found this delivery in the ledger (its ``part = 'ledger'`` row):
    its effects are committed and the event is a redelivery."""
    return PART_COLUMN in rows.columns and bool((rows[PART_COLUMN].to_numpy() == LEDGER_PART).any())


# -- building and reading --------------------------------------------------------------------
def generated_calendar(start: date, n_days: int) -> pd.DataFrame:
    """The generator's calendar (the SNAP and events its sales rows carry) for ``n_days`` days.

    The generator's calendar is a function of the day alone, so a longer range than the generated
    sales (the days ahead) gives the same values on the common days.
    """
    from salesloop.data.generate import STATES, calendar

    if n_days < 1:
        raise CalendarError(f"n_days must be >= 1, got {n_days}")
    cal = calendar(start, n_days)
    days = cal.epoch_days.astype("datetime64[D]").astype("datetime64[ns]")
    lookup = np.array([*cal.event_names, None], dtype=object)
    names = lookup[np.where(cal.event_code < 0, len(cal.event_names), cal.event_code)]
    n_states = len(STATES)
    return pd.DataFrame(
        {
            "date": np.tile(days, n_states),
            "state_id": np.repeat(np.array(STATES, dtype=object), n_days),
            "snap": cal.snap.reshape(-1),
            "event_name": np.tile(names, n_states),
        }
    )


def from_m5(wide: pd.DataFrame) -> pd.DataFrame:
    """M5's ``calendar.csv`` (one row per day, ``snap_<STATE>`` columns) → the long frame."""
    snap_cols = [c for c in wide.columns if str(c).startswith("snap_")]
    if "date" not in wide.columns or not snap_cols:
        raise CalendarError(
            "not an M5 calendar: expected a date column and snap_<STATE> columns, got "
            f"{', '.join(map(str, wide.columns))}"
        )
    event_cols = [c for c in ("event_name_1", "event_name_2") if c in wide.columns]
    per_day = zip(*(wide[c].tolist() for c in event_cols), strict=True) if event_cols else ()
    events = [
        "|".join(n) or None
        for n in (
            [str(v).strip() for v in row if isinstance(v, str) and v.strip()] for row in per_day
        )
    ] or [None] * len(wide)
    parts = [
        pd.DataFrame(
            {
                "date": wide["date"].to_numpy(),
                "state_id": col[len("snap_") :],
                "snap": wide[col].to_numpy(),
                "event_name": np.array(events, dtype=object),
            }
        )
        for col in snap_cols
    ]
    return pd.concat(parts, ignore_index=True)


def read_calendar_file(path: Path | str) -> pd.DataFrame:
    """A calendar file (CSV, optionally compressed, or Parquet) → the normalized long frame.

    M5's wide ``calendar.csv`` is recognised by its ``snap_<STATE>`` columns; anything else must
    have our columns (``date, state_id, snap``, optionally ``event_name``).
    """
    path = Path(path)
    if not path.is_file():
        raise CalendarError(f"{path}: file not found")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            sep = "\t" if ".tsv" in suffixes else ","
            raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas/pyarrow raise many types for an unreadable file
        raise CalendarError(f"{path}: cannot read: {exc}") from None
    if "state_id" not in raw.columns and any(str(c).startswith("snap_") for c in raw.columns):
        raw = from_m5(raw)
    try:
        return normalize_calendar(raw)
    except CalendarError as exc:
        raise CalendarError(f"{path}: {exc}") from None


def normalize_calendar(raw: pd.DataFrame) -> pd.DataFrame:
    """Check and type a long calendar: ``date`` a day, ``state_id`` non-empty, ``snap`` a bool.

    A file's problems raise :class:`CalendarError` naming the column and a few offending rows; a
    calendar is small and all-or-nothing (a half-loaded one would silently zero some SNAP days).
    """
    missing = [c for c in ("date", "state_id", "snap") if c not in raw.columns]
    if missing:
        raise CalendarError(
            f"calendar lacks column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, raw.columns))} (expected {', '.join(COLUMNS)}, or M5's calendar)"
        )
    dates = pd.to_datetime(raw["date"], errors="coerce", format="ISO8601")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    _refuse(raw, dates.isna().to_numpy(), "date", "is not a date (YYYY-MM-DD)")
    days = dates.dt.normalize()
    state = raw["state_id"].astype(str).str.strip()
    _refuse(raw, (raw["state_id"].isna() | (state == "")).to_numpy(), "state_id", "is empty")
    snap = raw["snap"].map(_flag, na_action="ignore")
    _refuse(raw, snap.isna().to_numpy(), "snap", "is not a boolean (true/false, 1/0)")
    if "event_name" in raw.columns:
        name = raw["event_name"].astype(object)
        name = name.where(name.notna(), None).map(
            lambda v: None if v is None or str(v).strip() == "" else str(v).strip()
        )
    else:
        name = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    out = pd.DataFrame(
        {
            "date": days.to_numpy(dtype="datetime64[ns]"),
            "state_id": state.to_numpy(dtype=object),
            "snap": snap.to_numpy(dtype=bool),
            "event_name": name.to_numpy(dtype=object),
        }
    )
    dup = out.duplicated(["date", "state_id"], keep=False).to_numpy()
    _refuse(out, dup, "date, state_id", "appears more than once")
    return out.sort_values(["state_id", "date"], kind="stable").reset_index(drop=True)


def _flag(value: Any) -> bool | None:
    if isinstance(value, str):
        value = value.strip()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _refuse(frame: pd.DataFrame, bad: np.ndarray, column: str, why: str) -> None:
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    shown = ", ".join(
        f"row {i}: {frame.iloc[i][column.split(', ')[0]]!r}" for i in rows[:3].tolist()
    )
    raise CalendarError(f"{len(rows)} row(s) where {column} {why} ({shown})")


# -- loading ---------------------------------------------------------------------------------
def load_calendar(
    warehouse: MergeSink, frame: pd.DataFrame, *, now: datetime | None = None
) -> CalendarReport:
    """Upsert the calendar on (date, state_id): a reload corrects days already loaded.

    One MERGE in one transaction, so a failed load leaves the previous calendar whole.
    """
    from salesloop.warehouse import Merge

    cal = normalize_calendar(frame)
    loaded = cal.assign(loaded_at=now or datetime.now(UTC))
    if len(loaded):
        warehouse.apply(
            [Merge("calendar", loaded, update_columns=("snap", "event_name", "loaded_at"))]
        )
    return CalendarReport(
        rows=len(cal),
        states=tuple(sorted(cal["state_id"].unique())),
        first=cal["date"].min().date() if len(cal) else None,
        last=cal["date"].max().date() if len(cal) else None,
        snap_days=int(cal["snap"].sum()),
        event_days=int(cal.drop_duplicates("date")["event_name"].notna().sum()),
    )
