"""The inspection grids: images captioned on two lines, Grad-CAM overlays, titled sections."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

CELL = 112  # px per image: a 32 px image at 3.5x, and room for a caption of ~18 characters
LINE = 12  # px per caption line (PIL's default bitmap font)
PAD = 4


def to_rgb(image: np.ndarray, cell: int = CELL) -> np.ndarray:
    """A uint8 HWC image (1 or 3 channels) as RGB at ``cell`` px; nearest keeps small images crisp."""
    image = np.asarray(image)
    pil = Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image).convert("RGB")
    return np.asarray(pil.resize((cell, cell), Image.Resampling.NEAREST))


def overlay(image: np.ndarray, cam: np.ndarray, cell: int = CELL, alpha: float = 0.45) -> np.ndarray:
    """``image`` with the heat map ``cam`` (H x W, 0..1) in the jet colours blended over it."""
    import matplotlib

    base = to_rgb(image, cell).astype(np.float32)
    heat = Image.fromarray(np.uint8(np.clip(cam, 0, 1) * 255)).resize((cell, cell), Image.Resampling.BILINEAR)
    colours = matplotlib.colormaps["jet"](np.asarray(heat) / 255.0)[..., :3] * 255
    return np.uint8((1 - alpha) * base + alpha * colours)


def captioned_grid(images: list[np.ndarray], captions: list[list[str]], per_row: int = 8,
                   cell: int = CELL) -> Image.Image:
    """Images in rows of ``per_row`` (RGB at ``cell`` px, or any uint8 HWC), each under its caption lines."""
    lines = max((len(c) for c in captions), default=1)
    cols, rows = max(1, min(per_row, len(images))), max(1, -(-len(images) // per_row))
    height = lines * LINE + cell
    canvas = Image.new("RGB", (PAD + cols * (cell + PAD), PAD + rows * (height + PAD)), "white")
    draw = ImageDraw.Draw(canvas)
    chars = cell // 6  # the default font is 6 px wide: longer captions are cut
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = PAD + (i % per_row) * (cell + PAD), PAD + (i // per_row) * (height + PAD)
        for k, text in enumerate(caption):
            draw.text((x, y + k * LINE), text[:chars], fill="black")
        picture = np.asarray(image)
        if picture.shape[:2] != (cell, cell) or picture.shape[-1] != 3:
            picture = to_rgb(picture, cell)
        canvas.paste(Image.fromarray(picture), (x, y + lines * LINE))
    return canvas


def sections(parts: list[tuple[str, Image.Image]]) -> Image.Image:
    """Grids one above the other, each under its title line."""
    title = 2 * LINE
    width = max(grid.width for _, grid in parts)
    canvas = Image.new("RGB", (width, sum(title + grid.height for _, grid in parts)), "white")
    draw, y = ImageDraw.Draw(canvas), 0
    for text, grid in parts:
        draw.text((PAD, y + LINE // 2), text, fill="black")
        canvas.paste(grid, (0, y + title))
        y += title + grid.height
    return canvas
