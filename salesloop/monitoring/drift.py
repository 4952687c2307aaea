"""Distribution distances between a baseline and a recent sample, as Vertex Model Monitoring uses them.

Vertex AI Model Monitoring scores a numeric feature's drift with the Jensen-Shannon divergence of
two histograms and a categorical feature's with the L-infinity distance of the two category
frequency vectors (``ThresholdConfig``: "for categorical feature, the distribution distance is
calculated by L-infinity norm; for numerical feature ... by Jensen-Shannon divergence"). Computing
the same quantities here means thresholds tuned on one side carry over to the other.

Choices a reader needs to compare numbers:

* **Log base 2** by default, so the JS divergence lies in [0, 1] (1 = disjoint supports), the same
  scale as the L-infinity distance; pass ``base=math.e`` for nats (disjoint = ln 2 ≈ 0.693).
* **Shared bins from the baseline's quantiles**: both samples are bucketed on the same edges, the
  baseline's quantiles, so each bin holds about the same baseline mass and the divergence does not
  depend on the units of the feature. Repeated quantiles (sales are zero-inflated) collapse into one
  edge, and bins are right-closed, so a point mass such as ``units == 0`` gets a bin of its own.
  Two open-ended outer bins catch values outside the baseline's range: a shift beyond it still
  shows.
* **Additive smoothing**: ``epsilon`` is added to every bin's probability before renormalising, so
  an empty bin on one side keeps the divergence finite and stable for small samples.

Samples may carry weights (counts), so a warehouse can send ``value, count`` pairs instead of
millions of rows. Everything is pure numpy/pandas.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

DEFAULT_BINS = 20
DEFAULT_EPSILON = 1e-6
MISSING = "(missing)"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift: the distance and the evidence behind it (for the email and report)."""

    feature: str
    kind: Literal["numeric", "categorical"]
    metric: Literal["js_divergence", "linf_distance"]
    value: float | None
    baseline_n: float
    current_n: float
    # Bin labels (numeric: right edges as text; categorical: the categories) and both distributions.
    labels: tuple[str, ...] = ()
    baseline_p: tuple[float, ...] = ()
    current_p: tuple[float, ...] = ()

    def value_or_raise(self) -> float:
        if self.value is None:
            raise ValueError(
                f"{self.feature}: no data on one side (baseline n={self.baseline_n}, current n={self.current_n})"
            )
        return self.value


def _weights(values: FloatArray, weights: ArrayLike | None) -> FloatArray:
    if weights is None:
        return np.ones(len(values), dtype=float)
    w = np.asarray(weights, dtype=float)
    if w.shape != values.shape:
        raise ValueError(f"weights have shape {w.shape}, values {values.shape}")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    return w


def _finite(values: ArrayLike, weights: ArrayLike | None) -> tuple[FloatArray, FloatArray]:
    """Drop NaN/inf values (missing data is not a distribution shift of the numeric part)."""
    v = np.asarray(values, dtype=float).ravel()
    w = _weights(v, None if weights is None else np.asarray(weights, dtype=float).ravel())
    keep = np.isfinite(v) & (w > 0)
    return v[keep], w[keep]


def weighted_quantiles(
    values: ArrayLike, qs: ArrayLike, weights: ArrayLike | None = None
) -> FloatArray:
    """Quantiles of a weighted sample (inverted empirical CDF: the smallest value whose cumulative
    weight reaches q). With unit weights this is numpy's ``inverted_cdf`` method."""
    v, w = _finite(values, weights)
    if v.size == 0:
        raise ValueError("no finite values")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cum = np.cumsum(w) / w.sum()
    q = np.clip(np.asarray(qs, dtype=float), 0.0, 1.0)
    idx = np.searchsorted(cum, q - 1e-12, side="left")
    return v[np.minimum(idx, v.size - 1)]


def quantile_edges(
    baseline: ArrayLike, *, bins: int = DEFAULT_BINS, weights: ArrayLike | None = None
) -> FloatArray:
    """Inner bin edges: the baseline's interior quantiles, deduplicated (right-closed bins)."""
    if bins < 2:
        raise ValueError("need at least 2 bins")
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = weighted_quantiles(baseline, qs, weights)
    v, _ = _finite(baseline, weights)
    # Just below the baseline minimum and at its maximum: values outside the baseline's range get
    # bins of their own (the outer bins) instead of merging with the baseline's extreme mass.
    return np.unique(np.concatenate([[np.nextafter(v.min(), -np.inf)], edges, [v.max()]]))


def histogram(values: ArrayLike, edges: FloatArray, weights: ArrayLike | None = None) -> FloatArray:
    """Weighted counts in the bins (-inf, e0], (e0, e1], ..., (e_last, +inf)."""
    v, w = _finite(values, weights)
    idx = np.searchsorted(edges, v, side="left")
    return np.bincount(idx, weights=w, minlength=len(edges) + 1).astype(float)


def smooth(counts: ArrayLike, epsilon: float = DEFAULT_EPSILON) -> FloatArray:
    """Counts → probabilities with ``epsilon`` added to each bin, renormalised."""
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    if total <= 0:
        raise ValueError("empty distribution")
    p = c / total + epsilon
    return p / p.sum()


def jensen_shannon(p: ArrayLike, q: ArrayLike, *, base: float = 2.0) -> float:
    """JS divergence of two probability vectors: mean KL of each to their midpoint.

    Bounded by log_base(2): 1 in bits (the default), ln 2 in nats.
    """
    pa, qa = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if pa.shape != qa.shape:
        raise ValueError(f"distributions differ in shape: {pa.shape} vs {qa.shape}")
    pa, qa = pa / pa.sum(), qa / qa.sum()
    m = 0.5 * (pa + qa)

    def kl(a: FloatArray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    value = 0.5 * (kl(pa) + kl(qa)) / math.log(base)
    return float(min(max(value, 0.0), math.log(2) / math.log(base)))


def js_divergence_numeric(
    baseline: ArrayLike,
    current: ArrayLike,
    *,
    bins: int = DEFAULT_BINS,
    epsilon: float = DEFAULT_EPSILON,
    base: float = 2.0,
    baseline_weights: ArrayLike | None = None,
    current_weights: ArrayLike | None = None,
) -> float:
    """JS divergence of a numeric feature on shared baseline-quantile bins (see module doc)."""
    return numeric_drift(
        "value",
        baseline,
        current,
        bins=bins,
        epsilon=epsilon,
        base=base,
        baseline_weights=baseline_weights,
        current_weights=current_weights,
    ).value_or_raise()


def numeric_drift(
    feature: str,
    baseline: ArrayLike,
    current: ArrayLike,
    *,
    bins: int = DEFAULT_BINS,
    epsilon: float = DEFAULT_EPSILON,
    base: float = 2.0,
    baseline_weights: ArrayLike | None = None,
    current_weights: ArrayLike | None = None,
) -> FeatureDrift:
    """The JS divergence with its histograms; ``value`` is None when either side has no data."""
    bv, bw = _finite(baseline, baseline_weights)
    cv, cw = _finite(current, current_weights)
    if bv.size == 0 or cv.size == 0:
        return FeatureDrift(
            feature, "numeric", "js_divergence", None, float(bw.sum()), float(cw.sum())
        )
    edges = quantile_edges(bv, bins=bins, weights=bw)
    p = smooth(histogram(bv, edges, bw), epsilon)
    q = smooth(histogram(cv, edges, cw), epsilon)
    labels = (*(f"≤{e:g}" for e in edges), f">{edges[-1]:g}")
    return FeatureDrift(
        feature,
        "numeric",
        "js_divergence",
        jensen_shannon(p, q, base=base),
        float(bw.sum()),
        float(cw.sum()),
        labels,
        tuple(float(x) for x in p),
        tuple(float(x) for x in q),
    )


def category_counts(values: Iterable[Hashable], weights: ArrayLike | None = None) -> pd.Series:
    """Weighted count per category (as text); missing values are a category of their own."""
    s = pd.Series(list(values), dtype=object)
    s = s.where(s.notna(), MISSING).map(str)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float).ravel()
    if len(w) != len(s):
        raise ValueError("weights and values differ in length")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    counts = pd.Series(w, index=s.to_numpy()).groupby(level=0).sum()
    return counts[counts > 0].sort_index()


def category_frequencies(values: Iterable[Hashable], weights: ArrayLike | None = None) -> pd.Series:
    """Relative frequency per category (empty when there is no weight at all)."""
    counts = category_counts(values, weights)
    total = counts.sum()
    return counts / total if total > 0 else counts


def linf_distance(p: pd.Series, q: pd.Series) -> float:
    """max over categories of |p(c) - q(c)|; a category absent on one side has probability 0."""
    p2, q2 = p.align(q, fill_value=0.0)
    if p2.empty:
        return 0.0
    return float((p2 - q2).abs().max())


def categorical_drift(
    feature: str,
    baseline: Iterable[Hashable],
    current: Iterable[Hashable],
    *,
    baseline_weights: ArrayLike | None = None,
    current_weights: ArrayLike | None = None,
) -> FeatureDrift:
    """The L-infinity distance with both frequency vectors; None when either side is empty."""
    bc = category_counts(baseline, baseline_weights)
    cc = category_counts(current, current_weights)
    bn, cn = float(bc.sum()), float(cc.sum())
    if bn <= 0 or cn <= 0:
        return FeatureDrift(feature, "categorical", "linf_distance", None, bn, cn)
    p, q = bc / bn, cc / cn
    p2, q2 = p.align(q, fill_value=0.0)
    return FeatureDrift(
        feature,
        "categorical",
        "linf_distance",
        linf_distance(p, q),
        bn,
        cn,
        tuple(str(x) for x in p2.index),
        tuple(float(x) for x in p2),
        tuple(float(x) for x in q2),
    )


def linf_distance_categorical(
    baseline: Iterable[Hashable],
    current: Iterable[Hashable],
    *,
    baseline_weights: ArrayLike | None = None,
    current_weights: ArrayLike | None = None,
) -> float:
    """L-infinity distance between the category frequencies of two samples."""
    return categorical_drift(
        "value",
        baseline,
        current,
        baseline_weights=baseline_weights,
        current_weights=current_weights,
    ).value_or_raise()
