"""Brief training of a candidate recipe on the folder itself, scored over several folds.

The images are ingest's own train and val splits for the candidate's params (so the test
split stays unseen), pooled, cut to a stratified sample and dealt into stratified folds:
each fold's val part is a third of the sample, not the 30 images a small folder's val
split may hold, and the mean over folds is what decides. A candidate trains on each fold
with the pipeline's own model, optimizer, schedule, loss and device augmentation; its
score on a fold is the val balanced accuracy after the last epoch. A candidate whose
early blocks are frozen trains on their cached output instead (``features``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgpipe.balance.resampling import class_weights
from imgpipe.device import select_device
from imgpipe.ingest.selection import select_splits
from imgpipe.ingest.sources import load_source
from imgpipe.init.features import FeatureBatches, FeatureCache, Suffix, cache_features, frozen_blocks
from imgpipe.params.ingest import IngestConfig
from imgpipe.params.train import DeviceAugmentConfig, TrainConfig
from imgpipe.train.data import TrainBatches
from imgpipe.train.distributed import Dist
from imgpipe.train.loop import autocast_for, prepare, train_one_epoch
from imgpipe.train.losses import TrainLoss, class_prior
from imgpipe.train.setup import initial_model, model_spec
from imgpipe.train.state import TrainState, seed_everything

TRIAL_IMAGES = 900  # train + val images the trial uses at most: a seeded, stratified sample
FOLDS = 3


@dataclass(frozen=True)
class TrialData:
    images: np.ndarray  # (N, H, W, C) uint8: ingest's train and val splits, pooled and sampled
    labels: np.ndarray
    classes: list[str]
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]  # (train rows, val rows) of each fold

    @property
    def fold_train(self) -> int:
        """Training images in a fold (the largest)."""
        return max(len(train) for train, _ in self.folds)


def trial_data(ingest: dict[str, Any], root: Path, folds: int = FOLDS, seed: int = 0) -> TrialData:
    """Ingest's train and val splits for ``ingest`` params, pooled, sampled and folded."""
    from sklearn.model_selection import StratifiedKFold

    cfg = IngestConfig.model_validate(ingest)
    source = load_source(cfg, root)
    _, _, splits, _ = select_splits(source, cfg)
    images = np.concatenate([np.asarray(splits[s].images) for s in ("train", "val")])
    labels = np.concatenate([splits[s].labels for s in ("train", "val")])
    keep = _stratified_sample(labels, TRIAL_IMAGES, np.random.default_rng(seed))
    images, labels = images[keep], labels[keep]
    # A class with fewer images than folds cannot be in every fold's val part: fewer folds.
    k = max(2, min(folds, int(np.bincount(labels).min(initial=folds) or folds)))
    split = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    return TrialData(images, labels, source.classes, tuple((np.sort(a), np.sort(b)) for a, b in split))


def _stratified_sample(labels: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of at most ``limit`` images, each class keeping its share (and at least one)."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    share = limit / len(labels)
    return np.sort(
        np.concatenate(
            [
                rng.permutation(np.flatnonzero(labels == c))[: max(1, round(share * n))]
                for c, n in zip(*np.unique(labels, return_counts=True))
            ]
        )
    )


def trial_config(train_params: dict[str, Any], epochs: int) -> TrainConfig:
    """``train_params`` for a brief run: ``epochs`` epochs, one process, nothing extra."""
    return TrainConfig.model_validate(
        {
            **train_params,
            "epochs": epochs,
            "drw_epoch": 0,
            "retrain_head": {"epochs": 0},
            "nproc": 1,
            "augment_online": False,
            "early_stopping": {**train_params["early_stopping"], "patience": 0},
        }
    )


def sampler_weights(labels: np.ndarray, classes: list[str], balanced: bool) -> list[float] | None:
    """The draw weights of class-balanced batches, as ``balance.method: weighted_sampler`` sets them."""
    return list(class_weights(labels, classes).values()) if balanced else None


def train_fold(
    cfg: TrainConfig,
    data: TrialData,
    fold: int,
    root: Path,
    balanced: bool,
    posthoc_tau: float = 0.0,
    on_epoch: Callable[[int], None] = lambda seen: None,
    cache: FeatureCache | None = None,
) -> tuple[float, float]:
    """Train ``cfg`` on a fold's train rows: the val balanced accuracy after the last epoch
    (of logits less ``posthoc_tau`` x log prior, as ``evaluate.logit_adjustment`` decides),
    and the seconds the epochs took (training and validation, not building the model).
    With ``cache``, only the blocks after the cached frozen ones and the head train, on it."""
    train_rows, val_rows = data.folds[fold]
    labels = data.labels[train_rows]
    weights = sampler_weights(labels, data.classes, balanced)
    prior = class_prior(labels, len(data.classes), weights)
    model, _ = initial_model(model_spec(cfg, data.classes, data.images[train_rows], {}, prior), cfg, root)
    device = select_device(cfg.device)
    if cache is None:
        batches = TrainBatches(data.images[train_rows], labels, device, cfg.batch_size, weights)
        net, epoch_of = prepare(model, cfg, device, Dist()), lambda generator: batches.epoch(generator, Dist())
        x_val = torch.from_numpy(np.ascontiguousarray(data.images[val_rows])).to(device)
    else:  # the views are augmented already: none again on the cached features
        batches = FeatureBatches(cache, train_rows, labels, cfg.batch_size, weights)
        net, epoch_of, x_val = Suffix(model.to(device), cache.frozen), batches.epoch, cache.views[0, val_rows]
        cfg = cfg.model_copy(update={"device_augment": DeviceAugmentConfig()})
    state = TrainState.create(model, cfg, device, batches.steps_per_epoch, seed_everything(cfg.seed))
    autocast = autocast_for(cfg, device)
    criterion = TrainLoss(cfg, prior, None, len(labels)).to(device)
    y_val = torch.from_numpy(data.labels[val_rows].astype(np.int64)).to(device)
    began = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        criterion.start_epoch(epoch)
        rows, steps = epoch_of(state.generator)
        train_one_epoch(state, net, criterion, rows, steps, cfg, autocast, "", show=False)
        state.schedule.after_epoch(0.0)  # init's schedules step by batch or epoch, never on a metric
        on_epoch(len(labels))
    shift = -posthoc_tau * np.log(np.clip(np.asarray(prior), 1e-12, None))
    scored = state.eval_model if cache is None else net  # no EMA where the cache is used
    return _balanced_accuracy(scored, x_val, y_val, shift, autocast), time.perf_counter() - began


def feature_cache(cfg: TrainConfig, data: TrialData, root: Path) -> FeatureCache | None:
    """The output of ``cfg``'s frozen leading blocks over every sampled image, or None
    where nothing is frozen (a CNN from scratch, a backbone retrained whole)."""
    if cfg.unfrozen_blocks == "none":
        return None  # no model to build for it
    prior = class_prior(data.labels, len(data.classes))  # the head's, unused here
    model, _ = initial_model(model_spec(cfg, data.classes, data.images, {}, prior), cfg, root)
    frozen = frozen_blocks(cfg, model)
    if not frozen:
        return None
    device = select_device(cfg.device)
    generator = torch.Generator().manual_seed(cfg.seed)
    return cache_features(
        model.to(device), frozen, data.images, cfg.device_augment, device, generator, autocast_for(cfg, device)
    )


@torch.no_grad()
def _balanced_accuracy(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, shift: np.ndarray, autocast: Callable
) -> float:
    from sklearn.metrics import balanced_accuracy_score

    model.eval()
    with autocast():
        logits = torch.cat([model(x[i : i + 256]).float().cpu() for i in range(0, len(x), 256)]).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": those are ignored, as wanted
        return float(balanced_accuracy_score(y.cpu().numpy(), (logits + shift).argmax(1)))


def images_per_second(
    cfg: TrainConfig, data: TrialData, root: Path, balanced: bool, batches: int = 3, cache: FeatureCache | None = None
) -> float:
    """Training throughput of ``cfg`` on this machine, timed over a few batches of fold 0
    (on ``cache``'s features, where given)."""
    rows = data.folds[0][0][: cfg.batch_size * batches]
    sample = TrialData(data.images, data.labels, data.classes, ((rows, rows[: cfg.batch_size]),))
    _, seconds = train_fold(cfg.model_copy(update={"epochs": 1}), sample, 0, root, balanced, cache=cache)
    return len(rows) / max(seconds, 1e-6)
