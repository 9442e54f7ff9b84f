"""Image collections of kinds unlike brain-mri and hymenoptera, built from what is offline,
for judging ``imgpipe init`` on folders it was not tuned on (issue #29).

- ``cifar10-lt``: a few hundred CIFAR-10 training images (32 px colour photos of objects),
  long-tailed at ratio 30 (150 of the first class down to 5 of the last), from
  ``../shared/datasets/cifar10-jpeg.tar.gz``.
- ``gray-textures``: 48 px gray tiles of six textures that scikit-image ships (bricks,
  grass, gravel, a retina's fundus, cells under a microscope, the Hubble deep field),
  long-tailed at ratio 30. Each tile's brightness and contrast are normalised, then
  jittered, so the classes differ by texture alone, as surface-defect sets do.
- ``digits-lt``: scikit-learn's 8x8 digit scans upscaled to 32 px, long-tailed at ratio 30 (at 50, the last class holds 3 scans:
  too few for a stratified train, val and test split).

    python bench/collections_offline.py OUT [--seed 0]   # writes OUT/<collection>/<class>/*.png
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
CIFAR_ARCHIVE = HERE.parents[1] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
TILE = 48


def long_tail(head: int, classes: int, ratio: float) -> list[int]:
    """Images per class falling exponentially from ``head`` to ``head / ratio``."""
    return [max(1, round(head * ratio ** (-i / (classes - 1)))) for i in range(classes)]


def cifar10_lt(out: Path, seed: int = 0, head: int = 150, ratio: float = 30) -> Path:
    if not CIFAR_ARCHIVE.is_file():
        raise SystemExit(f"{CIFAR_ARCHIVE} is missing (../shared/datasets, see its README)")
    rng = np.random.default_rng(seed)
    with tarfile.open(CIFAR_ARCHIVE) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.split("/")[-3:-2] == ["train"]]
        by_class: dict[str, list[tarfile.TarInfo]] = {}
        for m in members:
            by_class.setdefault(m.name.split("/")[-2], []).append(m)
        names = sorted(by_class)
        for name, n in zip([names[i] for i in rng.permutation(len(names))], long_tail(head, len(names), ratio)):
            (out / name).mkdir(parents=True, exist_ok=True)
            for i in rng.permutation(len(by_class[name]))[:n]:
                member = by_class[name][i]
                (out / name / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return out


def gray_textures(out: Path, seed: int = 0, ratio: float = 30) -> Path:
    try:
        import skimage.data as data
        from skimage.color import rgb2gray
    except ImportError:
        raise SystemExit("gray-textures needs scikit-image: pip install -e '.[bench]'") from None

    sources = {
        "hubble": rgb2gray(data.hubble_deep_field()) * 255,
        "cells": data.cell(),
        "bricks": data.brick(),
        "grass": data.grass(),
        "gravel": data.gravel(),
        "retina": rgb2gray(data.retina()) * 255,
    }
    rng = np.random.default_rng(seed)
    for (name, image), n in zip(sources.items(), long_tail(150, len(sources), ratio)):
        tiles = _tiles(np.asarray(image, dtype=np.float64))
        (out / name).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(rng.permutation(len(tiles))[:n]):
            tile = np.rot90(tiles[i], rng.integers(4))
            tile = (tile - tile.mean()) / max(tile.std(), 1e-6)  # texture, not brightness, tells them apart
            tile = np.clip(128 + rng.uniform(-30, 30) + tile * rng.uniform(25, 50), 0, 255).astype(np.uint8)
            Image.fromarray(tile).save(out / name / f"{k:03d}.png")
    return out


def _tiles(image: np.ndarray) -> list[np.ndarray]:
    """Non-overlapping TILE x TILE tiles of ``image`` (no tile shares a pixel with another),
    but for flat ones (the black border around the retina)."""
    h, w = image.shape
    tiles = [
        image[y : y + TILE, x : x + TILE] for y in range(0, h - TILE + 1, TILE) for x in range(0, w - TILE + 1, TILE)
    ]
    return [t for t in tiles if t.std() > 4 and (t < 8).mean() < 0.2]


def digits_lt(out: Path, seed: int = 0, ratio: float = 30) -> Path:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rng = np.random.default_rng(seed)
    counts = long_tail(int(np.bincount(bunch.target).min()), 10, ratio)
    for digit, n in zip(rng.permutation(10), counts):
        (out / str(digit)).mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero(bunch.target == digit)
        for k, i in enumerate(rng.permutation(rows)[:n]):
            scan = Image.fromarray(np.clip(bunch.images[i] * 16, 0, 255).astype(np.uint8))
            scan.resize((32, 32), Image.Resampling.BILINEAR).save(out / str(digit) / f"{k:03d}.png")
    return out


BUILDERS = {"cifar10-lt": cifar10_lt, "gray-textures": gray_textures, "digits-lt": digits_lt}


def build(name: str, out: Path, seed: int = 0) -> Path:
    """The collection ``name`` in ``out`` (a new folder of class folders)."""
    return BUILDERS[name](out, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in BUILDERS:
        folder = build(name, args.out / name, args.seed)
        counts = {p.name: len(list(p.iterdir())) for p in sorted(folder.iterdir())}
        print(f"{folder}: {sum(counts.values())} images, {counts}")


if __name__ == "__main__":
    main()
