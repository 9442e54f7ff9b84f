"""Brief trials for a choice ``init`` cannot make from the profile alone.

How much of an ImageNet backbone to retrain depends on how far the images are from
ImageNet's photos: the last blocks suffice for photos, textures and scans may need every
block. Each candidate trains a few epochs on a sample of ingest's own train split (the
split ``dvc repro`` will use, so the test images stay unseen) with the pipeline's own
``fit``, and the best val balanced accuracy over its epochs is its score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgpipe.ingest.selection import select_splits
from imgpipe.ingest.sources import load_source
from imgpipe.models.device import select_device
from imgpipe.params.ingest import IngestConfig
from imgpipe.params.train import TrainConfig
from imgpipe.store.dataset import Split
from imgpipe.train.data import TrainBatches
from imgpipe.train.loop import fit
from imgpipe.train.losses import class_prior
from imgpipe.train.setup import initial_model, model_spec

TRIAL_EPOCHS = 4
TRIAL_TRAIN = 600  # training images a trial uses at most: a seeded, stratified sample
TRIAL_VAL = 400
MARGIN = 0.02  # a candidate must beat the first (the rule's) by this much to replace it


@dataclass(frozen=True)
class TrialData:
    train: tuple[np.ndarray, np.ndarray]  # images (N, H, W, C) uint8, labels
    val: tuple[np.ndarray, np.ndarray]
    classes: list[str]


def trial_data(params: dict[str, Any], root: Path, seed: int = 0) -> TrialData:
    """Ingest's train and val splits for ``params``, each cut to a stratified sample."""
    cfg = IngestConfig.model_validate(params["ingest"])
    source = load_source(cfg, root)
    _, _, splits, _ = select_splits(source, cfg)
    rng = np.random.default_rng(seed)
    return TrialData(_sample(splits["train"], TRIAL_TRAIN, rng), _sample(splits["val"], TRIAL_VAL, rng),
                     source.classes)


def _sample(split: Split, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = split.labels
    if len(labels) <= limit:
        return np.asarray(split.images), labels
    share = limit / len(labels)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: max(1, round(share * n))]
                                   for c, n in zip(*np.unique(labels, return_counts=True))]))
    return np.asarray(split.images)[keep], labels[keep]


def score(train_params: dict[str, Any], data: TrialData, root: Path) -> float:
    """The best val balanced accuracy of ``train_params`` over a few epochs on ``data``."""
    cfg = TrainConfig.model_validate({**train_params, "epochs": TRIAL_EPOCHS, "drw_epoch": 0,
                                      "retrain_head": {"epochs": 0}, "nproc": 1, "augment_online": False})
    images, labels = data.train
    prior = class_prior(labels, len(data.classes))
    spec = model_spec(cfg, data.classes, images, {}, prior)
    model, _ = initial_model(spec, cfg, root)
    batches = TrainBatches(images, labels, select_device(cfg.device), cfg.batch_size)
    result = fit(model, batches, data.val, cfg, prior=prior, stage="trial epoch")
    return max(r.val_balanced_accuracy for r in result.history)


def pick(scores: dict[str, float]) -> str:
    """The first candidate (the rule's) unless another beats it by ``MARGIN``."""
    first, *_ = scores
    best = max(scores, key=scores.get)
    return best if scores[best] >= scores[first] + MARGIN else first
