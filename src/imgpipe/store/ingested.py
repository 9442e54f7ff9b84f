"""``data/ingest``: every split of the decoded images, and how they were decoded.

Besides the dataset files (see ``dataset``), ``preprocessing.json`` records the decode
settings, which travel with the model so that ``imgpipe predict`` decodes new files the
same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgpipe.store import dataset
from imgpipe.store.atomic import read_json
from imgpipe.store.dataset import Split

PREPROCESSING_FILE = "preprocessing.json"


def write(folder: Path, classes: list[str], splits: dict[str, Split], preprocessing: dict[str, Any]) -> None:
    dataset.write_dataset(folder, classes, splits, extra={PREPROCESSING_FILE: preprocessing})


def read_split(folder: Path, split: str, mmap: bool = True) -> Split:
    return dataset.read_split(folder, split, mmap)


def read_classes(folder: Path) -> list[str]:
    return dataset.read_classes(folder)


def read_preprocessing(folder: Path) -> dict[str, Any]:
    return read_json(Path(folder) / PREPROCESSING_FILE)
