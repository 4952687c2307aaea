"""The model's long frame (Nixtla convention) and the conversions every model shares.

A model sees one row per series and period: ``unique_id, ds, y``, the static ids as pandas
categoricals, and the dynamic exogenous ``sell_price, snap, event``. Warehouse rows
(:data:`salesloop.schemas.SALES`) only exist for days that were loaded, so :func:`to_frame` puts
every series on a complete period grid: a missing day is a day without sales (0 units), because
that is what an absent row means in a sales feed, and a model that never sees zeros overforecasts
intermittent items.

The horizon's exogenous values are unknown when a forecast is made: :func:`future_frame` carries the
last known price forward and takes SNAP and events from a calendar when the caller has one, else 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ID_COL = "unique_id"
TIME_COL = "ds"
TARGET_COL = "y"
STATIC_COLUMNS: tuple[str, ...] = ("store_id", "item_id", "dept_id", "cat_id", "state_id")
EXOG_COLUMNS: tuple[str, ...] = ("sell_price", "snap", "event")
FRAME_COLUMNS: tuple[str, ...] = (ID_COL, TIME_COL, TARGET_COL, *STATIC_COLUMNS, *EXOG_COLUMNS)

_SALES_REQUIRED = ("series_id", *STATIC_COLUMNS, "date", "units")
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def pandas_freq(freq: str, sample: pd.Timestamp | None = None) -> str:
    """The pandas offset alias for a settings frequency.

    Weekly data is anchored on whatever weekday it starts on (``W`` alone would mean Sunday and
    silently shift Monday-based weeks); ``M`` is month end, spelled ``ME`` since pandas 2.2.
    """
    if freq == "D":
        return "D"
    if freq == "W" or freq.startswith("W-"):
        if sample is None:
            return freq if freq != "W" else "W-SUN"
        return f"W-{_WEEKDAYS[pd.Timestamp(sample).dayofweek]}"
    if freq in ("MS",):
        return "MS"
    if freq in ("M", "ME"):
        return "ME"
    raise ValueError(f"unsupported frequency {freq!r}")


def period_grid(
    ids: np.ndarray, starts: pd.DatetimeIndex, ends: pd.DatetimeIndex, freq: str
) -> pd.DataFrame:
    """Every (series, period) from each series' start to its end, series-major, time ascending."""
    if freq == "D":
        start_days = starts.values.astype("datetime64[D]").astype(np.int64)
        end_days = ends.values.astype("datetime64[D]").astype(np.int64)
        counts = np.maximum(end_days - start_days + 1, 0)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        days = np.repeat(start_days, counts) + offsets
        return pd.DataFrame(
            {
                ID_COL: np.repeat(ids, counts),
                TIME_COL: days.astype("datetime64[D]").astype("datetime64[ns]"),
            }
        )
    parts_ids: list[np.ndarray] = []
    parts_ds: list[pd.DatetimeIndex] = []
    for uid, start, end in zip(ids, starts, ends, strict=True):
        rng = pd.date_range(start, end, freq=freq)
        parts_ids.append(np.full(len(rng), uid, dtype=object))
        parts_ds.append(rng)
    if not parts_ids:
        return pd.DataFrame({ID_COL: np.array([], dtype=object), TIME_COL: pd.DatetimeIndex([])})
    return pd.DataFrame(
        {ID_COL: np.concatenate(parts_ids), TIME_COL: np.concatenate([d.values for d in parts_ds])}
    )


def to_frame(
    sales: pd.DataFrame,
    freq: str = "D",
    *,
    end: pd.Timestamp | str | pd.Series | None = None,
) -> pd.DataFrame:
    """SALES-shaped rows → the model's long frame on a complete period grid.

    * A later row for the same (series, date) is a correction and wins (by ``inserted_at`` when the
      rows carry it, else by position).
    * Each series runs from its first row (a launch: no leading zeros are invented) to ``end``
      (default: the last date in ``sales``; a Series indexed by series_id gives each its own
      end), missing periods get 0 units.
    * The price of a filled period is the series' last known price; SNAP of a filled day is its
      state's SNAP that day if any row says so; the event flag holds when any row of the day names
      an event.
    """
    df = sales
    if "series_id" not in df.columns and {"store_id", "item_id"} <= set(df.columns):
        # schemas.SALES defines it as store_id + '/' + item_id; raw files may not carry it.
        df = df.assign(series_id=df["store_id"].astype(str) + "/" + df["item_id"].astype(str))
    missing = [c for c in _SALES_REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"sales rows lack columns {missing}")
    if "inserted_at" in df.columns:
        df = df.sort_values("inserted_at", kind="stable")
    df = df.drop_duplicates(["series_id", "date"], keep="last")
    ds = pd.to_datetime(df["date"]).dt.tz_localize(None).dt.normalize()
    units = pd.to_numeric(df["units"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(units).any():
        raise ValueError("units contains nulls or non-numbers")
    if (units < 0).any():
        raise ValueError(f"units contains {int((units < 0).sum())} negative values")
    if df.empty:
        return _empty_frame()
    pfreq = pandas_freq(freq, ds.iloc[0])
    obs = pd.DataFrame(
        {
            ID_COL: df["series_id"].astype(str).to_numpy(),
            TIME_COL: ds.to_numpy(),
            TARGET_COL: units,
            "sell_price": pd.to_numeric(df["sell_price"], errors="coerce").to_numpy(dtype=float)
            if "sell_price" in df.columns
            else np.nan,
            "snap": _as_flag(df["snap"]) if "snap" in df.columns else 0.0,
            "event": df["event_name"].notna().to_numpy(dtype=float)
            if "event_name" in df.columns
            else 0.0,
            "state_id": df["state_id"].astype(str).to_numpy(),
        }
    )
    if isinstance(end, pd.Series):
        ends = pd.to_datetime(end).dt.tz_localize(None).dt.normalize()
        ends.index = ends.index.astype(str)
        own_end = ends.reindex(obs[ID_COL]).to_numpy()
        obs = obs[~pd.isna(own_end) & (obs[TIME_COL].to_numpy() <= own_end)]
    else:
        last = pd.Timestamp(end) if end is not None else ds.max()
        obs = obs[obs[TIME_COL] <= last]
    statics = (
        df.assign(**{ID_COL: df["series_id"].astype(str)})
        .drop_duplicates(ID_COL, keep="last")
        .set_index(ID_COL)[list(STATIC_COLUMNS)]
        .astype(str)
    )
    firsts = obs.groupby(ID_COL, sort=True)[TIME_COL].min()
    if isinstance(end, pd.Series):
        series_ends = pd.DatetimeIndex(ends.reindex(firsts.index).to_numpy())
    else:
        series_ends = pd.DatetimeIndex(np.full(len(firsts), last))
    grid = period_grid(
        firsts.index.to_numpy(), pd.DatetimeIndex(firsts.to_numpy()), series_ends, pfreq
    )
    out = grid.merge(obs.drop(columns="state_id"), on=[ID_COL, TIME_COL], how="left")
    out[TARGET_COL] = out[TARGET_COL].fillna(0.0)
    out["sell_price"] = out.groupby(ID_COL, sort=False)["sell_price"].ffill()
    state = statics["state_id"].reindex(out[ID_COL]).to_numpy()
    snap_by_day = obs.groupby(["state_id", TIME_COL])["snap"].max()
    filled_snap = snap_by_day.reindex(pd.MultiIndex.from_arrays([state, out[TIME_COL]])).to_numpy()
    out["snap"] = out["snap"].fillna(pd.Series(filled_snap, index=out.index)).fillna(0.0)
    event_by_day = obs.groupby(TIME_COL)["event"].max()
    out["event"] = out["event"].fillna(out[TIME_COL].map(event_by_day)).fillna(0.0)
    for col in STATIC_COLUMNS:
        out[col] = pd.Categorical(statics[col].reindex(out[ID_COL]).to_numpy())
    return out[list(FRAME_COLUMNS)].reset_index(drop=True)


def _as_flag(values: pd.Series) -> np.ndarray:
    """BOOL columns arrive as bool, 0/1, None or strings depending on the reader."""
    if values.dtype == bool:
        return values.to_numpy(dtype=float)
    mapped = values.map(
        lambda v: 1.0 if v in (True, 1, "1", "true", "True", "TRUE") else 0.0, na_action="ignore"
    )
    return pd.to_numeric(mapped, errors="coerce").fillna(0.0).to_numpy(dtype=float)


def _empty_frame() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=float) for c in FRAME_COLUMNS})
    out[ID_COL] = out[ID_COL].astype(object)
    out[TIME_COL] = pd.to_datetime(out[TIME_COL])
    for col in STATIC_COLUMNS:
        out[col] = pd.Categorical([])
    return out


def group_bounds(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) row of each run of equal ids in a series-major array."""
    if len(ids) == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(ids)]])
    return starts, ends


def grouped_rolling_mean(values: np.ndarray, ids: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` non-missing values of the same series (NaN-aware).

    One vector pass per window offset, newest value first, instead of a cumulative sum: the sum of
    a window then depends only on the window's values, never on how much history precedes it, so a
    feature is bit-identical at training time (full history) and at serving time (the last
    ``min_history`` periods). A cumulative sum differs in the last bits, and a tree split at
    exactly 1.0 on a relative price turns that into a different forecast.
    """
    n = len(values)
    if n == 0:
        return np.array([], dtype=float)
    starts, ends = group_bounds(ids)
    first_row = np.repeat(starts, ends - starts)
    idx = np.arange(n)
    total = np.zeros(n)
    count = np.zeros(n)
    for j in range(window):
        src = idx - j
        ok = src >= first_row
        v = values[np.where(ok, src, 0)]
        ok &= ~np.isnan(v)
        total += np.where(ok, v, 0.0)
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def last_n_mean(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """Mean of each series' last ``n`` values (one number per series, in id-run order).

    Summed newest-first one offset at a time for the same reason as :func:`grouped_rolling_mean`.
    """
    starts, ends = group_bounds(ids)
    total = np.zeros(len(starts))
    count = np.zeros(len(starts))
    for j in range(n):
        src = ends - 1 - j
        ok = src >= starts
        total += np.where(ok, values[np.where(ok, src, 0)] if len(values) else 0.0, 0.0)
        count += ok
    return total / np.maximum(count, 1)


def future_frame(
    history: pd.DataFrame,
    horizon: int,
    freq: str,
    future: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The horizon's rows per series: dates, carried-forward price, SNAP and event (0 unless known).

    ``history`` must be sorted series-major and time-ascending (as :func:`to_frame` returns it).
    ``future`` may carry any of ``sell_price, snap, event`` for some of the horizon's rows; a
    missing or null value falls back to the rule above.
    """
    ids = history[ID_COL].to_numpy()
    starts, ends = group_bounds(ids)
    uids = ids[starts]
    last_ds = pd.DatetimeIndex(history[TIME_COL].to_numpy()[ends - 1])
    if freq == "D":
        step = np.arange(1, horizon + 1, dtype="timedelta64[D]").astype("timedelta64[ns]")
        target = (last_ds.values[:, None] + step[None, :]).ravel()
    else:
        offset = pd.tseries.frequencies.to_offset(freq)
        target = np.concatenate(
            [pd.date_range(d + offset, periods=horizon, freq=freq).values for d in last_ds]
        )
    price = history["sell_price"].to_numpy(dtype=float)
    last_price = _last_valid(price, starts, ends)
    out = pd.DataFrame(
        {
            ID_COL: np.repeat(uids, horizon),
            TIME_COL: target,
            "sell_price": np.repeat(last_price, horizon),
            "snap": 0.0,
            "event": 0.0,
        }
    )
    if future is not None and len(future):
        row = future_rows(
            out[ID_COL].to_numpy(),
            out[TIME_COL].to_numpy(),
            future[ID_COL].to_numpy(),
            future[TIME_COL].to_numpy(),
        )
        found = row >= 0
        for col in EXOG_COLUMNS:
            if col in future.columns:
                vals = pd.to_numeric(future[col], errors="coerce").to_numpy(dtype=float)
                known = np.where(found, vals[np.maximum(row, 0)], np.nan)
                out[col] = np.where(np.isnan(known), out[col].to_numpy(), known)
    return out


def future_rows(
    ids: np.ndarray, times: np.ndarray, future_ids: np.ndarray, future_times: np.ndarray
) -> np.ndarray:
    """For each (id, time), its row in the future arrays, or -1 when they have none.

    A left join on arrays: a pandas merge costs ~2 ms for the 7 rows of a one-series request,
    a quarter of the model server's time for it. Duplicate future keys are refused (the merge's
    one-to-one validation did the same).
    """
    n = len(ids)
    id_codes, _ = pd.factorize(np.concatenate([ids.astype(object), future_ids.astype(object)]))
    t = np.concatenate([times.astype("datetime64[ns]"), future_times.astype("datetime64[ns]")])
    time_codes, uniq_times = pd.factorize(t)
    key = id_codes.astype(np.int64) * (len(uniq_times) + 1) + time_codes
    want, have = key[:n], key[n:]
    order = np.argsort(have, kind="stable")
    sorted_have = have[order]
    if len(sorted_have) > 1 and (sorted_have[1:] == sorted_have[:-1]).any():
        raise ValueError("future has more than one row for a series and period")
    if not len(sorted_have):
        return np.full(n, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_have, want), len(sorted_have) - 1)
    return np.where(sorted_have[pos] == want, order[pos], -1).astype(np.int64)


def _last_valid(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each series' last non-NaN value (NaN when the series has none)."""
    n = len(values)
    idx = np.where(~np.isnan(values), np.arange(n), -1)
    best = np.maximum.accumulate(idx) if n else idx
    pos = best[ends - 1] if n else np.array([], dtype=np.int64)
    ok = pos >= starts
    return np.where(ok, values[np.maximum(pos, 0)] if n else np.nan, np.nan)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
