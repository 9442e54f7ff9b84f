"""Near duplicates across splits: the same picture resized, recompressed or slightly cropped.

Exact copies are removed before splitting (duplicates.py), but a scan saved twice at two
sizes, or a photo and its thumbnail, differ in every byte and can land in train and
test at once; the model is then scored on pictures it learned, and the test score is
inflated. That is the most common reason a reported score on a small medical or
industrial set is wrong.

Each image gets the perceptual hash imagehash's ``phash`` computes (64 bits: the signs of
the lowest 8x8 DCT frequencies of a 32x32 grayscale copy against their median) of the
whole image and of its central 90% and 80%. Two images are near duplicates when the
whole of one is within ``max_distance`` bits of the whole or a central crop of the
other. Measured on photos (BENCHMARKS.md, "Near duplicates and label errors"): halving
and recompressing a picture, or cropping up to 10% off every side, moves it 4 bits at
most, while distinct photos sit 10 or more apart; a crop of 10% or more off one side
only moves it about 16 and is not caught. Tiny images are closer: at 8x8, 8% of
scikit-learn's digits have another scan within 4 bits, two writers' strokes that alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy.fft import dct

CROPS = (1.0, 0.9, 0.8)  # the whole image and two central crops, each hashed
_BATCH = 1024


def perceptual_hashes(images: Any) -> np.ndarray:
    """(N, len(CROPS)) uint64 pHashes of uint8 (N, H, W, C) ``images``, read in batches."""
    out = np.empty((len(images), len(CROPS)), dtype=np.uint64)
    for start in range(0, len(images), _BATCH):
        block = np.asarray(images[start : start + _BATCH])
        small = np.stack([_small_crops(image) for image in block]).astype(np.float64)
        # Type-II DCT over rows then columns, as imagehash's phash (scipy.fftpack's default).
        low = dct(dct(small, axis=-2), axis=-1)[..., :8, :8].reshape(*small.shape[:2], 64)
        bits = low > np.median(low, axis=-1, keepdims=True)
        out[start : start + len(block)] = np.packbits(bits, axis=-1).view(">u8")[..., 0]
    return out


def _small_crops(image: np.ndarray) -> np.ndarray:
    """The 32x32 grayscale copies phash looks at, one per crop (PIL's L and Lanczos, as imagehash)."""
    pil = Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image).convert("L")
    w, h = pil.size
    boxes = [((w - w * f) / 2, (h - h * f) / 2, w - (w - w * f) / 2, h - (h - h * f) / 2) for f in CROPS]
    return np.stack([np.asarray(pil.resize((32, 32), Image.Resampling.LANCZOS, box=box)) for box in boxes])


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) bits apart: the whole of one against the whole or a crop of the other."""
    whole_a, whole_b = a[:, None, :1], b[None, :, :1]
    pairs = np.concatenate([whole_a ^ b[None, :, :], a[:, None, 1:] ^ whole_b], axis=-1)
    return np.bitwise_count(pairs).min(axis=-1)


def nearest(queries: np.ndarray, pool: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each query hash row: the closest row of ``pool`` and its distance (64 when empty)."""
    best = np.full(len(queries), 64, dtype=np.int64)
    where = np.full(len(queries), -1, dtype=np.int64)
    if not len(pool):
        return where, best
    for start in range(0, len(queries), chunk):
        d = distances(queries[start : start + chunk], pool)
        where[start : start + chunk], best[start : start + chunk] = d.argmin(axis=1), d.min(axis=1)
    return where, best


def find_leaks(
    parts: dict[str, np.ndarray], hashes: np.ndarray, ids: Sequence[str], max_distance: int, drop: bool
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Val and test images that nearly duplicate an image of an earlier split (train; for
    test, train and val), with the parts left after dropping them when ``drop``.

    ``parts`` maps split -> rows of ``hashes``/``ids``. Returns the new parts and one record
    per leak: the file, its split, the image it copies, that image's split and the distance.
    """
    parts, records = dict(parts), []
    for split, earlier in (("val", ("train",)), ("test", ("train", "val"))):
        rows = parts[split]
        pool = np.concatenate([parts[s] for s in earlier])
        origin = np.concatenate([np.full(len(parts[s]), s) for s in earlier])
        where, dist = nearest(hashes[rows], hashes[pool])
        leaked = np.flatnonzero(dist <= max_distance)
        for i in leaked:
            records.append(
                {
                    "file": ids[rows[i]],
                    "split": split,
                    "copy_of": ids[pool[where[i]]],
                    "copy_of_split": str(origin[where[i]]),
                    "distance": int(dist[i]),
                    "action": "dropped" if drop else "kept",
                    "row": int(rows[i]),
                    "copy_of_row": int(pool[where[i]]),
                }
            )
        if drop:
            parts[split] = np.delete(rows, leaked)
    return parts, records
