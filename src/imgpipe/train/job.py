"""One training job, set up from the project's files: data, model, weighting and checkpoint.

The train stage prepares a job, then either just fits it (a DDP worker) or fits it while
recording it in MLflow (the main process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from imgpipe.device import select_device
from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.spec import ModelSpec
from imgpipe.params.train import TrainConfig
from imgpipe.paths import Paths
from imgpipe.store import augmented, balanced, ingested
from imgpipe.store.dataset import Split
from imgpipe.tracking.lineage import dvc_hashes
from imgpipe.train.checkpoint import Checkpoint, code_digest, file_digest, fingerprint
from imgpipe.train.data import TrainBatches, resident
from imgpipe.train.distributed import Dist
from imgpipe.train.loop import FitResult, fit
from imgpipe.train.losses import class_prior
from imgpipe.train.retrain_head import CHECKPOINT_FILE, continued, head_config, head_sampler_weights, prepare_head
from imgpipe.train.setup import initial_model, model_spec
from imgpipe.train.state import EpochResult


@dataclass
class TrainingJob:
    cfg: TrainConfig
    dist: Dist
    device: torch.device
    train: Split
    val: Split
    spec: ModelSpec
    model: ImageClassifier
    origin: str  # where the first weights came from
    batches: TrainBatches
    loss_weights: list[float] | None
    data_hashes: dict[str, str]  # DVC hash of each data folder the job reads, by its dvc.yaml name
    data_names: dict[str, str]  # the dvc.yaml names of the train and val splits' folders
    checkpoint: Checkpoint
    resume: dict[str, Any] | None  # the interrupted run's state, when there is one
    prior: list[float]  # how often the first stage draws each class (the spec keeps the last stage's)
    head_checkpoint: Checkpoint | None = None  # train.retrain_head: the head stage's own
    head_resume: dict[str, Any] | None = None

    @classmethod
    def prepare(cls, paths: Paths, cfg: TrainConfig, dist: Dist) -> TrainingJob:
        device = select_device(cfg.device, local_rank=dist.local_rank)
        classes = ingested.read_classes(paths.ingested)
        train, val = augmented.read_train(paths.augmented), ingested.read_split(paths.ingested, "val")
        if train.images.nbytes + val.images.nbytes <= cfg.resident_max_gb * 2**30:  # else read from disk by batch
            train, val = (Split(np.asarray(s.images), s.manifest) for s in (train, val))
        # class_weight and weighted_sampler left the data alone; their weights act here.
        weighting = balanced.read_weighting(paths.balanced)
        pipeline = augmented.load_pipeline(paths.augmented, cfg.seed) if cfg.augment_online else None
        sampler = weighting.sampler_by_label(classes)
        prior = class_prior(train.labels, len(classes), sampler)
        final_prior = (
            class_prior(
                train.labels, len(classes), head_sampler_weights(train.labels, len(classes), cfg.retrain_head.sampler)
            )
            if cfg.retrain_head.epochs
            else prior
        )
        spec = model_spec(cfg, classes, train.images, ingested.read_preprocessing(paths.ingested), final_prior)
        model, origin = initial_model(spec, cfg, paths.root)
        batches = TrainBatches(train.images, train.labels, device, cfg.batch_size, sampler, pipeline, cfg.workers)
        # The DVC hashes of the data read fingerprint the checkpoint and go on the MLflow run.
        hashes = dvc_hashes(
            paths.dvc_lock, [paths.relative(p) for p in (paths.ingested, paths.balanced, paths.augmented)]
        )
        names = {"training": paths.relative(paths.augmented), "validation": paths.relative(paths.ingested)}
        weights_file = file_digest(paths.root / cfg.weights_path if cfg.weights_path else None)
        fp = fingerprint(cfg.model_dump(), hashes, code_digest(paths.root), weights_file)
        checkpoint = Checkpoint(paths.checkpoints, fp)
        head = Checkpoint(paths.checkpoints, fp, CHECKPOINT_FILE) if cfg.retrain_head.epochs else None
        if head is not None:
            head.extra = checkpoint.extra  # one MLflow run for both stages
        return cls(
            cfg,
            dist,
            device,
            train,
            val,
            spec,
            model,
            origin,
            batches,
            weighting.loss_by_label(classes),
            hashes,
            names,
            checkpoint,
            checkpoint.load(),
            prior,
            head,
            head and head.load(),
        )

    def data_inputs(self) -> dict[str, tuple[str, Split]]:
        """Each split the job reads, by MLflow context: its folder's dvc.yaml name and the split."""
        return {
            "training": (self.data_names["training"], self.train),
            "validation": (self.data_names["validation"], self.val),
        }

    def finished_training(self) -> bool:
        """The resumed checkpoints hold a run that trained to its end (saved or not)."""

        def done(state: dict[str, Any] | None, epochs: int) -> bool:
            return bool(state) and (len(state["history"]) >= epochs or bool(state.get("stopped_early")))

        return done(self.resume, self.cfg.epochs) and (
            self.head_checkpoint is None or done(self.head_resume, self.cfg.retrain_head.epochs)
        )

    def saved_before(self) -> bool:
        """The checkpoint's model was saved and logged already: it only needs writing out again."""
        return bool(self.resume) and bool(self.resume.get("complete"))

    def resumed_history(self) -> list[dict[str, float]]:
        """Every epoch the checkpoints hold, both stages, numbered as the run logs them."""
        first = self.resume["history"] if self.resume else []
        if not (self.head_resume and first):
            return first
        return first + [
            r.as_dict() for r in continued([EpochResult(**h) for h in self.head_resume["history"]], len(first))
        ]

    def fit(self, on_epoch: Callable[..., None] = lambda result, seconds: None) -> FitResult:
        first = fit(
            self.model,
            self.batches,
            (self.val.images, self.val.labels),
            self.cfg,
            self.loss_weights,
            self.checkpoint,
            self.resume,
            self.dist,
            on_epoch,
            self.prior,
        )
        return first if self.head_checkpoint is None else self._retrain_head(first, on_epoch)

    def _retrain_head(self, first: FitResult, on_epoch: Callable[..., None]) -> FitResult:
        """The second stage (cRT): the head alone, on class-balanced batches."""
        cfg, after, classes = head_config(self.cfg), len(first.history), len(self.spec.classes)
        prepare_head(self.model, cfg.seed)  # a resumed head stage's checkpoint replaces these weights
        sampler = head_sampler_weights(self.train.labels, classes, self.cfg.retrain_head.sampler)
        batches = TrainBatches(
            self.train.images,
            self.train.labels,
            self.device,
            cfg.batch_size,
            sampler,
            self.batches.augment,
            cfg.workers,
        )
        second = fit(
            self.model,
            batches,
            (self.val.images, self.val.labels),
            cfg,
            None,
            self.head_checkpoint,
            self.head_resume,
            self.dist,
            lambda r, s: on_epoch(continued([r], after)[0], s),
            self.spec.class_prior,
            stage="head epoch",
        )
        return FitResult(
            first.history + continued(second.history, after),
            after + second.best_epoch,
            second.stopped_early,
            first.resumed_from,
            first.epoch_seconds + second.epoch_seconds,
        )

    def mark_complete(self) -> None:
        """The model is saved and logged: neither stage's checkpoint is trained again."""
        self.checkpoint.mark_complete()
        if self.head_checkpoint is not None:
            self.head_checkpoint.mark_complete()

    def facts(self) -> dict[str, Any]:
        """What the run was, beyond params: data sizes, model size and where weights came from."""
        return {
            "data.train_images": len(self.train),
            "data.val_images": len(self.val),
            "model.parameters": sum(p.numel() for p in self.model.parameters()),
            "model.trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "model.weights": self.origin,
        }

    def describe(self) -> str:
        facts = self.facts()
        # CPU results depend on the thread count (how sums are split), so it is said.
        threads = f" ({torch.get_num_threads()} threads each)" if self.device.type == "cpu" else ""
        threads += "" if resident(self.train.images) else ", data read from disk batch by batch"
        return (
            f"train: {self.cfg.model} from {self.origin}, {facts['model.trainable_parameters']:,} of "
            f"{facts['model.parameters']:,} parameters trainable, on {self.device} x{self.dist.world}{threads}; "
            f"{len(self.train)} images, {self.cfg.epochs} epochs"
        )
