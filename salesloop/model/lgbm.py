"""The default model: one global LightGBM over all series, recursive over the horizon (mlforecast).

Features (daily defaults, derived from the season length for other frequencies):

* target lags 7, 14, 21, 28; rolling mean 7/28, rolling std 28 and the mean of the same weekday
  over the last four weeks, all of lag 7. No lag shorter than the 7-day horizon (``short_lag``):
  mlforecast feeds its own forecasts back as the lags of later steps, and a tree trained on integer
  counts reads a fractional forecast (0.6) as "sold yesterday", which biased daily forecasts of
  intermittent items upwards by 4% (+1.5% without; same RMSSE). Other frequencies keep lags 1, 2,
  4 and one season (their history is too short to give up the last periods);
* the series' mean over the training window (``level_unique_id``, a static feature stored in the
  artifact). A 28-day mean of a 0.6-units/day item is off by ~25% (one sd) from its rate; the
  training window pins the level down to a few percent, which is what AutoETS gets from its 730
  days of history and what the 63-day serving window cannot give. A series the model never saw
  gets NaN (LightGBM's missing branch) and relies on its rolling means;
* the forecast origin: the run of zero days ending at the origin (capped at 28) and the step
  ``1..h`` from it. A run of zeros at a normally selling item is a stock-out that usually goes
  on; the recursive lags cannot carry that over the horizon. Training rows play a random step
  (seeded, independent of the weekday) from an origin that many days earlier, so the feature
  means the same at training and serving time;
* calendar: day of week, month, day of month;
* price: the shelf price and the price relative to its own 28-day trailing mean (promotions);
* SNAP day and calendar-event flags; the static ids (store, item, dept, category, state) as
  LightGBM categoricals.

Measured on generated data (600 series x 1,000 days, 4 weekly origins, fit once at the first one;
tuning seeds 1 and 2, never the benchmark's seed 0; see docs/training.md): the level encoding
-1.0% / -0.8% RMSSE, dropping the short lags -0.1% / -0.1%, the origin features -0.1% / -0.1%.

No expanding-window feature computed from the history sent: the server only receives the last
``min_history`` periods of a series, so it would be computed on a different window at training and
at serving time (train/serve skew). Every feature here is exact given ``min_history`` periods and
the artifact.

Calibration: the conformal run (``cross_validation`` frozen at the first calibration origin) sees
encodings computed up to that origin only, and its rows carry their window's real origin, so its
residuals are out of sample like the forecasts they calibrate.

Tweedie objective: the right loss for non-negative, intermittent counts (and the M5 winners'
choice); it keeps predictions positive. Poisson and L2 measured the same or worse. Determinism:
fixed seed, ``deterministic=True``, row-wise histograms, a fixed thread count (1 by default,
see the params).

Intervals: see :mod:`salesloop.model.conformal`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, cast

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMean, RollingStd, SeasonalRollingMean
from pydantic import BaseModel, ConfigDict, Field

from salesloop.model.base import (
    ModelMetadata,
    finalize_forecast,
    library_versions,
    register_kind,
    sha256_file,
    verify_artifact,
)
from salesloop.model.conformal import MondrianConformal
from salesloop.model.frame import (
    EXOG_COLUMNS,
    ID_COL,
    STATIC_COLUMNS,
    TARGET_COL,
    TIME_COL,
    future_frame,
    group_bounds,
    grouped_rolling_mean,
    last_n_mean,
    pandas_freq,
    require_columns,
)
from salesloop.model.recursive import RecursivePlan, plan_for

# mlforecast warns on every recursive step when a feature is null (a price before launch is null
# by design); in a threaded server the per-call `catch_warnings` alternative is not thread-safe.
warnings.filterwarnings("ignore", message="Found null values in", category=UserWarning)

MODEL_FILE = "model.joblib"
_MODEL_NAME = "lgbm"
_DYNAMIC = ("sell_price", "price_rel", "snap", "event")
_ORIGIN = ("origin_zero_run", "origin_step")
_UNSET: Any = object()
# Config keys added after artifacts were first saved, with the value older artifacts were trained
# with (see ``LightGBMForecaster.load``).
_LEGACY_CONFIG: dict[str, Any] = {
    "encode_by": (),
    "short_lag": 1,
    "origin_features": False,
    "train_dtype": "float64",
}


def _default_lgbm_params() -> dict[str, Any]:
    return {
        "objective": "tweedie",
        "tweedie_variance_power": 1.1,
        "n_estimators": 200,
        "learning_rate": 0.08,
        "num_leaves": 31,
        "min_child_samples": 50,
        "max_bin": 63,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "seed": 0,
        # One thread: LightGBM's OpenMP threads busy-wait, and on a 2-core machine shared with
        # the server, the function and other jobs, 2 threads measured 7-10x *slower* than 1.
        "n_jobs": 1,
        "deterministic": True,
        # Row-wise histograms: ~27% less CPU than column-wise on this frame (27 features, many
        # rows, one thread), the same trees; either one makes a 1-thread fit deterministic.
        "force_row_wise": True,
        "verbose": -1,
    }


def zero_run(y: np.ndarray, starts: np.ndarray, ends: np.ndarray, cap: int) -> np.ndarray:
    """Consecutive zero periods ending at each row (within its series), capped at ``cap``."""
    n = len(y)
    idx = np.arange(n)
    first_row = np.repeat(starts, ends - starts)
    last_nonzero = np.where(y != 0, idx, -1)
    last_nonzero = np.maximum(last_nonzero, first_row - 1)
    last_nonzero = np.maximum.accumulate(last_nonzero) if n else last_nonzero
    return np.minimum(idx - last_nonzero, cap).astype(float)


def _enc_col(key: str) -> str:
    return f"level_{key}"


def week_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
    """ISO week: the yearly position of a weekly period (module-level so the model pickles)."""
    return pd.DatetimeIndex(dates).isocalendar().week.to_numpy(dtype=np.int64)


class LightGBMConfig(BaseModel):
    """Everything that defines the model besides the data; stored in ``metadata.params``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    freq: str = "D"
    season_length: int = Field(default=7, ge=1)
    horizon: int = Field(default=7, ge=1)
    levels: tuple[int, ...] = (80, 95)
    lags: tuple[int, ...] = (1, 7, 14, 28)
    rolling_windows: tuple[int, ...] = (7, 28)
    std_window: int = 28
    seasonal_windows: int = 4
    date_features: tuple[str, ...] = ("dayofweek", "month", "day")
    price_window: int = 28
    level_window: int = 28
    calibration_windows: int = Field(default=4, ge=2)
    min_per_bin: int = Field(default=150, ge=10)
    max_bins: int = Field(default=8, ge=1)
    static_features: tuple[str, ...] = STATIC_COLUMNS
    encode_by: tuple[str, ...] = (ID_COL,)
    short_lag: int = Field(default=1, ge=1)
    origin_features: bool = True
    zero_run_cap: int = Field(default=28, ge=1)
    # Training frame dtype: float32 halves the feature matrices mlforecast and LightGBM build
    # (the M5-scale fit peaks ~2x lower); LightGBM bins features anyway, and prediction keeps
    # float64 (bin edges are midpoints between training values, far from float32 rounding).
    train_dtype: Literal["float32", "float64"] = "float32"
    lgbm: dict[str, Any] = Field(default_factory=_default_lgbm_params)
    # Prediction parallelism comes from concurrent requests; OpenMP threads inside each
    # small predict call only contend with them.
    predict_threads: int = Field(default=1, ge=1)

    @classmethod
    def for_frequency(
        cls,
        freq: str = "D",
        season_length: int = 7,
        horizon: int = 7,
        levels: Sequence[int] = (80, 95),
        **overrides: Any,
    ) -> LightGBMConfig:
        """Daily defaults as documented above; weekly/monthly use short lags plus one season."""
        base: dict[str, Any] = {
            "freq": freq,
            "season_length": season_length,
            "horizon": horizon,
            "levels": tuple(sorted(levels)),
        }
        s = season_length
        if freq != "D":
            base.update(
                lags=tuple(sorted({1, 2, 4, *([s] if s > 1 else [])})),
                rolling_windows=(4, 13) if s >= 13 else (2, max(s, 3)),
                std_window=max(4, min(s, 13)),
                seasonal_windows=2,
                date_features=("month", "week_of_year") if freq.startswith("W") else ("month",),
                price_window=4,
                level_window=max(4, min(s, 13)),
            )
        elif s != 7:
            base.update(lags=(1, s, 2 * s, 4 * s), rolling_windows=(s, 4 * s), std_window=4 * s)
        else:
            base.update(lags=(7, 14, 21, 28), short_lag=7)
        base.update(overrides)
        return cls(**base)

    def lag_transforms(self) -> dict[int, list[Any]]:
        s = self.season_length
        short: list[Any] = [RollingMean(window_size=w) for w in self.rolling_windows]
        if s > 1 and self.seasonal_windows > 1:
            short.append(SeasonalRollingMean(season_length=s, window_size=self.seasonal_windows))
        seasonal_lag = s if s > 1 else 1
        long: list[Any] = [RollingMean(window_size=w) for w in self.rolling_windows]
        long.append(RollingStd(window_size=self.std_window))
        k = self.short_lag
        if seasonal_lag == k:
            return {k: short + long[-1:]}
        return {k: short, seasonal_lag: long}

    def min_history(self) -> int:
        """Periods of history that make every feature of the first forecast step exact."""
        s = self.season_length
        seasonal_lag = s if s > 1 else 1
        needs = [max(self.lags), self.price_window, self.level_window]
        needs += [self.short_lag + w - 1 for w in self.rolling_windows]
        needs += [seasonal_lag + w - 1 for w in self.rolling_windows]
        needs.append(seasonal_lag + self.std_window - 1)
        if s > 1 and self.seasonal_windows > 1:
            needs.append(self.short_lag + s * (self.seasonal_windows - 1))
        if self.origin_features:
            needs.append(self.zero_run_cap)
        return int(max(needs))

    def date_feature_objects(self) -> list[Any]:
        named = {"week_of_year": week_of_year}
        return [named.get(f, f) for f in self.date_features]


@register_kind("lightgbm")
class LightGBMForecaster:
    """Global LightGBM via mlforecast with Mondrian conformal intervals."""

    kind: ClassVar[str] = "lightgbm"

    def __init__(self, config: LightGBMConfig | None = None, **overrides: Any) -> None:
        self.config = config or LightGBMConfig.for_frequency(**overrides)
        self.metadata = ModelMetadata(
            model_kind=self.kind,
            freq=self.config.freq,
            season_length=self.config.season_length,
            horizon=self.config.horizon,
            levels=list(self.config.levels),
            min_history=self.config.min_history(),
            params=self.config.model_dump(mode="json"),
        )
        self._mlf: MLForecast | None = None
        self._calibrator: MondrianConformal | None = None
        self._encoding: dict[str, pd.Series] = {}
        self._freq: str = pandas_freq(self.config.freq)
        # Rolling-origin forecasts of the calibration run (unique_id, ds, cutoff, y, yhat): the
        # training command turns them into holdout metrics; not part of the saved artifact.
        self.backtest_: pd.DataFrame | None = None
        # Predict through the numpy twin of the recursion when it applies (bit-identical, ~50x
        # faster for the event function's one-series batches); False forces mlforecast.
        self.use_recursive_plan = True
        self._plan: Any = _UNSET

    # -- training ----------------------------------------------------------------------------
    def _new_mlforecast(self) -> MLForecast:
        return MLForecast(
            models={_MODEL_NAME: lgb.LGBMRegressor(**self.config.lgbm)},
            freq=self._freq,
            lags=list(self.config.lags),
            lag_transforms=self.config.lag_transforms(),
            date_features=self.config.date_feature_objects(),
            num_threads=1,
        )

    def _prepare(self, frame: pd.DataFrame, *, with_target: bool = True) -> pd.DataFrame:
        cols = [
            ID_COL,
            TIME_COL,
            *([TARGET_COL] if with_target else []),
            *STATIC_COLUMNS,
            *EXOG_COLUMNS,
        ]
        require_columns(frame, cols, "frame")
        df = frame[cols].sort_values([ID_COL, TIME_COL], kind="stable").reset_index(drop=True)
        if df[TIME_COL].dtype != "datetime64[ns]":
            df[TIME_COL] = pd.to_datetime(df[TIME_COL]).astype("datetime64[ns]")
        for col in STATIC_COLUMNS:
            if not isinstance(df[col].dtype, pd.CategoricalDtype):
                df[col] = df[col].astype(str).astype("category")
        for col in EXOG_COLUMNS:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
        df["snap"] = df["snap"].fillna(0.0)
        df["event"] = df["event"].fillna(0.0)
        if with_target:
            df[TARGET_COL] = df[TARGET_COL].astype(float).fillna(0.0)
        return df

    def _add_price_rel(self, df: pd.DataFrame) -> pd.DataFrame:
        ids = df[ID_COL].to_numpy()
        price = df["sell_price"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            df["price_rel"] = price / grouped_rolling_mean(price, ids, self.config.price_window)
        return df

    def fit(self, train: pd.DataFrame) -> Self:
        cfg = self.config
        df = self._add_price_rel(self._prepare(train))
        df = df[[ID_COL, TIME_COL, TARGET_COL, *cfg.static_features, *_DYNAMIC]]
        df = df.astype({c: cfg.train_dtype for c in (TARGET_COL, *_DYNAMIC)})
        dynamic = self._dynamic()
        if self._freq.startswith("W"):
            self._freq = pandas_freq("W", df[TIME_COL].iloc[0])
        statics = list(cfg.static_features) + [_enc_col(k) for k in cfg.encode_by]
        mlf = self._new_mlforecast()
        periods = np.sort(df[TIME_COL].unique())
        cv_end = periods[max(len(periods) - 1 - cfg.calibration_windows * cfg.horizon, 0)]
        cv_enc = self._encodings(df[df[TIME_COL] <= cv_end])
        cv_df = self._with_encodings(df, cv_enc)
        if cfg.origin_features:
            cv_df = self._add_origin_features(cv_df, periods, cv_end)
        try:
            cv = mlf.cross_validation(
                cv_df,
                n_windows=cfg.calibration_windows,
                h=cfg.horizon,
                refit=False,
                static_features=statics,
            )
        except ValueError as exc:
            raise ValueError(
                f"training frame too short for {cfg.calibration_windows} calibration windows of "
                f"{cfg.horizon} periods after {cfg.min_history()} periods of features: {exc}"
            ) from exc
        del cv_df  # a full copy of the frame: not kept alive through the final fit
        cv = cv.rename(columns={_MODEL_NAME: "yhat"})
        self._calibrator = self._calibrate(df, cv)
        self.backtest_ = cv.assign(yhat=cv["yhat"].clip(lower=0.0))
        self._encoding = self._encodings(df)
        df = self._with_encodings(df, self._encoding)
        if cfg.origin_features:
            df = self._add_origin_features(df, periods, None)
        mlf.fit(df, static_features=statics)
        estimator = mlf.models_[_MODEL_NAME]
        assert isinstance(estimator, lgb.LGBMRegressor)
        estimator.set_params(n_jobs=cfg.predict_threads)
        self._mlf = mlf
        self._plan = _UNSET
        inferred = mlf.ts.keep_last_n or 0
        self.metadata = self.metadata.model_copy(
            update={
                "train_start": df[TIME_COL].min().date(),
                "train_end": df[TIME_COL].max().date(),
                "n_series": int(df[ID_COL].nunique()),
                "n_rows": len(df),
                "freq": self._freq,
                "min_history": max(cfg.min_history(), int(inferred)),
                "features": list(mlf.ts.features_order_),
                "static_features": statics,
                "exogenous": list(dynamic),
                "calibration": {
                    **self._calibrator.describe(),
                    "source": "mlforecast.cross_validation(refit=False)",
                    "n_windows": cfg.calibration_windows,
                    "h": cfg.horizon,
                },
                "library_versions": library_versions(),
            }
        )
        return self

    def _encodings(self, df: pd.DataFrame) -> dict[str, pd.Series]:
        """Mean target per value of each ``encode_by`` key over ``df`` (stored in the artifact)."""
        y = df[TARGET_COL].astype(float)
        return {
            key: y.groupby(df[key].astype(str).to_numpy(), observed=True).mean()
            for key in self.config.encode_by
        }

    def _dynamic(self) -> tuple[str, ...]:
        return (*_DYNAMIC, *(_ORIGIN if self.config.origin_features else ()))

    def _add_origin_features(
        self, df: pd.DataFrame, periods: np.ndarray, cv_end: Any
    ) -> pd.DataFrame:
        """Zero run at a forecast origin and the step from it, as serving will see them.

        A training row plays the horizon step ``j`` (seeded draw, independent of the weekday) of
        an origin ``j`` periods earlier; rows of the calibration windows (after ``cv_end``) use
        their window's real origin, so the calibration never sees a day past its origin.
        """
        h = self.config.horizon
        y = df[TARGET_COL].to_numpy(dtype=float)
        ids = df[ID_COL].to_numpy()
        starts, ends = group_bounds(ids)
        first_row = np.repeat(starts, ends - starts)
        run = zero_run(y, starts, ends, self.config.zero_run_cap)
        idx = np.arange(len(df))
        rng = np.random.default_rng(int(self.config.lgbm.get("seed", 0)))
        step = rng.integers(1, h + 1, len(df))
        if cv_end is not None:
            pos = np.searchsorted(periods, df[TIME_COL].to_numpy())
            end_pos = int(np.searchsorted(periods, pd.Timestamp(cv_end).to_datetime64()))
            after = pos > end_pos
            step[after] = (pos[after] - end_pos - 1) % h + 1
        src = idx - step
        ok = src >= first_row
        origin_run = np.where(ok, run[np.where(ok, src, 0)], np.nan)
        dtype = df[TARGET_COL].to_numpy().dtype
        return df.assign(origin_zero_run=origin_run.astype(dtype), origin_step=step.astype(dtype))

    def _with_encodings(self, df: pd.DataFrame, enc: dict[str, pd.Series]) -> pd.DataFrame:
        if not enc:
            return df
        dtype = df[TARGET_COL].to_numpy().dtype if TARGET_COL in df else np.dtype(np.float64)
        cols = {
            _enc_col(k): table.reindex(df[k].astype(str)).to_numpy().astype(dtype)
            for k, table in enc.items()
        }
        # mlforecast orders features by the training frame's columns: encodings go right after
        # the static ids in training and in prediction alike.
        out = df.assign(**cols)
        dynamic = self._dynamic()
        first = [c for c in out.columns if c not in cols and c not in dynamic]
        return out[[*first, *cols, *[c for c in dynamic if c in out.columns]]]

    def _calibrate(self, df: pd.DataFrame, cv: pd.DataFrame) -> MondrianConformal:
        h = self.config.horizon
        cv = cv.sort_values([ID_COL, "cutoff", TIME_COL], kind="stable")
        cv["step"] = cv.groupby([ID_COL, "cutoff"], observed=True).cumcount()
        resid = (
            cv.assign(r=cv[TARGET_COL] - cv["yhat"].clip(lower=0.0))
            .pivot_table(index=[ID_COL, "cutoff"], columns="step", values="r", observed=True)
            .dropna()
        )
        resid = resid[[c for c in resid.columns if int(c) < h]]
        level_parts = []
        for cutoff in resid.index.get_level_values("cutoff").unique():
            upto = df[df[TIME_COL] <= cutoff]
            ids = upto[ID_COL].to_numpy()
            if len(ids) == 0:
                continue
            lv = last_n_mean(upto[TARGET_COL].to_numpy(dtype=float), ids, self.config.level_window)
            starts = np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1])
            level_parts.append(
                pd.Series(
                    lv, index=pd.MultiIndex.from_arrays([ids[starts], np.repeat(cutoff, len(lv))])
                )
            )
        levels = pd.concat(level_parts).reindex(resid.index).to_numpy()
        return MondrianConformal.fit(
            levels,
            resid.to_numpy(),
            min_per_bin=self.config.min_per_bin,
            max_bins=self.config.max_bins,
        )

    # -- prediction --------------------------------------------------------------------------
    def predict(
        self,
        history: pd.DataFrame,
        horizon: int | None = None,
        levels: Sequence[int] | None = None,
        future: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        if self._mlf is None or self._calibrator is None:
            raise RuntimeError("model is not fitted")
        h = int(horizon or self.config.horizon)
        if not 1 <= h <= self.config.horizon:
            raise ValueError(f"horizon must be 1..{self.config.horizon} (the calibrated horizon)")
        lv = [int(x) for x in (levels if levels is not None else self.config.levels)]
        if any(not 0 < x < 100 for x in lv):
            raise ValueError("interval levels must be in (0, 100)")
        hist = self._prepare(history)
        if hist.empty:
            raise ValueError("empty history")
        fut = future_frame(hist, h, self._freq, future)
        fut = self._future_price_rel(hist, fut)
        if self.config.origin_features:
            ids0 = hist[ID_COL].to_numpy()
            st, en = group_bounds(ids0)
            run = zero_run(hist[TARGET_COL].to_numpy(dtype=float), st, en, self.config.zero_run_cap)
            fut = fut.assign(
                origin_zero_run=np.repeat(run[en - 1], h),
                origin_step=np.tile(np.arange(1, h + 1, dtype=float), len(st)),
            )
        hist = self._with_encodings(hist, self._encoding)
        plan = self._recursive_plan()
        if plan is not None:
            yhat = plan.predict(hist, fut, h)
            out_ids, out_ds = fut[ID_COL].to_numpy(), fut[TIME_COL].to_numpy()
        else:
            # mlforecast rebuilds its feature list from new_df, so new_df carries the dynamic
            # columns too (their history values are never used: the horizon's come from X_df).
            new_df = hist.assign(**{c: np.nan for c in self._dynamic() if c not in hist})[
                [
                    ID_COL,
                    TIME_COL,
                    TARGET_COL,
                    *self.config.static_features,
                    *[_enc_col(k) for k in self.config.encode_by],
                    *self._dynamic(),
                ]
            ]
            # A shallow copy per call: mlforecast's predict(new_df=...) rebinds ``self.ts`` on
            # the object it is called on, and the server predicts from many threads on one model.
            mlf = copy.copy(self._mlf)
            raw = mlf.predict(h, new_df=new_df, X_df=fut[[ID_COL, TIME_COL, *self._dynamic()]])
            out_ids, out_ds = raw[ID_COL].to_numpy(), raw[TIME_COL].to_numpy()
            yhat = raw[_MODEL_NAME].to_numpy(dtype=float).reshape(-1, h)
        uids = out_ids[::h]
        ids = hist[ID_COL].to_numpy()
        level_by_id = pd.Series(
            last_n_mean(hist[TARGET_COL].to_numpy(dtype=float), ids, self.config.level_window),
            index=ids[np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1])],
        )
        recent = level_by_id.reindex(uids).to_numpy()
        yhat = np.maximum(yhat, 0.0)
        bounds = self._calibrator.intervals(yhat, recent, lv)
        return finalize_forecast(
            out_ids,
            out_ds,
            yhat.ravel(),
            {k: (lo.ravel(), hi.ravel()) for k, (lo, hi) in bounds.items()},
        )

    def _recursive_plan(self) -> RecursivePlan | None:
        """The numpy twin of mlforecast's recursion (see :mod:`salesloop.model.recursive`).

        Built once per loaded model; ``None`` (mlforecast predicts) when the fitted features are
        not all ones the twin reproduces exactly, or when ``use_recursive_plan`` is off.
        """
        if not self.use_recursive_plan or self._mlf is None:
            return None
        if self._plan is _UNSET:
            encoded = [_enc_col(k) for k in self.config.encode_by]
            self._plan = plan_for(
                self._mlf, [*self.config.static_features, *encoded], self._dynamic(), encoded
            )
        return cast("RecursivePlan | None", self._plan)

    def _future_price_rel(self, hist: pd.DataFrame, fut: pd.DataFrame) -> pd.DataFrame:
        """price_rel of the horizon: the trailing mean of training over history + future prices.

        A (series x (window + horizon)) matrix of the last ``price_window`` history prices and the
        horizon's, summed newest-first like :func:`grouped_rolling_mean`, so each value is
        bit-identical to what training computed for a day with the same window of prices.
        """
        w = self.config.price_window
        ids = hist[ID_COL].to_numpy()
        starts, ends = group_bounds(ids)
        n = len(starts)
        h = len(fut) // max(n, 1)
        price = hist["sell_price"].to_numpy(dtype=float)
        mat = np.full((n, w + h), np.nan)
        for j in range(w):
            src = ends - w + j
            ok = src >= starts
            mat[ok, j] = price[src[ok]]
        mat[:, w:] = fut["sell_price"].to_numpy(dtype=float).reshape(n, h)
        total = np.zeros((n, h))
        count = np.zeros((n, h))
        for j in range(w):
            window = mat[:, w - j : w + h - j]
            ok = ~np.isnan(window)
            total += np.where(ok, window, 0.0)
            count += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            rel = mat[:, w:] / mean
        return fut.assign(price_rel=rel.ravel())

    # -- artifact ----------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        if self._mlf is None or self._calibrator is None:
            raise RuntimeError("model is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        joblib.dump(
            {
                "format": 1,
                "config": self.config.model_dump(mode="json"),
                "freq": self._freq,
                "mlforecast": self._mlf,
                "calibrator": self._calibrator,
                "encoding": self._encoding,
            },
            path,
        )
        self.metadata = self.metadata.model_copy(
            update={"artifact_files": {MODEL_FILE: sha256_file(path)}}
        )
        self.metadata.write(directory)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = ModelMetadata.read(directory)
        verify_artifact(directory, meta)
        payload = joblib.load(directory / MODEL_FILE)
        if payload.get("format") != 1:
            raise ValueError(f"{directory}: unsupported artifact format {payload.get('format')!r}")
        # An artifact saved before a config key existed was trained without that feature: its
        # missing keys take the value that reproduces it, not today's default.
        config = {**_LEGACY_CONFIG, **payload["config"]}
        model = cls(LightGBMConfig.model_validate(config))
        model._mlf = payload["mlforecast"]
        model._calibrator = payload["calibrator"]
        model._encoding = payload.get("encoding", {})
        model._freq = payload["freq"]
        model.metadata = meta
        return model
