"""How sure the numbers are: on a test split of a few dozen images, one image moves a
recall by several points, so a score without its spread misleads.

Whole-split scores get a percentile bootstrap interval (scipy's ``bootstrap``, resampling
images with their predictions, seeded); each class's recall, a proportion of that class's
images, gets a Wilson score interval, which stays sensible at 0 of 3 or 5 of 5.
"""

from __future__ import annotations

import warnings

import numpy as np

LEVEL = 0.95  # the intervals' confidence level: "ci95" in metric names


def bootstrap_intervals(y_true: np.ndarray, y_pred: np.ndarray, resamples: int, seed: int) -> dict[str, float]:
    """``{accuracy_ci95_low, accuracy_ci95_high, balanced_accuracy_ci95_low, ...}``."""
    from scipy.stats import bootstrap

    out: dict[str, float] = {}
    if resamples == 0 or len(y_true) < 2:
        return out
    data = (np.asarray(y_true), np.asarray(y_pred))
    for name, score in (("accuracy", _accuracy), ("balanced_accuracy", _balanced_accuracy)):
        # Resamples in batches of about a million labels: memory stays that, whatever the split.
        batch = max(1, min(100, 2**20 // len(y_true)))
        result = bootstrap(
            data,
            score,
            paired=True,
            vectorized=True,
            batch=batch,
            n_resamples=resamples,
            confidence_level=LEVEL,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        low, high = result.confidence_interval
        out[f"{name}_ci95_low"], out[f"{name}_ci95_high"] = round(float(low), 6), round(float(high), 6)
    return out


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y_true == y_pred, axis=axis)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    """sklearn's balanced accuracy (mean recall over the classes present), for many resamples at once."""
    recalls = []
    for c in np.unique(y_true):
        members = y_true == c
        count = members.sum(axis=axis)
        hits = (members & (y_pred == c)).sum(axis=axis)
        recalls.append(np.where(count > 0, hits / np.maximum(count, 1), np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample holding no class at all: NaN
        return np.nanmean(np.stack(recalls), axis=0)


def recall_interval(correct: int, total: int) -> tuple[float, float]:
    """Wilson score interval for a recall of ``correct`` out of ``total`` images; NaN for none."""
    if total == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(correct, total).proportion_ci(confidence_level=LEVEL, method="wilson")
    return round(float(ci.low), 6), round(float(ci.high), 6)
