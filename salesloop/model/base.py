"""The one contract every forecasting model honours, and its on-disk artifact.

The contract follows Nixtla's statsforecast/mlforecast shape so that a seasonal-naive baseline, an
ETS wrapper and the LightGBM model are interchangeable everywhere (training, backtest, registry,
server): ``fit(train) → self``, ``predict(history, horizon, levels, future) → long frame``,
``save(dir)`` / ``load(dir)``, and a :class:`ModelMetadata` describing what the model needs.

``predict`` is given the history explicitly instead of relying on what ``fit`` saw: the server
forecasts series from whatever recent window the caller sends, so a model must be a pure function
of (fitted parameters, history). Output columns: ``unique_id, ds, yhat, lo_<L>, hi_<L>`` per level,
clipped at 0 with ``lo ≤ yhat ≤ hi`` (:func:`finalize_forecast` enforces this once for all models).

Artifacts are folders: the model object serialised with joblib plus ``metadata.json``. Trust
boundary: unpickling runs code, so an artifact is exactly as trustworthy as whoever can write to
the registry folder (or bucket). Only load artifacts from a registry you control; the sha256 in the
metadata catches corruption and accidental edits, not a malicious writer.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from salesloop.model.frame import ID_COL, TIME_COL

METADATA_FILE = "metadata.json"
_LIBRARIES = ("mlforecast", "lightgbm", "pandas", "numpy", "scikit-learn", "coreforecast")


class ModelMetadata(BaseModel):
    """What a caller must know about a model without loading it (``metadata.json``).

    ``min_history`` is the number of most recent periods ``predict`` needs per series to compute
    every feature exactly; callers send that much and no more.
    """

    model_config = ConfigDict(extra="allow")

    schema_version: int = 1
    version: str | None = None
    model_kind: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    train_start: date | None = None
    train_end: date | None = None
    n_series: int = 0
    n_rows: int = 0
    freq: str = "D"
    season_length: int = 7
    horizon: int = 7
    levels: list[int] = Field(default_factory=lambda: [80, 95])
    min_history: int = 1
    features: list[str] = Field(default_factory=list)
    static_features: list[str] = Field(default_factory=list)
    exogenous: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    artifact_files: dict[str, str] = Field(default_factory=dict)
    note: str | None = None

    def write(self, directory: Path) -> Path:
        path = Path(directory) / METADATA_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def read(cls, directory: Path) -> ModelMetadata:
        path = Path(directory) / METADATA_FILE
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{directory} is not a model artifact: no {METADATA_FILE}"
            ) from None


@runtime_checkable
class ForecastModel(Protocol):
    """A fitted-or-not forecasting model; see the module docstring for the contract."""

    kind: ClassVar[str]
    metadata: ModelMetadata

    def fit(self, train: pd.DataFrame) -> Self: ...

    def predict(
        self,
        history: pd.DataFrame,
        horizon: int,
        levels: Sequence[int] = (80, 95),
        future: pd.DataFrame | None = None,
    ) -> pd.DataFrame: ...

    def save(self, directory: Path) -> Path: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...


MODEL_KINDS: dict[str, type[Any]] = {}


def register_kind(kind: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: make ``load_model`` able to rebuild this kind from its artifact."""

    def deco(cls: type[Any]) -> type[Any]:
        MODEL_KINDS[kind] = cls
        cls.kind = kind
        return cls

    return deco


def load_model(directory: Path | str) -> ForecastModel:
    """Load any registered model kind from an artifact folder (dispatch on ``model_kind``)."""
    directory = Path(directory)
    meta = ModelMetadata.read(directory)
    if meta.model_kind not in MODEL_KINDS:
        # Kinds register on import; each lives in its own module, imported only when needed.
        if meta.model_kind in ("seasonal_naive", "auto_ets"):
            try:
                import salesloop.evaluation.baselines
            except ImportError as exc:  # a runtime dependency, but an install may lack it
                raise ValueError(
                    f"{directory}: model_kind {meta.model_kind!r} needs statsforecast ({exc}); "
                    "it is a runtime dependency of salesloop: reinstall the project"
                ) from None
        else:
            import salesloop.model.lgbm  # noqa: F401
    try:
        cls = MODEL_KINDS[meta.model_kind]
    except KeyError:
        raise ValueError(
            f"{directory}: unknown model_kind {meta.model_kind!r}; known: {sorted(MODEL_KINDS)}"
        ) from None
    model: ForecastModel = cls.load(directory)
    return model


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_artifact(directory: Path, meta: ModelMetadata) -> None:
    """Refuse to unpickle a file whose bytes are not the ones that were saved."""
    for name, expected in meta.artifact_files.items():
        actual = sha256_file(Path(directory) / name)
        if actual != expected:
            raise ValueError(
                f"{directory / name}: sha256 {actual} does not match metadata {expected}"
            )


def level_columns(levels: Sequence[int]) -> list[str]:
    return [f"{side}_{lv}" for lv in sorted(levels) for side in ("lo", "hi")]


def finalize_forecast(
    ids: np.ndarray,
    ds: np.ndarray,
    yhat: np.ndarray,
    bounds: dict[int, tuple[np.ndarray, np.ndarray]],
) -> pd.DataFrame:
    """The common output frame: clipped at 0, ``lo ≤ yhat ≤ hi``, levels nested.

    Units cannot be negative, and an interval that excludes its own point forecast (possible when a
    calibration bin's residuals are all one-signed) would confuse every consumer, so both are fixed
    here once instead of in each model.
    """
    yhat = np.maximum(np.asarray(yhat, dtype=float), 0.0)
    out: dict[str, Any] = {ID_COL: ids, TIME_COL: ds, "yhat": yhat}
    prev_lo: np.ndarray | None = None
    prev_hi: np.ndarray | None = None
    for level in sorted(bounds):
        lo, hi = bounds[level]
        lo = np.minimum(np.maximum(np.asarray(lo, dtype=float), 0.0), yhat)
        hi = np.maximum(np.maximum(np.asarray(hi, dtype=float), 0.0), yhat)
        if prev_lo is not None and prev_hi is not None:
            lo = np.minimum(lo, prev_lo)
            hi = np.maximum(hi, prev_hi)
        out[f"lo_{level}"] = lo
        out[f"hi_{level}"] = hi
        prev_lo, prev_hi = lo, hi
    frame = pd.DataFrame(out)
    return frame[[ID_COL, TIME_COL, "yhat", *level_columns(list(bounds))]]


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)
