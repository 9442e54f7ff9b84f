"""``data/augment``: the training images with their augmented variants, and the pipeline.

``pipeline.json`` is the exact albumentations pipeline, serialised by albumentations'
own ``to_dict``, so train can apply it afresh each epoch (``train.augment_online``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imgpipe.store import dataset
from imgpipe.store.dataset import Split

PIPELINE_FILE = "pipeline.json"


def write(folder: Path, classes: list[str], train: Split, pipeline: dict[str, Any]) -> None:
    dataset.write_dataset(folder, classes, {"train": train}, extra={PIPELINE_FILE: pipeline})


def read_train(folder: Path, mmap: bool = True) -> Split:
    return dataset.read_split(folder, "train", mmap)


def pipeline_path(folder: Path) -> Path:
    return Path(folder) / PIPELINE_FILE


def load_pipeline(folder: Path, seed: int) -> Any:
    """The augment stage's exact pipeline as an albumentations ``Compose``, seeded."""
    import albumentations as A

    pipeline = A.from_dict(json.loads(pipeline_path(folder).read_text()))
    pipeline.set_random_seed(seed)
    return pipeline
