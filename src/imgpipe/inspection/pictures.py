"""The inspection pictures: Grad-CAM overlays and titled sections (captioned grids are ``viz.grids``')."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from imgpipe.viz.grids import to_pil

CELL = 112  # px per image: a 32 px image at 3.5x, and room for a caption of ~18 characters
LINE = 12  # px per caption line (PIL's default bitmap font)
PAD = 4


def overlay(image: np.ndarray, cam: np.ndarray, cell: int = CELL, alpha: float = 0.45) -> np.ndarray:
    """``image`` with the heat map ``cam`` (H x W, 0..1) in the jet colours blended over it."""
    import matplotlib

    base = np.asarray(to_pil(image, cell), dtype=np.float32)
    heat = Image.fromarray(np.uint8(np.clip(cam, 0, 1) * 255)).resize((cell, cell), Image.Resampling.BILINEAR)
    colours = matplotlib.colormaps["jet"](np.asarray(heat) / 255.0)[..., :3] * 255
    return np.uint8((1 - alpha) * base + alpha * colours)


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
