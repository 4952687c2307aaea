"""Loading sales from a user's file (or frame) into the warehouse, one insert job per slice.

Why jobs of bounded size: each committed insert job fires one event, and the function forecasts
every series the job touched inside one invocation (memory, time limit, a 1.5 MB prediction
payload). Slicing a large file into jobs of at most ``job_rows`` rows keeps each invocation's work
bounded whatever the file size; each job carries its own id and its own rejected rows.

Column mapping: files rarely use our column names, so ``mapping`` maps *our* name to *theirs*
(``{"units": "qty", "date": "day"}``), inline or from a YAML file. Problems with the file itself
(unknown format, missing file, mapped or required columns absent) raise :class:`IngestError`
naming the columns; problems with rows never raise: they become ``rejected_sales`` rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
import pyarrow.parquet as pq
import yaml

from salesloop.data.validate import (
    FREQUENCIES,
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    validate_sales,
)

if TYPE_CHECKING:
    from salesloop.config import Settings

DEFAULT_JOB_ROWS = 50_000
_FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSED = (".gz", ".bz2", ".zst", ".xz", ".zip")


class IngestError(ValueError):
    """The input cannot be ingested at all (bad file, format or column mapping)."""


class JobFailed(RuntimeError):
    """A warehouse insert failed; ``report`` lists the jobs committed before it."""

    def __init__(self, message: str, report: IngestReport):
        super().__init__(message)
        self.report = report


class JobSink(Protocol):
    """The part of the warehouse port ingest needs (``salesloop.warehouse.Warehouse`` has it)."""

    def insert_job(self, frames: Mapping[str, pd.DataFrame], job_id: str | None = None) -> Any: ...


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def load_mapping(path: Path | str) -> dict[str, str]:
    """A column mapping from YAML: ``our_name: their_name`` at top level or under ``columns:``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise IngestError(f"{path}: mapping file not found") from None
    except yaml.YAMLError as exc:
        raise IngestError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and set(data) == {"columns"}:
        data = data["columns"]
    if not isinstance(data, dict) or not data:
        raise IngestError(
            f"{path}: expected a mapping of our column names to the file's, e.g. 'units: qty'"
        )
    bad = [
        f"{k!r}: {v!r}" for k, v in data.items() if not isinstance(k, str) or not isinstance(v, str)
    ]
    if bad:
        raise IngestError(f"{path}: column names must be strings; got {', '.join(bad)}")
    return {str(k): str(v) for k, v in data.items()}


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None or (fmt == "parquet" and path.suffix.lower() in _COMPRESSED):
        raise IngestError(
            f"{path}: unsupported file type {''.join(path.suffixes) or '(no extension)'}; "
            "expected .csv (optionally compressed, e.g. .csv.gz), .tsv or .parquet"
        )
    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    return fmt


def _renames(path: Path, columns: list[str], mapping: Mapping[str, str] | None) -> dict[str, str]:
    """their → our renames, after checking the mapping against the file's columns."""
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(KNOWN_COLUMNS))
    if unknown:
        raise IngestError(
            f"column mapping names unknown target column(s) {', '.join(unknown)}; "
            f"ours are {', '.join(KNOWN_COLUMNS)}"
        )
    have = set(columns)
    absent = [f"{ours} <- {theirs!r}" for ours, theirs in mapping.items() if theirs not in have]
    if absent:
        raise IngestError(
            f"{path}: mapped column(s) not in the file: {', '.join(absent)}; "
            f"the file has {', '.join(map(repr, columns))}"
        )
    clashes = [o for o, t in mapping.items() if o != t and o in have and o not in mapping.values()]
    if clashes:
        raise IngestError(
            f"{path}: the mapping fills {', '.join(clashes)} from other columns but the file also "
            f"has column(s) named {', '.join(clashes)}; map or rename one of them"
        )
    renames = {theirs: ours for ours, theirs in mapping.items()}
    after = {renames.get(c, c) for c in columns}
    missing = [c for c in REQUIRED_COLUMNS if c not in after]
    if missing:
        raise IngestError(
            f"{path}: no column for {', '.join(missing)}; the file has "
            f"{', '.join(map(repr, columns))} (map them, e.g. --mapping with 'units: qty')"
        )
    return renames


def _check_freq(freq: str) -> str:
    if freq not in FREQUENCIES:
        raise IngestError(f"unknown frequency {freq!r}; expected one of {', '.join(FREQUENCIES)}")
    return freq


def inspect_sales_file(path: Path | str, mapping: Mapping[str, str] | None = None) -> list[str]:
    """Check format, existence and mapping from the header only; our names of the file's columns.

    Cheap enough to run before opening the warehouse, so a typo fails fast and takes no lock.
    """
    path = Path(path)
    fmt = _file_format(path)
    if fmt == "csv":
        header = _csv_header(path)
    else:
        try:
            header = pq.read_schema(path).names
        except Exception as exc:  # pyarrow raises several types for a non-Parquet file
            raise IngestError(f"{path}: cannot read as Parquet: {exc}") from None
    renames = _renames(path, header, mapping)
    return [renames.get(c, c) for c in header]


def _csv_sep(path: Path) -> str:
    return "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","


def _csv_header(path: Path) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, sep=_csv_sep(path), nrows=0).columns]
    except (pd.errors.EmptyDataError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise IngestError(f"{path}: cannot read as CSV: {exc}") from None


def iter_sales_file(
    path: Path | str,
    mapping: Mapping[str, str] | None = None,
    freq: str = "D",
    *,
    batch_rows: int = DEFAULT_JOB_ROWS,
) -> Iterator[pd.DataFrame]:
    """The file in frames of at most ``batch_rows`` rows, columns renamed to ours.

    CSV cells stay strings exactly as written (an empty cell is ``""``; ids keep leading zeros)
    so that rejected rows can be shown as received; Parquet keeps its types (dates as
    ``datetime64``, dictionary columns as categoricals). Each frame's ``attrs["freq"]`` is ``freq``.
    """
    path = Path(path)
    fmt = _file_format(path)
    _check_freq(freq)
    if batch_rows < 1:
        raise IngestError(f"batch_rows must be >= 1, got {batch_rows}")
    if fmt == "csv":
        header = _csv_header(path)
        renames = _renames(path, header, mapping)
        reader = pd.read_csv(
            path,
            sep=_csv_sep(path),
            dtype=str,
            keep_default_na=False,
            chunksize=batch_rows,
            na_filter=False,
        )
        empty = True
        with reader:
            for chunk in reader:
                frame = chunk.rename(columns=renames).reset_index(drop=True)
                frame.attrs["freq"] = freq
                empty = False
                yield frame
        if empty:  # header only: still a frame with the (renamed) columns
            frame = pd.DataFrame({renames.get(c, c): pd.Series(dtype=object) for c in header})
            frame.attrs["freq"] = freq
            yield frame
        return
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise IngestError(f"{path}: cannot read as Parquet: {exc}") from None
    renames = _renames(path, parquet.schema_arrow.names, mapping)
    if parquet.metadata.num_rows == 0:
        frame = (
            parquet.schema_arrow.empty_table()
            .to_pandas(date_as_object=False)
            .rename(columns=renames)
        )
        frame.attrs["freq"] = freq
        yield frame
        return
    for batch in parquet.iter_batches(batch_size=batch_rows):
        frame = batch.to_pandas(date_as_object=False).rename(columns=renames)
        frame.attrs["freq"] = freq
        yield frame


def read_sales_file(
    path: Path | str, mapping: Mapping[str, str] | None = None, freq: str = "D"
) -> pd.DataFrame:
    """The whole file as one frame (see :func:`iter_sales_file`; use that for large files)."""
    frames = list(iter_sales_file(path, mapping, freq, batch_rows=1_000_000))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame.attrs["freq"] = freq
    return frame


# --------------------------------------------------------------------------------------------
# Ingesting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobReport:
    job_id: str
    rows: int
    good: int
    rejected: int
    reasons: dict[str, int]
    committed_at: datetime


@dataclass
class IngestReport:
    jobs: list[JobReport] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def rows(self) -> int:
        return sum(j.rows for j in self.jobs)

    @property
    def good(self) -> int:
        return sum(j.good for j in self.jobs)

    @property
    def rejected(self) -> int:
        return sum(j.rejected for j in self.jobs)

    @property
    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs:
            for k, v in job.reasons.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "good": self.good,
            "rejected": self.rejected,
            "reasons": self.reasons,
            "jobs": [
                {
                    "job_id": j.job_id,
                    "rows": j.rows,
                    "good": j.good,
                    "rejected": j.rejected,
                    "committed_at": j.committed_at.isoformat(),
                }
                for j in self.jobs
            ],
            "wall_s": round(self.wall_s, 3),
        }


def new_ingest_job_id() -> str:
    return f"ingest_{uuid.uuid4().hex}"


def _job_ids(base: str | None, parts: int) -> list[str]:
    if base is None:
        return [new_ingest_job_id() for _ in range(parts)]
    if parts == 1:
        return [base]
    return [f"{base}_{k:04d}" for k in range(parts)]


def _ingest_parts(
    warehouse: JobSink,
    parts: Iterable[tuple[str, pd.DataFrame]],
    *,
    settings: Settings,
    freq: str,
    now: datetime | None,
) -> IngestReport:
    report = IngestReport()
    t0 = time.perf_counter()
    for job_id, part in parts:
        stamp = now or datetime.now(UTC)
        result = validate_sales(
            part,
            job_id,
            today=stamp.astimezone(UTC).date(),
            max_future_days=settings.warehouse.max_future_days,
            inserted_at=stamp,
            freq=freq,
        )
        try:
            committed = warehouse.insert_job(
                {"sales": result.good, "rejected_sales": result.rejected}, job_id=job_id
            )
        except Exception as exc:
            report.wall_s = time.perf_counter() - t0
            raise JobFailed(
                f"insert job {job_id} failed after {len(report.jobs)} committed job(s) "
                f"({report.rows} rows); committed jobs stay (sales is append-only): {exc}",
                report,
            ) from exc
        report.jobs.append(
            JobReport(
                job_id=str(committed.job_id),
                rows=len(part),
                good=len(result.good),
                rejected=len(result.rejected),
                reasons=result.reason_counts,
                committed_at=committed.committed_at,
            )
        )
    report.wall_s = time.perf_counter() - t0
    return report


def ingest_frame(
    warehouse: JobSink,
    raw: pd.DataFrame,
    *,
    job_id: str | None = None,
    settings: Settings,
    job_rows: int = DEFAULT_JOB_ROWS,
    freq: str | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Validate ``raw`` and append it as insert job(s) of at most ``job_rows`` rows each.

    Job ids: ``job_id`` for a single job, ``{job_id}_0000``, ``_0001``... when split, fresh
    ``ingest_<hex>`` ids when ``job_id`` is None. ``row_num`` counts from 0 within each job.
    ``freq`` defaults to the frame's ``attrs["freq"]`` (set by the readers), else the
    environment's ``forecast.freq``. ``now`` pins the clock (tests); by default each job is
    stamped when validated.
    """
    if job_rows < 1:
        raise IngestError(f"job_rows must be >= 1, got {job_rows}")
    freq = _check_freq(freq or raw.attrs.get("freq") or settings.forecast.freq)
    starts = list(range(0, len(raw), job_rows))
    ids = _job_ids(job_id, len(starts))
    parts = ((jid, raw.iloc[s : s + job_rows]) for jid, s in zip(ids, starts, strict=True))
    return _ingest_parts(warehouse, parts, settings=settings, freq=freq, now=now)


def ingest_file(
    warehouse: JobSink,
    path: Path | str,
    *,
    settings: Settings,
    mapping: Mapping[str, str] | None = None,
    job_rows: int = DEFAULT_JOB_ROWS,
    job_id: str | None = None,
    freq: str | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Stream a CSV/Parquet file into the warehouse, one insert job per ``job_rows`` rows.

    Memory is bounded by one job, so files larger than RAM (the 59 M-row M5-scale Parquet)
    load too. Job ids follow :func:`ingest_frame`.
    """
    if job_rows < 1:
        raise IngestError(f"job_rows must be >= 1, got {job_rows}")
    freq = _check_freq(freq or settings.forecast.freq)
    frames = (f for f in iter_sales_file(path, mapping, freq, batch_rows=job_rows) if len(f))

    def parts() -> Iterator[tuple[str, pd.DataFrame]]:
        # Look one frame ahead: a single job keeps the caller's id, a split one gets suffixes.
        first = next(frames, None)
        if first is None:
            return
        second = next(frames, None)
        if second is None:
            yield _job_ids(job_id, 1)[0], first
            return
        for k, frame in enumerate(_chain(first, second, frames)):
            yield (f"{job_id}_{k:04d}" if job_id is not None else new_ingest_job_id()), frame

    return _ingest_parts(warehouse, parts(), settings=settings, freq=freq, now=now)


def _chain(
    first: pd.DataFrame, second: pd.DataFrame, rest: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    yield first
    yield second
    yield from rest
