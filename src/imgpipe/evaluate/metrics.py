"""The numbers that say how good a model is, per class too; pictures are in ``plots``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from imgpipe.evaluate.intervals import recall_interval

# The scores that sum a model up: rolled up onto the pipeline's MLflow run, and the rows of
# `imgpipe report`'s table.
HEADLINE = ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc_ovr", "log_loss", "ece"]


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Every metric of a classifier from its class probabilities.

    Accuracy; balanced accuracy and macro F1, which weigh every class equally and so show
    what plain accuracy hides on long-tailed data; weighted F1; per-class precision,
    recall (with its Wilson 95% interval), F1 and support; one-vs-rest ROC-AUC (macro);
    log loss; and expected calibration error, how far confidence is from accuracy.

    A class the split has no images of has no recall: its recall, F1 and interval are
    None (not a 0 that reads as a failure), and macro F1 averages the classes present.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    y_pred = proba.argmax(axis=1)
    labels = np.arange(len(classes))
    present = np.unique(y_true)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    r = lambda v: round(float(v), 6)  # noqa: E731 - stable, diff-friendly numbers
    with warnings.catch_warnings():  # a class the split lacks: evaluate says so itself, in one sentence
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": r(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": r(balanced),
        "f1_macro": r(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "f1_weighted": r(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "roc_auc_ovr": r(roc_auc(y_true, proba)),
        "log_loss": r(log_loss(y_true, proba / proba.sum(axis=1, keepdims=True), labels=labels)),
        "ece": r(expected_calibration_error(y_true, proba)),
        "per_class": {
            name: _class_scores(r(p), r(rc), r(f), int(s), predicted=bool((y_pred == c).any()))
            for c, (name, p, rc, f, s) in enumerate(zip(classes, precision, recall, f1, support))
        },
    }


def _class_scores(precision: float, recall: float, f1: float, support: int, predicted: bool) -> dict[str, Any]:
    """One class's row; with no images of it, only a precision (when it was ever predicted) means anything."""
    if support == 0:
        return {
            "precision": precision if predicted else None,
            "recall": None,
            "f1": None,
            "support": 0,
            "recall_ci95_low": None,
            "recall_ci95_high": None,
        }
    low, high = recall_interval(int(round(recall * support)), support)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "recall_ci95_low": low,
        "recall_ci95_high": high,
    }


def absent_classes(per_class: dict[str, dict[str, Any]]) -> list[str]:
    """The classes a split has no images of, from classification_metrics' per-class block."""
    return [name for name, row in per_class.items() if row["support"] == 0]


def per_class_table(per_class: dict[str, dict[str, float]]) -> pd.DataFrame:
    """classification_metrics' per-class block as a table, one row per class."""
    return pd.DataFrame([{"class": name, **values} for name, values in per_class.items()])


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest ROC-AUC over the classes present; NaN with fewer than two."""
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    scores = [roc_auc_score(y_true == c, proba[:, c]) for c in present]
    return float(np.mean(scores))


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def curves(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], points: int = 101
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class one-vs-rest ROC and precision-recall curves on a fixed grid.

    A fixed grid keeps the plot files small and stable (a few thousand rows whatever the
    test size) and lets DVC overlay two experiments point for point.
    """
    grid = np.linspace(0, 1, points)
    roc_rows, pr_rows = [], []
    for c, name in enumerate(classes):
        positive = y_true == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, c])
        roc_rows.append(pd.DataFrame({"class": name, "fpr": grid, "tpr": np.interp(grid, fpr, tpr).round(6)}))
        precision, recall, _ = precision_recall_curve(positive, proba[:, c])
        # Interpolated precision: the best precision at this recall or beyond.
        best = np.maximum.accumulate(precision[::-1])[::-1]
        order = np.argsort(recall)
        pr_rows.append(
            pd.DataFrame(
                {"class": name, "recall": grid, "precision": np.interp(grid, recall[order], best[order]).round(6)}
            )
        )
    empty_roc, empty_pr = (
        pd.DataFrame(columns=["class", "fpr", "tpr"]),
        pd.DataFrame(columns=["class", "recall", "precision"]),
    )
    return (
        pd.concat(roc_rows, ignore_index=True) if roc_rows else empty_roc,
        pd.concat(pr_rows, ignore_index=True) if pr_rows else empty_pr,
    )


def most_confident_mistakes(y_true: np.ndarray, proba: np.ndarray, count: int = 16) -> np.ndarray:
    """Indices of wrong predictions, most confident first."""
    wrong = np.flatnonzero(proba.argmax(axis=1) != y_true)
    return wrong[np.argsort(-proba[wrong].max(axis=1), kind="stable")][:count]


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per image with actual and predicted class names, for DVC's confusion plot."""
    return pd.DataFrame({"actual": [classes[i] for i in y_true], "predicted": [classes[i] for i in y_pred]})


def summary_line(split: str, m: dict[str, Any]) -> str:
    """The headline metrics of one split, for the console, with their 95% intervals when known."""

    def with_ci(name: str) -> str:
        low, high = m.get(f"{name}_ci95_low"), m.get(f"{name}_ci95_high")
        return f"{m[name]:.4f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")

    return (
        f"{split}: accuracy {with_ci('accuracy')}, balanced accuracy {with_ci('balanced_accuracy')}, "
        f"macro F1 {m['f1_macro']:.4f}, ROC-AUC {m['roc_auc_ovr']:.4f}, log loss {m['log_loss']:.4f}, ECE {m['ece']:.4f}"
    )
