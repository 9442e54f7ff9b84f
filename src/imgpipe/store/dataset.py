"""The dataset folder format shared by ``data/ingest``, ``data/balance`` and ``data/augment``.

A dataset folder holds a few files, never one per image, so DVC hashes a handful of
objects however many images there are:

- ``<split>.npy``: the uint8 pixels this folder made, shape (N, H, W, C), a plain ``.npy``;
  it may hold fewer rows than the split (none at all when balance only picked rows);
- ``manifest.csv``: one row per image (id, label, class_name, split, index, sha256, origin,
  pixels, pixels_row), where ``index`` is the image's place in its split and ``pixels`` and
  ``pixels_row`` say where its pixels are: an ``.npy`` path relative to this folder (its
  own ``train.npy``, or ``../ingest/train.npy`` for a row balance picked) and the row in it;
- ``classes.json``: class names in label order.

Readers get each split as a ``Stacked`` view that reads pixels only when indexed (see
``stacked``), so a picked or kept row is stored once, where it was made.

Each stage's folder has an owner module beside this one (``ingested``, ``balanced``,
``augmented``) that adds its own files; stages go through those, never through here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgpipe.errors import ImgpipeError
from imgpipe.store.atomic import atomic_path, read_json
from imgpipe.store.npy_file import NpyFile
from imgpipe.store.stacked import Stacked

MANIFEST_COLUMNS = ["id", "label", "class_name", "split", "index", "sha256", "origin", "pixels", "pixels_row"]


def pixel_hash(image: np.ndarray) -> str:
    """Content hash of decoded pixels, shape included so a reshape changes it."""
    h = hashlib.sha256(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def split_digest(split: Split) -> str:
    """What a split holds, images and labels, as one hash: equal for the same images under
    the same labels, in any order, whatever the folder they were stored in."""
    rows = sorted(f"{sha}\t{name}" for sha, name in zip(split.manifest["sha256"], split.manifest["class_name"]))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass
class Split:
    """One split of a dataset: pixels plus their manifest rows, in the same order."""

    images: np.ndarray | Stacked  # (N, H, W, C) uint8
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
        columns=MANIFEST_COLUMNS[:-2],  # where the pixels are is for write_dataset to say
    )


def write_dataset(
    folder: Path, classes: list[str], splits: dict[str, Split], extra: dict[str, Any] | None = None
) -> None:
    """Write a dataset folder atomically. Identical inputs give byte-identical files.

    Rows that reference pixels on disk (a ``Stacked`` read from another folder) are
    stored as references; only new pixels go into ``<split>.npy``. ``extra`` maps file
    names to JSON-able data written alongside, in the same atomic step.
    """
    folder = Path(os.path.abspath(folder))
    stacks = {name: Stacked.of(split.images) for name, split in splits.items()}
    needed = sum(len(s.new_rows()) * int(np.prod(s.shape[1:])) * np.dtype(s.dtype).itemsize for s in stacks.values())
    # A full disk: a sentence now, not ENOSPC halfway. Only a previous dataset is replaced.
    with atomic_path(folder, needed=needed, replaces=is_dataset) as tmp:
        tmp.mkdir()
        for name, data in (extra or {}).items():
            (tmp / name).write_text(json.dumps(data, indent=2) + "\n")
        (tmp / CLASSES_FILE).write_text(json.dumps(classes, indent=2) + "\n")
        frames = []
        for name, split in splits.items():
            stack = stacks[name]
            if stack.dtype != np.uint8 or stack.ndim != 4:
                raise ValueError(f"split {name}: expected uint8 (N, H, W, C), got {stack.dtype} {stack.shape}")
            fresh = stack.new_rows()
            _save_array(tmp / f"{name}.npy", stack.take(fresh), stack.shape[1:])
            frame = split.manifest.copy()
            frame["split"] = name
            frame["index"] = np.arange(len(frame), dtype=np.int64)
            frame["pixels"], frame["pixels_row"] = _references(stack, folder)
            frame.loc[fresh, "pixels"] = f"{name}.npy"
            frame.loc[fresh, "pixels_row"] = np.arange(len(fresh))
            frames.append(frame[MANIFEST_COLUMNS])
        pd.concat(frames, ignore_index=True).to_csv(tmp / MANIFEST_FILE, index=False, lineterminator="\n")


def _references(stack: Stacked, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Each row's file, relative to ``folder`` ("" for new pixels), and its row there."""
    names = np.array(
        [Path(os.path.relpath(f, folder)).as_posix() if f is not None else "" for f in stack.files], dtype=object
    )
    return names[stack.which], stack.row.copy()


CHUNK_BYTES = 64 * 2**20  # what one write step holds in memory, whatever the image size


def _save_array(path: Path, images: Stacked, row_shape: tuple[int, ...]) -> None:
    """Write an .npy file chunk by chunk, the same bytes as ``np.save``.

    Plain writes rather than a memory map: dirty mapped pages count towards the
    process's resident memory, and the point is to keep that at one chunk.
    """
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (len(images), *row_shape),
    }
    chunk = max(1, CHUNK_BYTES // max(1, int(np.prod(row_shape))))
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, len(images), chunk):
            f.write(np.ascontiguousarray(images[start : start + chunk]).tobytes())


CLASSES_FILE = "classes.json"
MANIFEST_FILE = "manifest.csv"


def is_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds a dataset that ``write_dataset`` wrote (a stage's output DVC
    declares, which the stage's next run replaces)."""
    return (Path(folder) / MANIFEST_FILE).is_file()


def read_classes(folder: Path) -> list[str]:
    return read_json(Path(folder) / CLASSES_FILE)


def read_split(folder: Path, split: str, mmap: bool = True) -> Split:
    """Load one split: a ``Stacked`` view that reads pixels from disk as they are indexed
    (``NpyFile``: plain reads, so resident memory stays at what was asked for), or the
    whole split in memory when ``mmap`` is false."""
    folder = Path(os.path.abspath(folder))
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ImgpipeError(f"{manifest_path} is missing: run the stage that makes it (dvc repro).")
    manifest = pd.read_csv(manifest_path, dtype={"id": str, "sha256": str, "pixels": str}, keep_default_na=False)
    if "pixels" not in manifest.columns:
        raise ImgpipeError(f"{folder} was written by an older imgpipe; rerun with `dvc repro --force`.")
    rows = manifest[manifest["split"] == split].sort_values("index").reset_index(drop=True)
    files = sorted(set(rows["pixels"]))
    parts = [_open_pixels(folder / name, manifest_path) for name in files]
    which = np.searchsorted(np.array(files, dtype=object), rows["pixels"].to_numpy(dtype=object))
    row = rows["pixels_row"].to_numpy(dtype=np.int64)
    for i, (name, part) in enumerate(zip(files, parts)):
        if len(row) and row[which == i].max(initial=-1) >= len(part):
            raise ImgpipeError(
                f"{manifest_path}: rows of {name} past its end ({len(part)} images); rerun with `dvc repro --force`."
            )
    if not files:  # an empty split: nothing to read
        return Split(images=np.zeros((0, 1, 1, 1), dtype=np.uint8), manifest=rows)
    images = Stacked(parts, [folder / name for name in files], which, row)
    return Split(images=images if mmap else np.asarray(images), manifest=rows)


def _open_pixels(path: Path, manifest_path: Path) -> NpyFile:
    if not path.is_file():
        raise ImgpipeError(
            f"{path}, which {manifest_path} takes pixels from, is missing: run `dvc repro` "
            "(or `dvc pull`) to bring it back."
        )
    return NpyFile(path)


def class_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {name: int(c) for name, c in zip(classes, counts)}
