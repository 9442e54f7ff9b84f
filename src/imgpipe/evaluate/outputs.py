"""evaluate's files for people and for `dvc plots`: the tables of recall by class, the
confusion matrix, ROC and precision-recall curves, and the pictures."""

from __future__ import annotations

import numpy as np

from imgpipe.evaluate.metrics import confusion_table, curves, most_confident_mistakes, per_class_table
from imgpipe.evaluate.plots import mistakes_grid, plot_confusion_matrix, plot_training_curves
from imgpipe.params.evaluate import EvaluateConfig
from imgpipe.paths import Paths
from imgpipe.store import history
from imgpipe.store.atomic import write_csv
from imgpipe.store.dataset import Split
from imgpipe.viz.grids import save_png


def write_tables(paths: Paths, test: Split, proba: np.ndarray, classes: list[str], per_class: dict) -> None:
    """The DVC plot files: recall by class, the confusion matrix, ROC and PR curves (test)."""
    roc, pr = curves(test.labels, proba, classes)
    write_csv(paths.per_class_csv, per_class_table(per_class))
    write_csv(paths.confusion_csv, confusion_table(test.labels, proba.argmax(axis=1), classes))
    write_csv(paths.roc_csv, roc)
    write_csv(paths.pr_csv, pr)


def draw(
    paths: Paths,
    cfg: EvaluateConfig,
    test: Split,
    proba: np.ndarray,
    classes: list[str],
    scores: dict,
    trained_in: dict,
) -> int:
    """The confusion matrix, the mistakes the model was surest about (mislabelled images
    and real blind spots) and the training curves; returns how many mistakes it shows."""
    title = f"test: accuracy {scores['accuracy']:.3f}, balanced {scores['balanced_accuracy']:.3f}"
    plot_confusion_matrix(test.labels, proba.argmax(axis=1), classes, paths.confusion_png, title=title)
    worst = most_confident_mistakes(test.labels, proba, cfg.misclassified)
    save_png(mistakes_grid(test.images, test.labels, proba, worst, classes), paths.misclassified_png)
    plot_training_curves(history.read(paths.train_history), trained_in.get("best_epoch"), paths.training_curves)
    return len(worst)
