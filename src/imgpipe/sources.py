"""Data sources: where labelled images come from, decoded to uint8 at the target size.

Every source returns the same thing, a ``SourceImages``, so the ingest stage never cares
where pixels came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from imgpipe.config import IngestConfig
from imgpipe.errors import ImgpipeError
from imgpipe.storage import pixel_hash


@dataclass
class SourceImages:
    images: np.ndarray  # (N, H, W, C) uint8 at the configured size and channels
    labels: np.ndarray  # (N,) int64, indices into ``classes``
    classes: list[str]
    ids: list[str]  # stable identifiers, e.g. a relative path
    sha256: list[str]  # content hashes, for duplicate detection and the manifest


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    return image.convert("L" if channels == 1 else "RGB")


def as_array(image: Image.Image) -> np.ndarray:
    """PIL image to (H, W, C) uint8, keeping a channel axis for grayscale."""
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def load_digits_source(cfg: IngestConfig) -> SourceImages:
    """scikit-learn's handwritten digits: 1,797 real 8x8 scans shipped inside the package."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values run 0..16 (ink counts); stretch to the full uint8 range.
    small = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    size = (cfg.image_size, cfg.image_size)
    images = np.empty((len(small), cfg.image_size, cfg.image_size, cfg.channels), dtype=np.uint8)
    for i, pixels in enumerate(small):
        # Bicubic keeps strokes smooth when an 8x8 scan is blown up to 32x32 or more.
        resized = Image.fromarray(pixels, mode="L").resize(size, Image.Resampling.BICUBIC)
        images[i] = as_array(to_channels(resized, cfg.channels))
    return SourceImages(
        images=images,
        labels=bunch.target.astype(np.int64),
        classes=[str(name) for name in bunch.target_names],
        ids=[f"digits/{i:04d}" for i in range(len(small))],
        sha256=[pixel_hash(p) for p in small],
    )


def load_source(cfg: IngestConfig) -> SourceImages:
    loaders = {"digits": load_digits_source}
    try:
        loader = loaders[cfg.source]
    except KeyError:
        raise ImgpipeError(f"params.yaml: ingest.source: unknown source {cfg.source!r}") from None
    return loader(cfg)
