"""What ``imgpipe init`` learns about a folder before it chooses: classes, sizes and colour.

It reads the folder as ingest would (``scan_folder``) and opens a seeded sample of the
files, at most a few hundred, so that a folder of a million images is profiled in seconds.
"""

from __future__ import annotations

import random
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgpipe.errors import ImgpipeError
from imgpipe.ingest.sources import scan_folder

# JPEG's chroma subsampling leaves gray photos a little off-gray; more than this mean
# difference between channels (of 255) is colour.
GRAY_TOLERANCE = 3.0
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass(frozen=True)
class FolderProfile:
    folder: Path
    counts: dict[str, int]  # images per class, in the train split when the folder is pre-split
    presplit: bool  # train/ (and val/, test/) folders: ingest keeps that split
    files: int  # image files in every split
    sampled: int  # files opened to measure sizes and colour
    short_side: int  # the median shorter side of the sampled images, in pixels
    long_side: int  # the median longer side
    gray: bool  # every sampled image (but a few) is gray: one channel loses nothing

    @property
    def imbalance(self) -> float:
        return max(self.counts.values()) / max(1, min(self.counts.values()))

    def describe(self) -> str:
        classes = ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items(), key=lambda kv: -kv[1])[:6])
        more = f", ... ({len(self.counts)} classes)" if len(self.counts) > 6 else ""
        where = "in train/" if self.presplit else "in all"
        return (
            f"{self.folder}: {len(self.counts)} classes, {sum(self.counts.values())} images {where} "
            f"({classes}{more}; largest/smallest {self.imbalance:.1f}); median size "
            f"{self.long_side}x{self.short_side} px, {'gray' if self.gray else 'colour'} "
            f"(from {self.sampled} sampled files)"
        )


def profile_folder(folder: Path, sample: int = 300, seed: int = 0) -> FolderProfile:
    """Count the classes of ``folder`` and measure a seeded sample of its images."""
    if not folder.is_dir():
        raise ImgpipeError(
            f"imgpipe init: {folder} is not a folder; give a folder of class folders "
            "(<folder>/<class>/<image>, or pre-split as <folder>/train/<class>/<image>)."
        )
    found = scan_folder(folder)
    presplit = any(c.split for c in found)
    counts = Counter(c.class_name for c in found if c.split in ("", "train"))
    if len(counts) < 2:
        raise ImgpipeError(
            f"imgpipe init: {folder} holds {len(counts)} class folder(s) with images; a classifier "
            "needs at least two (<folder>/<class>/<image>)."
        )
    picked = random.Random(seed).sample(found, min(sample, len(found)))
    sizes, grays = [], []
    for candidate in picked:
        measured = _measure(candidate.path)
        if measured is not None:
            sizes.append(measured[0])
            grays.append(measured[1])
    if not sizes:
        raise ImgpipeError(
            f"imgpipe init: none of the {len(picked)} sampled files of {folder} could be read as an "
            "image; check that the class folders hold image files."
        )
    return FolderProfile(
        folder,
        dict(sorted(counts.items())),
        presplit,
        len(found),
        len(sizes),
        int(statistics.median(min(s) for s in sizes)),
        int(statistics.median(max(s) for s in sizes)),
        sum(grays) >= 0.95 * len(grays),
    )


def _measure(path: Path) -> tuple[tuple[int, int], bool] | None:
    """(width, height) and whether the image is gray; None for a file PIL cannot read."""
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore")  # EXIF and palette warnings say nothing about size or colour
            size = image.size
            if image.mode in GRAY_MODES:
                return size, True
            image.draft("RGB", (64, 64))  # JPEG: decode at a fraction of the size, enough to judge colour
            pixels = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    spread = max(np.abs(pixels[..., 0] - pixels[..., 1]).mean(), np.abs(pixels[..., 0] - pixels[..., 2]).mean())
    return size, bool(spread <= GRAY_TOLERANCE)
