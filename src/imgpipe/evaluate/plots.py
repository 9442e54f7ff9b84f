"""The evaluate stage's pictures: the confusion matrix, the training curves and the mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import confusion_matrix

from imgpipe.viz.figure import new_figure, save_figure
from imgpipe.viz.grids import captioned_grid


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    # Row-normalised colours make rare classes as readable as common ones; cells show counts.
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(classes) + 2)
    fig, ax = new_figure(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    if len(classes) <= 30:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    save_figure(fig, path)


def plot_training_curves(history: pd.DataFrame, best_epoch: int | None, path: Path) -> None:
    """Loss and accuracy per epoch, train against val, with the restored epoch marked (when known)."""
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, acc_ax) = new_figure(1, 2, figsize=(9, 3.4))
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.plot(history["epoch"], history[f"train_{metric}"], marker="o", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], marker="o", label="val")
        if metric == "accuracy":
            ax.plot(
                history["epoch"], history["val_balanced_accuracy"], marker=".", linestyle="--", label="val balanced"
            )
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def mistakes_grid(
    images: np.ndarray, labels: np.ndarray, proba: np.ndarray, worst: np.ndarray, classes: list[str]
) -> Image.Image:
    """The given mistakes, each captioned true>predicted and the model's confidence."""
    predicted = proba.argmax(axis=1)
    captions = [f"{classes[labels[i]]}>{classes[predicted[i]]} {proba[i].max():.2f}" for i in worst]
    return captioned_grid([np.asarray(images[i]) for i in worst], captions)
