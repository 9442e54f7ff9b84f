"""The balance stage's pictures: class counts before and after, and its synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imgpipe.viz.figure import new_figure, save_figure
from imgpipe.viz.grids import image_grid, text_card

PREVIEW = 6  # synthetic images shown per class


def plot_class_counts(before: dict[str, int], after: dict[str, int], title: str, path: Path) -> None:
    """Grouped bars of images per class before and after balancing."""
    names = list(before)
    x = np.arange(len(names))
    fig, ax = new_figure(figsize=(max(5.0, 0.6 * len(names) + 2), 3.6))
    ax.bar(x - 0.2, [before[n] for n in names], width=0.4, label="before", color="#9aa5b1")
    ax.bar(x + 0.2, [after[n] for n in names], width=0.4, label="after", color="#2f6fbd")
    ax.set_xticks(x, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("training images")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)


def synthetic_preview(images: np.ndarray, labels: np.ndarray, source: np.ndarray, classes: list[str]) -> Image.Image:
    """Per class: an original, then the first synthetic images made for it (if any)."""
    rows, names = [], []
    for label, name in enumerate(classes):
        made = np.flatnonzero((labels == label) & (source < 0))[:PREVIEW]
        originals = np.flatnonzero((labels == label) & (source >= 0))[:1]
        if len(made):
            rows.append([images[i] for i in np.concatenate([originals, made])])
            names.append(name)
    if not rows:
        return text_card("this balance.method makes no synthetic images")
    return image_grid(rows, names, ["original"] + [f"synthetic {k + 1}" for k in range(PREVIEW)])
