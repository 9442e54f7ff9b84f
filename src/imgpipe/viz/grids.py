"""Image grids people look at instead of reading numbers: samples, previews, mistakes.

Plain PIL, no matplotlib, so a stage that draws grids alone never pays for loading it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imgpipe.store.atomic import atomic_path


def to_pil(image: np.ndarray, cell: int) -> Image.Image:
    """A uint8 HWC image (1 or 3 channels) as an RGB picture of ``cell`` px square."""
    image = np.asarray(image)
    pil = Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image)
    # Nearest keeps small images crisp: a 32 px digit should look like its pixels.
    return pil.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST)


def image_grid(
    rows: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str], cell: int = 96
) -> Image.Image:
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
            canvas.paste(to_pil(image, cell), (label_w + pad + c * (cell + pad), y))
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


def text_card(message: str, width: int = 420, height: int = 60) -> Image.Image:
    """A small picture that says why there is nothing to show, so a PNG output always exists."""
    canvas = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(canvas).text((10, height // 2 - 6), message, fill="black")
    return canvas


def pair_grid(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    captions: list[tuple[str, str]],
    empty: str,
    per_row: int = 3,
    cell: int = 128,
) -> Image.Image:
    """Pairs of images side by side, ``per_row`` pairs to a row, each image captioned."""
    if not pairs:
        return text_card(empty)
    images = [image for pair in pairs for image in pair]
    return captioned_grid(images, [c for both in captions for c in both], per_row=2 * per_row, cell=cell)


def captioned_grid(
    images: list[np.ndarray],
    captions: list[str] | list[list[str]],
    per_row: int = 8,
    cell: int = 96,
    empty: str = "nothing to show: no misclassified images",
) -> Image.Image:
    """Images in rows of ``per_row``, each under its caption: a line, or a list of lines."""
    if not images:
        return text_card(empty)
    captions = [[c] if isinstance(c, str) else list(c) for c in captions]
    line, pad = 12, 4  # PIL's default bitmap font is 11 px high and 6 px wide
    caption_h = max(len(c) for c in captions) * line + 2
    rows, cols = -(-len(images) // per_row), min(per_row, len(images))
    canvas = Image.new("RGB", (pad + cols * (cell + pad), pad + rows * (cell + caption_h + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x = pad + (i % per_row) * (cell + pad)
        y = pad + (i // per_row) * (cell + caption_h + pad)
        for k, text in enumerate(caption):
            draw.text((x, y + k * line), text[: cell // 6], fill="black")  # longer captions are cut
        canvas.paste(to_pil(image, cell), (x, y + caption_h))
    return canvas
