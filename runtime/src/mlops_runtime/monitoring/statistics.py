"""Drift statistics with NumPy and SciPy, on a reference side precomputed in the model's profile.

Decisions use effect sizes, which do not grow with the window: PSI on the reference's
quantile bins, and the Wasserstein distance normalised by the reference's standard deviation
(numeric) or the Jensen-Shannon distance (categorical). p-values (Kolmogorov-Smirnov,
chi-square) are reported beside them, never alone: on large windows they flag shifts too small
to matter. Each function matches SciPy's reference implementation on the same data (tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Floor for empty bins, so PSI stays finite (the usual choice in PSI implementations).
EMPTY_BIN = 1e-4


def quantile_edges(values: NDArray[np.float64], bins: int) -> NDArray[np.float64]:
    """Interior bin edges at the reference's quantiles: each bin holds about the same share of it."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.array([], dtype=np.float64)
    return np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def bin_counts(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """Counts of the finite values in the bins edges define: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    finite = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(edges, finite, side="left"), minlength=edges.size + 1).astype(np.int64)


def category_counts(values: Any, categories: list[str]) -> NDArray[np.int64]:
    """Counts per category (compared as text), in `categories` order; missing values are not counted.

    Counts the distinct values first and converts only those to text: a window of a million
    rows is never copied.
    """
    import pandas as pd

    distinct = pd.Series(values).value_counts(dropna=True)
    counts = distinct.groupby(distinct.index.astype(str)).sum()
    return np.array([int(counts.get(category, 0)) for category in categories], dtype=np.int64)


def shares(counts: NDArray[np.int64]) -> NDArray[np.float64]:
    total = counts.sum()
    return counts / total if total else np.zeros(counts.size)


def psi(reference: NDArray[np.int64], current: NDArray[np.int64]) -> float:
    """Population stability index of two count vectors over the same bins."""
    p = np.clip(shares(reference), EMPTY_BIN, None)
    q = np.clip(shares(current), EMPTY_BIN, None)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: NDArray[np.int64], current: NDArray[np.int64]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors; scipy.spatial.distance.jensenshannon."""
    p, q = shares(reference), shares(current)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(np.sqrt(max(0.0, (left.sum() + right.sum()) / 2)))


def wasserstein(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """First Wasserstein distance of two samples; scipy.stats.wasserstein_distance."""
    a, b = np.sort(reference[np.isfinite(reference)]), np.sort(current[np.isfinite(current)])
    if a.size == 0 or b.size == 0:
        return 0.0
    points = np.concatenate([a, b])
    points.sort(kind="mergesort")
    widths = np.diff(points)
    cdf_a = np.searchsorted(a, points[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, points[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def ks_pvalue(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Two-sample Kolmogorov-Smirnov p-value; reported, never the decision."""
    from scipy import stats

    a, b = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if a.size == 0 or b.size == 0:
        return 1.0
    return float(stats.ks_2samp(a, b).pvalue)


def chi_square_pvalue(reference: NDArray[np.int64], current: NDArray[np.int64]) -> float:
    """Chi-square goodness-of-fit p-value of current counts against the reference's shares."""
    from scipy import stats

    if current.sum() == 0:
        return 1.0
    expected = np.clip(shares(reference), EMPTY_BIN, None)
    expected = expected / expected.sum() * current.sum()
    return float(stats.chisquare(current, expected).pvalue)


def expected_accuracy(proba: np.ndarray) -> float:
    """A calibrated model is right as often as its top probability says."""
    return float(proba.max(axis=1).mean())


def expected_roc_auc(positive: np.ndarray) -> float:
    """ROC AUC expected from calibrated positive-class probabilities (each row is positive with its probability)."""
    ranked = np.sort(positive)[::-1]
    true_positives = np.concatenate([[0.0], np.cumsum(ranked)])
    false_positives = np.concatenate([[0.0], np.cumsum(1.0 - ranked)])
    if true_positives[-1] == 0 or false_positives[-1] == 0:
        return 0.5
    return float(np.trapezoid(true_positives / true_positives[-1], false_positives / false_positives[-1]))
