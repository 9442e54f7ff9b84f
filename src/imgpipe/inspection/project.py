"""The current data (data/ingest) and model (models/) that embed and inspect look at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imgpipe.errors import ImgpipeError
from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.saved import load_model
from imgpipe.models.spec import ModelSpec
from imgpipe.paths import Paths
from imgpipe.store.dataset import Split

SPLITS = ("train", "val", "test")


@dataclass
class Project:
    """Every non-empty split of the ingested data, and the trained model on its device."""

    classes: list[str]
    splits: dict[str, Split]  # in SPLITS order; features and index rows follow this order
    spec: ModelSpec
    model: ImageClassifier
    device: torch.device

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([split.labels for split in self.splits.values()])

    def index(self) -> pd.DataFrame:
        """One row per image, in feature order: where it is, its label, and its id when known."""
        frames = []
        for name, split in self.splits.items():
            manifest = split.manifest
            frame = pd.DataFrame(
                {
                    "split": name,
                    "row": manifest["index"].to_numpy(dtype=np.int64),
                    "label": split.labels,
                    "class_name": [self.classes[y] for y in split.labels],
                }
            )
            for column in ("id", "file"):  # manifests carry an id; older or foreign ones may name a file
                if column in manifest.columns:
                    frame[column] = manifest[column].to_numpy()
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def image(self, split: str, row: int) -> np.ndarray:
        return np.asarray(self.splits[split].images[int(row)])


def load_project(root: Path, model_dir: Path | None = None) -> Project:
    """The ingested splits and the model in ``model_dir`` (default: the project's models/)."""
    from imgpipe.device import select_device
    from imgpipe.store import ingested

    paths = Paths(root)
    folder = paths.root / model_dir if model_dir is not None else paths.model_dir  # relative: to the root, as predict
    if not paths.ingested.is_dir():
        raise ImgpipeError(
            f"{paths.ingested} is missing: run `dvc repro` first (it ingests the images and "
            "trains the model that imgpipe inspects)."
        )
    if not folder.is_dir():
        raise ImgpipeError(
            f"{folder} is missing: run `dvc repro` first, or pass --model with a model folder that train wrote."
        )
    spec, model = load_model(folder)
    classes = ingested.read_classes(paths.ingested)
    splits = {name: ingested.read_split(paths.ingested, name) for name in SPLITS}
    splits = {name: split for name, split in splits.items() if len(split)}
    _check_match(spec, classes, splits, folder, paths.ingested)
    device = select_device("auto")
    return Project(classes, splits, spec, model.to(device), device)


def _check_match(spec: ModelSpec, classes: list[str], splits: dict[str, Split], folder: Path, data: Path) -> None:
    """A model trained on other data would give meaningless features: refuse it in a sentence."""
    if not splits:
        raise ImgpipeError(f"{data} holds no images: run `dvc repro` first.")
    if list(spec.classes) != list(classes):
        raise ImgpipeError(
            f"{folder} was trained on classes {spec.classes}, but {data} holds {classes}: "
            "run `dvc repro` first so that the model matches the data."
        )
    shape = next(iter(splits.values())).images.shape[1:]
    if tuple(shape) != (spec.image_size, spec.image_size, spec.channels):
        raise ImgpipeError(
            f"{folder} takes {spec.image_size}px images with {spec.channels} channel(s), but {data} "
            f"holds {shape[0]}x{shape[1]} with {shape[2]}: run `dvc repro` first so that the model "
            "matches the data."
        )
