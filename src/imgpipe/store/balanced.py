"""``data/balance``: the train split after resampling, and the class weights for training.

``training.json`` says how train should weigh classes when the balance method left the
data as it was: a weighted loss (``class_weight``) or a weighted sampler
(``weighted_sampler``); both null otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgpipe.store import dataset
from imgpipe.store.atomic import read_json
from imgpipe.store.dataset import Split

WEIGHTS_FILE = "training.json"


@dataclass(frozen=True)
class Weighting:
    """How training evens out classes; each field maps class names to weights, or is None."""

    method: str
    loss_weights: dict[str, float] | None = None  # a weighted cross-entropy
    sampler_weights: dict[str, float] | None = None  # a WeightedRandomSampler

    def loss_by_label(self, classes: list[str]) -> list[float] | None:
        return [float(self.loss_weights[c]) for c in classes] if self.loss_weights else None

    def sampler_by_label(self, classes: list[str]) -> list[float] | None:
        return [float(self.sampler_weights[c]) for c in classes] if self.sampler_weights else None

    def to_dict(self) -> dict:
        return {"method": self.method, "loss_weights": self.loss_weights, "sampler_weights": self.sampler_weights}


def write(folder: Path, classes: list[str], train: Split, weighting: Weighting) -> None:
    dataset.write_dataset(folder, classes, {"train": train}, extra={WEIGHTS_FILE: weighting.to_dict()})


def read_train(folder: Path, mmap: bool = True) -> Split:
    return dataset.read_split(folder, "train", mmap)


def read_weighting(folder: Path) -> Weighting:
    return Weighting(**read_json(Path(folder) / WEIGHTS_FILE))
