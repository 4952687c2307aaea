"""Row validation of an insert job: every row ends up in ``sales`` or in ``rejected_sales``.

Why so strict: the forecast function trusts ``sales`` (it reads a job's rows and their history
without re-checking), so anything that could poison features (a negative quantity, an unparseable
or far-future date, two values for one series-day) must be stopped here, and the owner of the file
must be able to see exactly which rows were refused and why. Nothing is dropped silently:
``len(good) + len(rejected) == len(raw)``.

A row gets the first failing class, in this order (``reason`` is ``"<class>: <detail>"``):

``missing_key``
    ``store_id``, ``item_id`` or ``date`` missing or blank, or ``dept_id`` / ``cat_id`` /
    ``state_id`` missing and not derivable (M5-style ids: item ``FOODS_3_090`` → dept ``FOODS_3``,
    cat ``FOODS``; store ``CA_1`` → state ``CA``).
``bad_date``
    not a calendar date written ``YYYY-MM-DD`` (or ``YYYY/MM/DD``, ``YYYYMMDD``; a time part or
    offset after it is ignored: the calendar date as written is the sales day), or a date object.
``future_date``
    more than ``max_future_days`` after ``today``.
``bad_quantity``
    ``units`` missing, not a number, NaN, infinite or negative. Fractions are kept (weights).
``bad_price``
    ``sell_price`` present but not a number, infinite or negative.
``bad_flag``
    ``snap`` present but not a boolean (true/false, 1/0, yes/no, t/f, y/n).
``duplicate_in_job``
    the same ``series_id`` and date as an earlier valid row of the job (the first one is kept).
    Duplicates across jobs are not this module's concern (the warehouse key includes ``job_id``).

Types of ``good`` (one choice, documented here because DuckDB and BigQuery loads depend on it):
strings are ``object`` columns of ``str`` (``event_name`` may be ``None``), ``row_num`` int64,
``date`` ``datetime64[ns]`` at midnight, ``units`` and ``sell_price`` float64 (``sell_price`` NaN
when absent), ``snap`` pandas nullable ``boolean``, ``inserted_at`` ``datetime64[ns, UTC]``.
``rejected`` has ``raw`` as a JSON object string of the row as received (all its columns) and
``rejected_at`` equal to ``inserted_at``.

Everything is column-at-a-time: 10k rows take a few milliseconds, 1M rows about a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from salesloop.schemas import REJECTED_SALES, SALES

REQUIRED_COLUMNS = ("store_id", "item_id", "date", "units")
OPTIONAL_COLUMNS = ("dept_id", "cat_id", "state_id", "sell_price", "snap", "event_name")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
REASON_CLASSES = (
    "missing_key",
    "bad_date",
    "future_date",
    "bad_quantity",
    "bad_price",
    "bad_flag",
    "duplicate_in_job",
)
FREQUENCIES = ("D", "W", "MS", "M")
# Spellings of "no value" found in exported CSVs; they count as missing in every column.
NULL_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>", "nat"})
_TRUE = frozenset({"true", "t", "1", "yes", "y", "1.0"})
_FALSE = frozenset({"false", "f", "0", "no", "n", "0.0"})
_SHOW = 60  # characters of an offending value quoted in a reason


class ValidationError(ValueError):
    """The frame cannot be validated row by row (e.g. a required column is absent)."""


@dataclass(frozen=True)
class ValidationResult:
    good: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def reason_counts(self) -> dict[str, int]:
        """Rejections per class (the part of ``reason`` before the colon)."""
        if self.rejected.empty:
            return {}
        classes = self.rejected["reason"].str.split(":", n=1).str[0]
        return {str(k): int(v) for k, v in classes.value_counts().sort_index().items()}


# --------------------------------------------------------------------------------------------
# Column coercion helpers: Arrow compute kernels, values plus masks, never raising on a bad cell.
# --------------------------------------------------------------------------------------------

_NUMBER_RE = r"(?i)^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$|^[+-]?(?:inf|infinity)$"
_DATE_RE = r"^(?P<y>\d{4})(?:[-/](?P<m1>\d{1,2})[-/](?P<d1>\d{1,2})(?:[T ].*)?|(?P<m2>\d{2})(?P<d2>\d{2}))$"


def _plain_text(value: Any) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _text(col: pd.Series) -> pa.Array:
    """Cells as stripped Arrow strings (null for null); integral floats lose their ``.0``.

    A numeric id column read from Parquet (``store_id`` 1.0 because of one null) must compare
    equal to the ``"1"`` of a CSV, so integral floats print as integers.
    """
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        col, dtype = col.astype(object), np.dtype(object)
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        arr = pa.array(col, from_pandas=True).cast(pa.string())
    elif pd.api.types.is_float_dtype(dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**53)
        as_float = pa.array(values, from_pandas=True).cast(pa.string())
        as_int = pa.array(np.where(integral, values, 0).astype(np.int64)).cast(pa.string())
        arr = pc.if_else(pa.array(integral), as_int, as_float)
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        arr = pa.array(col.astype(str).where(col.notna(), None), type=pa.string())
    else:
        try:
            arr = pa.array(col.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            # Mixed cells (numbers, dates, strings) as an object column from a user frame.
            arr = pa.array([_plain_text(v) for v in col.to_numpy(dtype=object)], type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.utf8_trim_whitespace(arr)


def _missing(text: pa.Array) -> NDArray[np.bool_]:
    null_like = pc.is_in(pc.utf8_lower(text), value_set=pa.array(sorted(NULL_TOKENS)))
    return _bools(pc.or_kleene(pc.is_null(text), null_like))


def _bools(arr: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    """An Arrow boolean array as numpy, null as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _show(text: pa.Array, positions: NDArray[np.int64]) -> list[str]:
    """``'value'`` of each position for reasons, cut to a readable length."""
    out = []
    for v in text.take(pa.array(positions)).to_pylist():
        v = "<null>" if v is None else v
        out.append("'" + (v if len(v) <= _SHOW else v[:_SHOW] + "…") + "'")
    return out


def _to_number(col: pd.Series) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    """(values, missing, parsed): ``parsed`` is False for present cells that are not numbers."""
    if pd.api.types.is_bool_dtype(col.dtype):
        missing = col.isna().to_numpy(dtype=bool)
        return np.full(len(col), np.nan), missing, missing.copy()
    if pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, np.ones(len(col), dtype=bool)
    text = _text(col)
    missing = _missing(text)
    parsed = _bools(pc.match_substring_regex(text, _NUMBER_RE)) & ~missing
    numeric = pc.if_else(pa.array(parsed), text, pa.scalar(None, pa.string()))
    values = pc.cast(numeric, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64), missing, parsed | missing


def _to_date(col: pd.Series) -> tuple[NDArray[np.datetime64], NDArray[np.bool_], pa.Array]:
    """(dates at midnight, NaT where unparseable or missing; missing mask; the text)."""
    text = _text(col)
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        dt = col
        if getattr(dt.dt, "tz", None) is not None:
            dt = dt.dt.tz_localize(None)  # the calendar date as written, not converted to UTC
        missing = dt.isna().to_numpy(dtype=bool)
        # Parquet dates arrive as datetime64[ms]; keep what fits datetime64[ns], the rest is bad.
        days = dt.to_numpy().astype("datetime64[D]")
        fits = (days >= np.datetime64("1678-01-01")) & (days <= np.datetime64("2261-12-31"))
        dates = np.where(fits, days, np.datetime64("NaT")).astype("datetime64[ns]")
        return dates, missing, text
    missing = _missing(text)
    parts = pc.extract_regex(text, _DATE_RE)
    matched = _bools(pc.is_valid(parts))

    def field(name: str) -> NDArray[np.int64]:
        values = pc.fill_null(pc.struct_field(parts, name), "")
        numbers = pc.cast(
            pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values), pa.int64()
        )
        return np.asarray(pc.fill_null(numbers, 0).to_numpy(zero_copy_only=False), dtype=np.int64)

    year = field("y")
    month = np.where(field("m1") > 0, field("m1"), field("m2"))
    day = np.where(field("d1") > 0, field("d1"), field("d2"))
    ok = matched & (year >= 1678) & (year <= 2261) & (month >= 1) & (month <= 12) & (day >= 1)
    months = np.where(ok, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    first = months.astype("datetime64[D]")
    day_ = first + (day - 1).astype("timedelta64[D]")
    ok &= day_ < (months + 1).astype("datetime64[D]")
    dates = np.where(ok, day_.astype("datetime64[ns]"), np.datetime64("NaT", "ns"))
    return dates, missing, text


def _to_flag(col: pd.Series) -> tuple[pd.Series, NDArray[np.bool_], pa.Array]:
    """(nullable booleans, bad mask for present cells that are not booleans, the text)."""
    text = _text(col)
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.astype("boolean").reset_index(drop=True), np.zeros(len(col), dtype=bool), text
    missing = _missing(text)
    lowered = pc.utf8_lower(text)
    is_true = _bools(pc.is_in(lowered, value_set=pa.array(sorted(_TRUE))))
    is_false = _bools(pc.is_in(lowered, value_set=pa.array(sorted(_FALSE))))
    flags = pd.array(is_true, dtype="boolean")
    flags[~(is_true | is_false)] = pd.NA
    return pd.Series(flags), ~missing & ~is_true & ~is_false, text


def period_start(dates: NDArray[np.datetime64], freq: str) -> NDArray[np.datetime64]:
    """Dates moved to the start of their period: Monday of the week, first of the month.

    The ``date`` of weekly or monthly data is the period start (schemas.SALES), whatever day the
    source used to label the period (Walmart's Friday, a month end).
    """
    if freq not in FREQUENCIES:
        raise ValueError(f"unknown frequency {freq!r}; expected one of {', '.join(FREQUENCIES)}")
    if freq == "D":
        return dates
    idx = pd.DatetimeIndex(dates)
    if freq == "W":
        out = idx - pd.to_timedelta(idx.weekday, unit="D")
    else:
        out = idx.to_period("M").to_timestamp()
    return out.to_numpy(dtype="datetime64[ns]")


def _plain(value: Any) -> Any:
    """A cell as JSON can carry it: dates in ISO form, non-finite floats as strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value) and not math.isnan(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _jsonable(col: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return col.astype(str).where(col.notna(), None)
    if pd.api.types.is_float_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            return col.astype(object).map(_plain)
        return col
    if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object:
        return col.astype(object).map(_plain)
    return col


def _raw_json(raw: pd.DataFrame, positions: NDArray[np.int64]) -> list[str]:
    """The rejected rows as received, one JSON object each (nulls as null, dates in ISO form).

    Only rejected rows are serialized, so the cost is per rejection, not per row of the job.
    """
    if positions.size == 0:
        return []
    subset = raw.iloc[positions]
    subset = pd.DataFrame(
        {str(name): _jsonable(subset.iloc[:, k]) for k, name in enumerate(subset.columns)}
    )
    text = subset.to_json(orient="records", lines=True, default_handler=str)
    # to_json escapes "/" as "\/": legal JSON, but the raw row should read as it was received.
    lines = text.replace("\\/", "/").splitlines()
    if len(lines) != positions.size:  # pragma: no cover - to_json escapes newlines in values
        return [json.dumps(r, default=str) for r in subset.to_dict("records")]
    return lines


# --------------------------------------------------------------------------------------------
# The validator
# --------------------------------------------------------------------------------------------


def _empty(table_columns: list[str], dtypes: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, object)) for c in table_columns})


def _stamps(stamp: pd.Timestamp, n: int) -> pd.Series:
    return pd.Series(pd.DatetimeIndex([stamp]).repeat(n)).astype("datetime64[ns, UTC]")


_GOOD_DTYPES: dict[str, Any] = {
    "row_num": "int64",
    "date": "datetime64[ns]",
    "units": "float64",
    "sell_price": "float64",
    "snap": "boolean",
    "inserted_at": "datetime64[ns, UTC]",
}
_REJECTED_DTYPES: dict[str, Any] = {"row_num": "int64", "rejected_at": "datetime64[ns, UTC]"}


def validate_sales(
    raw: pd.DataFrame,
    job_id: str,
    *,
    today: date,
    max_future_days: int,
    inserted_at: datetime,
    freq: str = "D",
) -> ValidationResult:
    """Split ``raw`` (columns already named as ours, any dtypes) into valid and rejected rows.

    ``row_num`` is the 0-based position of the row in ``raw`` (its position in the job), in both
    outputs. ``freq`` other than ``"D"`` moves valid dates to their period start (see
    :func:`period_start`) before the future and duplicate checks. ``inserted_at`` must be
    timezone-aware; it becomes ``inserted_at`` / ``rejected_at``.
    """
    absent = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if absent:
        raise ValidationError(
            f"sales rows need columns {', '.join(REQUIRED_COLUMNS)}; missing {', '.join(absent)} "
            f"(have {', '.join(map(str, raw.columns)) or 'no columns'})"
        )
    if inserted_at.tzinfo is None:
        raise ValueError("inserted_at must be timezone-aware (UTC)")
    if freq not in FREQUENCIES:
        raise ValueError(f"unknown frequency {freq!r}; expected one of {', '.join(FREQUENCIES)}")
    stamp = pd.Timestamp(inserted_at).tz_convert("UTC")
    n = len(raw)
    if n == 0:
        return ValidationResult(
            good=_empty(SALES.column_names, _GOOD_DTYPES),
            rejected=_empty(REJECTED_SALES.column_names, _REJECTED_DTYPES),
        )
    frame = raw  # positions, not labels, identify rows from here on
    reason = np.full(n, None, dtype=object)
    open_ = np.ones(n, dtype=bool)  # rows without a reason yet

    def reject(
        mask: NDArray[np.bool_], message: str | Callable[[NDArray[np.int64]], list[str]]
    ) -> None:
        """Give the rows of ``mask`` that have no reason yet this one (built for them only)."""
        todo = np.flatnonzero(mask & open_)
        if todo.size == 0:
            return
        reason[todo] = (
            message if isinstance(message, str) else np.array(message(todo), dtype=object)
        )
        open_[todo] = False

    def quoted(text: pa.Array, template: str) -> Callable[[NDArray[np.int64]], list[str]]:
        return lambda pos: [template.format(v) for v in _show(text, pos)]

    # --- keys ---------------------------------------------------------------------------
    store, item = _text(frame["store_id"]), _text(frame["item_id"])
    dates, date_missing, date_text = _to_date(frame["date"])
    miss_store, miss_item = _missing(store), _missing(item)
    key_missing = miss_store | miss_item | date_missing
    names = np.array(["store_id", "item_id", "date"])
    flags = np.stack([miss_store, miss_item, date_missing], axis=1)
    reject(
        key_missing,
        lambda pos: [
            ", ".join(names[flags[i]]) and f"missing_key: {', '.join(names[flags[i]])} missing"
            for i in pos
        ],
    )

    def given(name: str) -> tuple[pa.Array, NDArray[np.bool_]]:
        if name in frame:
            t = _text(frame[name])
            return t, _missing(t)
        return pa.nulls(n, pa.string()), np.ones(n, dtype=bool)

    def fill(values: pa.Array, missing: NDArray[np.bool_], derived: pa.Array) -> pa.Array:
        return pc.if_else(pa.array(missing), derived, values)

    item_parts = pc.extract_regex(item, r"^(?P<cat>[A-Za-z]+)_(?P<num>\d+)_\w+$")
    dept_from_item = pc.binary_join_element_wise(
        pc.struct_field(item_parts, "cat"), pc.struct_field(item_parts, "num"), "_"
    )
    dept, dept_missing = given("dept_id")
    dept = fill(dept, dept_missing, dept_from_item)
    cat, cat_missing = given("cat_id")
    cat_from_dept = pc.struct_field(pc.extract_regex(dept, r"^(?P<cat>.+)_\d+$"), "cat")
    cat = fill(cat, cat_missing, pc.coalesce(cat_from_dept, pc.struct_field(item_parts, "cat")))
    state, state_missing = given("state_id")
    store_state = pc.struct_field(pc.extract_regex(store, r"^(?P<state>[A-Za-z]+)_\w+$"), "state")
    state = fill(state, state_missing, store_state)
    for derived, name, source, source_text, example in (
        (dept, "dept_id", "item_id", item, "FOODS_3_090"),
        (cat, "cat_id", "item_id", item, "FOODS_3_090"),
        (state, "state_id", "store_id", store, "CA_1"),
    ):
        reject(
            _bools(pc.is_null(derived)),
            quoted(
                source_text,
                f"missing_key: {name} missing and {source} {{}} is not like {example} to derive it from",
            ),
        )

    # --- date ---------------------------------------------------------------------------
    reject(
        np.isnat(dates) & ~date_missing,
        quoted(date_text, "bad_date: {} is not a calendar date (YYYY-MM-DD)"),
    )
    dates = period_start(dates, freq)
    latest = np.datetime64(today + timedelta(days=max_future_days), "ns")
    reject(
        ~np.isnat(dates) & (dates > latest),
        lambda pos: [
            f"future_date: {np.datetime_as_string(dates[i], unit='D')} is after "
            f"{today.isoformat()} + {max_future_days} day(s)"
            for i in pos
        ],
    )

    # --- quantity -----------------------------------------------------------------------
    units, units_missing, units_parsed = _to_number(frame["units"])
    units_text = _text(frame["units"])
    reject(units_missing, "bad_quantity: units missing")
    reject(~units_parsed, quoted(units_text, "bad_quantity: units {} is not a number"))
    with np.errstate(invalid="ignore"):
        reject(np.isnan(units), "bad_quantity: units is NaN")
        reject(np.isinf(units), quoted(units_text, "bad_quantity: units {} is not finite"))
        reject(units < 0, quoted(units_text, "bad_quantity: units {} is negative"))

    # --- price --------------------------------------------------------------------------
    if "sell_price" in frame:
        price, _, price_parsed = _to_number(frame["sell_price"])
        price_text = _text(frame["sell_price"])
        reject(~price_parsed, quoted(price_text, "bad_price: sell_price {} is not a number"))
        with np.errstate(invalid="ignore"):
            reject(np.isinf(price), quoted(price_text, "bad_price: sell_price {} is not finite"))
            reject(price < 0, quoted(price_text, "bad_price: sell_price {} is negative"))
    else:
        price = np.full(n, np.nan)

    # --- flag ---------------------------------------------------------------------------
    if "snap" in frame:
        snap, bad_snap, snap_text = _to_flag(frame["snap"])
        reject(bad_snap, quoted(snap_text, "bad_flag: snap {} is not a boolean"))
    else:
        snap = pd.Series(pd.array(np.zeros(n, dtype=bool), dtype="boolean"))
        snap[:] = pd.NA

    # --- duplicates among otherwise valid rows --------------------------------------------
    series_id = pc.binary_join_element_wise(store, item, "/")
    valid = np.flatnonzero(open_)
    if valid.size:
        codes, _ = pd.factorize(
            pd.Series(series_id.take(pa.array(valid)), dtype=pd.ArrowDtype(pa.string()))
        )
        day = dates[valid].astype("datetime64[D]").astype(np.int64)
        key = codes.astype(np.int64) * 1_000_000 + (day - day.min())
        _, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
        first_row = valid[first_idx[inverse]]
        dup = first_row != valid
        if dup.any():
            mask = np.zeros(n, dtype=bool)
            mask[valid[dup]] = True
            first_of = np.empty(n, dtype=np.int64)
            first_of[valid] = first_row
            ids = series_id

            def duplicate(pos: NDArray[np.int64]) -> list[str]:
                sids = ids.take(pa.array(pos)).to_pylist()
                return [
                    f"duplicate_in_job: {sid} {np.datetime_as_string(dates[i], unit='D')} "
                    f"already at row {first_of[i]}"
                    for sid, i in zip(sids, pos, strict=True)
                ]

            reject(mask, duplicate)

    # --- assemble -----------------------------------------------------------------------
    good_pos = np.flatnonzero(open_)
    bad_pos = np.flatnonzero(~open_)
    take = pa.array(good_pos)

    def strings(arr: pa.Array) -> NDArray[Any]:
        # Through a dictionary: ids repeat a lot, so this converts each distinct string once and
        # the column shares the Python objects (5x faster than a plain conversion, less memory).
        encoded = pc.dictionary_encode(arr.take(take))
        values = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
        index = pc.fill_null(encoded.indices, len(values) - 1).to_numpy(zero_copy_only=False)
        return values[index]

    if "event_name" in frame:
        event_text = _text(frame["event_name"])
        event = pc.if_else(pa.array(_missing(event_text)), pa.scalar(None, pa.string()), event_text)
        events = strings(event)
    else:
        events = np.full(good_pos.size, None, dtype=object)

    good = pd.DataFrame(
        {
            "job_id": np.full(good_pos.size, job_id, dtype=object),
            "row_num": good_pos.astype(np.int64),
            "series_id": strings(series_id),
            "store_id": strings(store),
            "item_id": strings(item),
            "dept_id": strings(dept),
            "cat_id": strings(cat),
            "state_id": strings(state),
            "date": dates[good_pos],
            "units": units[good_pos] + 0.0,  # -0.0 becomes 0.0
            "sell_price": np.where(np.isnan(price[good_pos]), np.nan, price[good_pos]),
            "snap": snap.iloc[good_pos].reset_index(drop=True).astype("boolean"),
            "event_name": events,
            "inserted_at": _stamps(stamp, good_pos.size),
        },
        copy=False,
    )
    rejected = pd.DataFrame(
        {
            "job_id": np.full(bad_pos.size, job_id, dtype=object),
            "row_num": bad_pos.astype(np.int64),
            "reason": reason[bad_pos],
            "raw": np.array(_raw_json(frame, bad_pos), dtype=object),
            "rejected_at": _stamps(stamp, bad_pos.size),
        }
    )
    return ValidationResult(
        good=good[SALES.column_names], rejected=rejected[REJECTED_SALES.column_names]
    )
