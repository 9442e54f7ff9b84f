"""The dataset folder format shared by ``data/ingest``, ``data/balance`` and ``data/augment``.

A dataset folder holds a few files, never one per image, so DVC hashes a handful of
objects however many images there are:

- ``<split>.npy``: uint8 pixels, shape (N, H, W, C), memory-mappable;
- ``manifest.csv``: one row per image (id, label, class_name, split, index, sha256, origin),
  where ``index`` is the image's row in its split's array;
- ``classes.json``: class names in label order.

Each stage's folder has an owner module beside this one (``ingested``, ``balanced``,
``augmented``) that adds its own files; stages go through those, never through here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgpipe.errors import ImgpipeError
from imgpipe.store.atomic import atomic_path, read_json

MANIFEST_COLUMNS = ["id", "label", "class_name", "split", "index", "sha256", "origin"]

def pixel_hash(image: np.ndarray) -> str:
    """Content hash of decoded pixels, shape included so a reshape changes it."""
    h = hashlib.sha256(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


class Rows:
    """Chosen rows of a larger array, copied out only chunk by chunk as they are written.

    Ingest decodes every image into one array and then writes each split from it; a
    view like this keeps peak memory at one copy of the data rather than two.
    """

    def __init__(self, base: np.ndarray, index: np.ndarray):
        self.base, self.index = base, np.asarray(index, dtype=np.int64)
        self.shape = (len(self.index), *base.shape[1:])
        self.dtype = base.dtype
        self.ndim = base.ndim

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | slice) -> np.ndarray:
        return self.base[self.index[key]]


@dataclass
class Split:
    """One split of a dataset: pixels plus their manifest rows, in the same order."""

    images: np.ndarray | Rows  # (N, H, W, C) uint8
    manifest: pd.DataFrame  # MANIFEST_COLUMNS, row i describes images[i]

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label"].to_numpy(dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)


def make_manifest(
    *,
    ids: list[str],
    labels: np.ndarray,
    classes: list[str],
    split: str,
    sha256: list[str],
    origin: list[str] | str,
) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "id": ids,
            "label": np.asarray(labels, dtype=np.int64),
            "class_name": [classes[int(y)] for y in labels],
            "split": [split] * n,
            "index": np.arange(n, dtype=np.int64),
            "sha256": sha256,
            "origin": [origin] * n if isinstance(origin, str) else origin,
        },
        columns=MANIFEST_COLUMNS,
    )


def write_dataset(folder: Path, classes: list[str], splits: dict[str, Split], extra: dict[str, Any] | None = None) -> None:
    """Write a dataset folder atomically. Identical inputs give byte-identical files.

    ``extra`` maps file names to JSON-able data written alongside, in the same atomic step.
    """
    arrays = sum(int(np.prod(s.images.shape)) * np.dtype(s.images.dtype).itemsize for s in splits.values())
    with atomic_path(folder, needed=arrays) as tmp:  # a full disk: a sentence now, not ENOSPC halfway
        tmp.mkdir()
        for name, data in (extra or {}).items():
            (tmp / name).write_text(json.dumps(data, indent=2) + "\n")
        (tmp / CLASSES_FILE).write_text(json.dumps(classes, indent=2) + "\n")
        frames = []
        for name, split in splits.items():
            if split.images.dtype != np.uint8 or split.images.ndim != 4:
                raise ValueError(f"split {name}: expected uint8 (N, H, W, C), got {split.images.dtype} {split.images.shape}")
            _save_array(tmp / f"{name}.npy", split.images)
            frame = split.manifest.copy()
            frame["split"] = name
            frame["index"] = np.arange(len(frame), dtype=np.int64)
            frames.append(frame[MANIFEST_COLUMNS])
        pd.concat(frames, ignore_index=True).to_csv(tmp / MANIFEST_FILE, index=False, lineterminator="\n")


def _save_array(path: Path, images: np.ndarray | Rows, chunk: int = 4096) -> None:
    """Write an .npy file chunk by chunk, the same bytes as ``np.save``.

    Plain writes rather than a memory map: dirty mapped pages count towards the
    process's resident memory, and the point is to keep that at one copy of the data.
    """
    header = {"descr": np.lib.format.dtype_to_descr(images.dtype), "fortran_order": False, "shape": tuple(images.shape)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, len(images), chunk):
            f.write(np.ascontiguousarray(images[start : start + chunk]).tobytes())


CLASSES_FILE = "classes.json"
MANIFEST_FILE = "manifest.csv"


def read_classes(folder: Path) -> list[str]:
    return read_json(Path(folder) / CLASSES_FILE)


def read_split(folder: Path, split: str, mmap: bool = True) -> Split:
    """Load one split. Pixels are memory-mapped unless ``mmap`` is false."""
    folder = Path(folder)
    array_path = folder / f"{split}.npy"
    manifest_path = folder / MANIFEST_FILE
    for path in (array_path, manifest_path):
        if not path.is_file():
            raise ImgpipeError(f"{path} is missing: run the stage that makes it (dvc repro).")
    images = np.load(array_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    manifest = pd.read_csv(manifest_path, dtype={"id": str, "sha256": str})
    rows = manifest[manifest["split"] == split].sort_values("index").reset_index(drop=True)
    if len(rows) != len(images):
        raise ImgpipeError(f"{folder}: manifest lists {len(rows)} {split} images but {array_path.name} holds {len(images)}; rerun with `dvc repro --force`.")
    return Split(images=images, manifest=rows)


def class_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {name: int(c) for name, c in zip(classes, counts)}
