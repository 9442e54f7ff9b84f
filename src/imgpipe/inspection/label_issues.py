"""Likely label errors: out-of-fold class probabilities from the features, ranked by cleanlab.

Each image's probabilities come from a logistic regression fitted on the *other* folds,
so an image never votes on its own label; cleanlab's confident learning then flags the
images whose given label those probabilities disbelieve, least self-confident first.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from imgpipe.errors import ImgpipeError


def check_folds(labels: np.ndarray, classes: list[str], folds: int) -> None:
    """Stratified K-fold needs K images of every class present; say which class falls short."""
    if folds < 2:
        raise ImgpipeError(f"--folds {folds}: cross-validation needs at least 2 folds; use --folds 5.")
    present, counts = np.unique(labels, return_counts=True)
    if len(present) < 2:
        raise ImgpipeError("the data holds one class only: label errors need at least two classes to tell apart.")
    smallest = int(np.argmin(counts))
    if counts[smallest] < folds:
        raise ImgpipeError(
            f"--folds {folds}: class {classes[present[smallest]]!r} has only {counts[smallest]} "
            f"images; use --folds {max(2, int(counts[smallest]))} or fewer."
        )


def out_of_fold_proba(features: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N, classes present) probabilities, each row from a model that did not see that image.

    Columns follow ``np.unique(labels)``. Features are standardised inside each fold, so
    the penalty treats them alike and L-BFGS converges in a few hundred steps.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Not quite converged still ranks the images the same way: no warning per fold.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cross_val_predict(model, features, labels, cv=splitter, method="predict_proba")


def rank_label_issues(labels: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(issue indices, worst first; suggested label of each image; self-confidence of each image).

    ``proba``'s columns are the classes present in ``labels`` (see ``out_of_fold_proba``);
    cleanlab wants labels 0..K-1, so they are renumbered for it and back.
    """
    from cleanlab.filter import find_label_issues

    present, dense = np.unique(labels, return_inverse=True)
    # n_jobs=1: cleanlab's worker processes cost more than they save at these sizes, and
    # forking a process that holds torch's threads is asking for trouble.
    issues = find_label_issues(dense, proba, return_indices_ranked_by="self_confidence", n_jobs=1)
    suggested = present[proba.argmax(axis=1)]
    self_confidence = proba[np.arange(len(dense)), dense]
    return np.asarray(issues, dtype=np.int64), suggested, self_confidence


def issue_table(
    index: pd.DataFrame, classes: list[str], issues: np.ndarray, suggested: np.ndarray, self_confidence: np.ndarray
) -> pd.DataFrame:
    """One row per likely error, ranked: where it is, its id, given and suggested class, score."""
    rows = index.iloc[issues]
    table = pd.DataFrame(
        {"rank": np.arange(1, len(issues) + 1), "split": rows["split"].to_numpy(), "row": rows["row"].to_numpy()}
    )
    for column in ("id", "file"):
        if column in rows.columns:
            table[column] = rows[column].to_numpy()
    table["given"] = [classes[y] for y in rows["label"]]
    table["suggested"] = [classes[y] for y in suggested[issues]]
    table["self_confidence"] = np.round(self_confidence[issues], 6)
    return table


def find_issues(features: np.ndarray, index: pd.DataFrame, classes: list[str], folds: int, seed: int) -> pd.DataFrame:
    """The ranked table of likely label errors among the images in ``index``."""
    labels = index["label"].to_numpy(dtype=np.int64)
    check_folds(labels, classes, folds)
    proba = out_of_fold_proba(features, labels, folds, seed)
    issues, suggested, self_confidence = rank_label_issues(labels, proba)
    return issue_table(index, classes, issues, suggested, self_confidence)


def per_split_counts(table: pd.DataFrame, splits: list[str]) -> dict[str, int]:
    counts = table["split"].value_counts()
    return {name: int(counts.get(name, 0)) for name in splits}
