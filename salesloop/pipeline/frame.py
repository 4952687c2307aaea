"""Extract the training frame from the warehouse and refuse frames a model must not be trained on.

Extraction pushes everything down to the warehouse (history window, series filter, latest-insert-
wins corrections) through ``sql/training_frame.sql``, so BigQuery scans one partition range and
ships only the rows the model needs. The series filter wraps that query instead of editing it: a
filter on the partitioning key of the window function is pushed below it by both engines.

Validation runs in two layers, and a failing frame stops the pipeline with a report listing every
problem (not only the first):

* row schema (pandera): types, required values, non-negative finite units, one row per series-day;
* frame shape: enough series and periods for the configured backtest, dates aligned to the
  frequency, the share of grid periods without a row (gaps), the share of series that never sell,
  and staleness of the last period relative to the requested end date.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from salesloop import sql as sqlmod
from salesloop.config import Settings
from salesloop.model.frame import ID_COL, TARGET_COL, TIME_COL, pandas_freq, to_frame
from salesloop.training_settings import TrainingSettings
from salesloop.warehouse import Warehouse

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pandera.pandas as pa

RAW_COLUMNS = (
    "series_id",
    "store_id",
    "item_id",
    "dept_id",
    "cat_id",
    "state_id",
    "date",
    "units",
    "sell_price",
    "snap",
    "event_name",
)
_SERIES_FILTER = re.compile(r"^[A-Za-z0-9_/%\-.]{1,200}$")


class FrameValidationError(ValueError):
    """The training frame is unusable; ``report`` says why, in full."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.text())


@dataclass
class ValidationReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        head = (
            "training frame OK"
            if self.ok
            else f"training frame rejected ({len(self.problems)} problems)"
        )
        lines = [head, *[f"  - {p}" for p in self.problems]]
        lines += [f"  {k}: {v}" for k, v in self.stats.items()]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


# -- extraction ----------------------------------------------------------------------------------


def training_query(series_filter: str = "") -> str:
    """``training_frame.sql``, optionally restricted to series whose id matches a LIKE pattern."""
    base = sqlmod.load("training_frame").strip().rstrip(";")
    if not series_filter:
        return base
    body = "\n".join(line for line in base.splitlines() if not line.lstrip().startswith("--"))
    body = re.sub(r"\bORDER BY series_id, date\s*$", "", body.strip())
    return (
        f"SELECT * FROM (\n{body}\n) AS t\nWHERE t.series_id LIKE @series_like\n"
        "ORDER BY t.series_id, t.date"
    )


def last_sales_date(warehouse: Warehouse) -> date | None:
    out = warehouse.query("SELECT MAX(date) AS d FROM {{ sales }}")
    value = out["d"].iloc[0] if len(out) else None
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


_TEXT_COLUMNS = ("series_id", "store_id", "item_id", "dept_id", "cat_id", "state_id", "event_name")


def _lean(rows: pd.DataFrame) -> pd.DataFrame:
    """Ids as categoricals: at M5 scale, object columns of repeated ids cost gigabytes."""
    for col in _TEXT_COLUMNS:
        if col in rows.columns and not isinstance(rows[col].dtype, pd.CategoricalDtype):
            rows[col] = rows[col].astype("category")
    return rows


def _concat_categorical(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate chunks keeping categoricals (pandas falls back to object on differing categories)."""
    if len(parts) == 1:
        return parts[0]
    for col in _TEXT_COLUMNS:
        if col in parts[0].columns:
            cats = pd.api.types.union_categoricals([p[col] for p in parts]).categories
            for p in parts:
                p[col] = p[col].cat.set_categories(cats)
    return pd.concat(parts, ignore_index=True)


def extract_frame(
    warehouse: Warehouse,
    *,
    history_days: int,
    end_date: date | None = None,
    series_filter: str = "",
    chunks: Sequence[str] = (),
) -> pd.DataFrame:
    """The raw training rows (SALES-shaped, corrections applied) of the history window.

    ``chunks``: LIKE patterns queried one at a time (e.g. one per store) so the client never holds
    more than one chunk's rows as Python strings; ids come back as categoricals either way.
    """
    patterns = [series_filter] if series_filter else list(chunks) or [""]
    for pattern in patterns:
        if pattern and not _SERIES_FILTER.match(pattern):
            raise ValueError(f"series filter must be a LIKE pattern of ids, got {pattern!r}")
    end = end_date or last_sales_date(warehouse)
    if end is None:
        raise ValueError("the sales table is empty: nothing to train on")
    parts = []
    for pattern in patterns:
        params: dict[str, Any] = {"end_date": end, "history_days": int(history_days)}
        if pattern:
            params["series_like"] = pattern
        parts.append(_lean(warehouse.query(training_query(pattern), params)))
    rows = _concat_categorical(parts)
    rows.attrs["end_date"] = str(end)
    return rows


def store_chunks(warehouse: Warehouse) -> list[str]:
    """One LIKE pattern per store (series ids are ``store/item``)."""
    stores = warehouse.query("SELECT DISTINCT store_id FROM {{ sales }} ORDER BY store_id")
    return [f"{s}/%" for s in stores["store_id"].astype(str)]


# -- validation ----------------------------------------------------------------------------------


def _series_ids_ok(s: pd.Series) -> pd.Series:
    """``store/item`` ids; on categoricals the check runs once per category, not per row."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        good = np.asarray(s.cat.categories.astype(str).str.contains("/", regex=False), dtype=bool)
        codes = s.cat.codes.to_numpy()
        return pd.Series((codes >= 0) & good[np.maximum(codes, 0)], index=s.index)
    return s.astype(str).str.contains("/", regex=False)


def raw_schema() -> pa.DataFrameSchema:
    # Ids may be str or categorical (lean extraction): required, any dtype.
    text = pa.Column(None, nullable=False)
    return pa.DataFrameSchema(
        {
            "series_id": pa.Column(
                None, pa.Check(_series_ids_ok, name="store/item id"), nullable=False
            ),
            "store_id": text,
            "item_id": text,
            "dept_id": text,
            "cat_id": text,
            "state_id": text,
            "date": pa.Column("datetime64[ns]", nullable=False, coerce=True),
            "units": pa.Column(
                float,
                [
                    pa.Check.ge(0.0),
                    pa.Check(lambda s: np.isfinite(s), element_wise=False, name="finite"),
                ],
                nullable=False,
                coerce=True,
            ),
            "sell_price": pa.Column(
                float, pa.Check.ge(0.0), nullable=True, coerce=True, required=False
            ),
        },
        unique=["series_id", "date"],
        strict=False,
    )


def _aligned(dates: pd.DatetimeIndex, freq: str) -> bool:
    if freq == "D" or dates.empty:
        return True
    if freq.startswith("W"):
        return dates.dayofweek.nunique() == 1
    if freq == "MS":
        return bool((dates.day == 1).all())
    if freq in ("M", "ME"):
        return bool(dates.is_month_end.all())
    return True


def validate_frame(
    raw: pd.DataFrame,
    settings: Settings,
    train: TrainingSettings,
    *,
    end_date: date | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check ``raw`` rows, build the model frame, check its shape; raise with the whole report."""
    problems: list[str] = []
    fc = settings.forecast
    vs = train.validation
    bt = train.backtest
    stats: dict[str, Any] = {"rows": len(raw)}
    missing_cols = [c for c in ("series_id", "date", "units") if c not in raw.columns]
    if missing_cols:
        report = ValidationReport(False, [f"missing columns {missing_cols}"], stats)
        raise FrameValidationError(report)
    try:
        raw = raw_schema().validate(raw, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        unique = cases["check"].astype(str) == "multiple_fields_uniqueness"
        for (col, check), part in cases[~unique].groupby(
            ["column", "check"], dropna=False, sort=True
        ):
            sample = ", ".join(map(str, part["failure_case"].head(3).tolist()))
            problems.append(f"{col}: {check} failed on {len(part)} rows (e.g. {sample})")
        if unique.any():
            dup = raw[raw.duplicated(["series_id", "date"], keep=False)]
            first = dup.iloc[0]
            problems.append(
                f"duplicate series-day rows: {len(dup)} rows "
                f"(e.g. {first['series_id']} on {pd.Timestamp(first['date']).date()})"
            )
        raise FrameValidationError(ValidationReport(False, problems, stats)) from None
    if raw.empty:
        raise FrameValidationError(
            ValidationReport(False, ["no rows in the history window"], stats)
        )
    dates = pd.DatetimeIndex(raw["date"])
    if not _aligned(dates, fc.freq):
        problems.append(
            f"dates are not aligned to frequency {fc.freq!r} (expected one row per period start)"
        )
    frame = to_frame(raw, fc.freq, end=pd.Timestamp(end_date) if end_date else None)
    n_series = int(frame[ID_COL].nunique())
    periods = int(frame[TIME_COL].nunique())
    grid_rows = len(frame)
    gap_share = 1.0 - len(raw) / grid_rows if grid_rows else 1.0
    sums = frame.groupby(ID_COL, observed=True)[TARGET_COL].sum()
    zero_share = float((sums == 0).mean()) if len(sums) else 1.0
    assert bt.horizon and bt.step and bt.min_train_periods  # resolved
    needed = vs.min_periods or (bt.min_train_periods + (bt.windows - 1) * bt.step + bt.horizon + 1)
    last = frame[TIME_COL].max()
    stats.update(
        series=n_series,
        periods=periods,
        first=str(frame[TIME_COL].min().date()),
        last=str(last.date()),
        gap_share=round(gap_share, 4),
        zero_series_share=round(zero_share, 4),
        periods_needed=needed,
        freq=pandas_freq(fc.freq, frame[TIME_COL].iloc[0]),
    )
    if n_series < vs.min_series:
        problems.append(f"{n_series} series, at least {vs.min_series} required")
    if periods < needed:
        problems.append(
            f"{periods} periods of history, {needed} needed for {bt.windows} backtest windows of "
            f"{bt.horizon} after {bt.min_train_periods} training periods"
        )
    if gap_share > vs.max_missing_share:
        problems.append(
            f"{gap_share:.1%} of series-periods have no row (gaps), at most {vs.max_missing_share:.0%} allowed"
        )
    if zero_share > vs.max_zero_series_share:
        problems.append(
            f"{zero_share:.1%} of series never sold in the window, at most {vs.max_zero_series_share:.0%} allowed"
        )
    if end_date is not None:
        raw_last = dates.max()
        stale = int(frame[TIME_COL].gt(raw_last).groupby(frame[ID_COL], observed=True).any().sum())
        offset = pd.tseries.frequencies.to_offset(stats["freq"])
        behind = len(pd.date_range(raw_last, pd.Timestamp(end_date), freq=offset)) - 1
        stats["last_row"] = str(raw_last.date())
        if behind > vs.max_staleness_periods:
            problems.append(
                f"latest row {raw_last.date()} is {behind} periods before the end date {end_date} "
                f"(at most {vs.max_staleness_periods}); {stale} series padded with zeros"
            )
    report = ValidationReport(not problems, problems, stats)
    if problems:
        raise FrameValidationError(report)
    return frame, report
