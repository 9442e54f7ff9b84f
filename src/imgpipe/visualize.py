"""Pictures people look at instead of reading numbers: image grids and class-count bars.

Grids are plain PIL; only the bar chart imports matplotlib, inside the function, so a
stage that draws grids alone never pays for loading it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imgpipe.storage import atomic_path


def _to_pil(image: np.ndarray, cell: int) -> Image.Image:
    image = np.asarray(image)
    pil = Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image)
    # Nearest keeps small images crisp: a 32 px digit should look like its pixels.
    return pil.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST)


def image_grid(rows: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str], cell: int = 96) -> Image.Image:
    """A labelled grid: one row per entry in ``rows``, images left to right."""
    label_w, label_h, pad = 70, 18, 4
    ncols = max((len(r) for r in rows), default=0)
    width = label_w + ncols * (cell + pad) + pad
    height = label_h + len(rows) * (cell + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(col_labels[:ncols]):
        draw.text((label_w + pad + c * (cell + pad), 3), text, fill="black")
    for r, (images, text) in enumerate(zip(rows, row_labels)):
        y = label_h + pad + r * (cell + pad)
        draw.text((4, y + cell // 2 - 6), text[:18], fill="black")
        for c, image in enumerate(images):
            canvas.paste(_to_pil(image, cell), (label_w + pad + c * (cell + pad), y))
    return canvas


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        image.save(tmp, format="PNG", optimize=False)


def class_samples(images: np.ndarray, labels: np.ndarray, classes: list[str], per_class: int = 8) -> Image.Image:
    """One row per class with its first ``per_class`` images: a quick look at what each label means."""
    rows, names = [], []
    labels = np.asarray(labels)
    for label, name in enumerate(classes):
        members = np.flatnonzero(labels == label)
        rows.append([np.asarray(images[i]) for i in members[:per_class]])
        names.append(f"{name} ({len(members)})")
    return image_grid(rows, names, [str(k + 1) for k in range(per_class)], cell=64)


def plot_class_counts(before: dict[str, int], after: dict[str, int], title: str, path: Path) -> None:
    """Grouped bars of images per class before and after balancing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(before)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(names) + 2), 3.6), dpi=100)
    ax.bar(x - 0.2, [before[n] for n in names], width=0.4, label="before", color="#9aa5b1")
    ax.bar(x + 0.2, [after[n] for n in names], width=0.4, label="after", color="#2f6fbd")
    ax.set_xticks(x, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("training images")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)


def text_card(message: str, width: int = 420, height: int = 60) -> Image.Image:
    """A small picture that says why there is nothing to show, so a PNG output always exists."""
    canvas = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(canvas).text((10, height // 2 - 6), message, fill="black")
    return canvas


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)


def plot_training_curves(history, best_epoch: int, path: Path) -> None:
    """Loss and accuracy per epoch, train against val, with the restored epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.plot(history["epoch"], history[f"train_{metric}"], marker="o", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], marker="o", label="val")
        if metric == "accuracy":
            ax.plot(history["epoch"], history["val_balanced_accuracy"], marker=".", linestyle="--", label="val balanced")
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.legend(fontsize=8)
    _save_figure(fig, path)


def captioned_grid(images: list[np.ndarray], captions: list[str], per_row: int = 8, cell: int = 96) -> Image.Image:
    """Images in rows of ``per_row``, each with a caption line above it."""
    if not images:
        return text_card("nothing to show: no misclassified images")
    caption_h, pad = 14, 4
    rows = -(-len(images) // per_row)
    cols = min(per_row, len(images))
    canvas = Image.new("RGB", (pad + cols * (cell + pad), pad + rows * (cell + caption_h + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x = pad + (i % per_row) * (cell + pad)
        y = pad + (i // per_row) * (cell + caption_h + pad)
        draw.text((x, y), caption[: cell // 6], fill="black")
        canvas.paste(_to_pil(image, cell), (x, y + caption_h))
    return canvas
