"""One training job, set up from the project's files: data, model, weighting and checkpoint.

The train stage prepares a job, then either just fits it (a DDP worker) or fits it while
recording it in MLflow (the main process).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.device import select_device
from imgpipe.models.spec import ModelSpec
from imgpipe.params.train import TrainConfig
from imgpipe.paths import Paths
from imgpipe.store import augmented, balanced, ingested
from imgpipe.store.dataset import Split
from imgpipe.tracking.lineage import dvc_hashes
from imgpipe.train.checkpoint import Checkpoint, code_digest, file_digest, fingerprint
from imgpipe.train.data import TrainBatches
from imgpipe.train.distributed import Dist
from imgpipe.train.loop import FitResult, fit
from imgpipe.train.losses import class_prior
from imgpipe.train.setup import initial_model, model_spec

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

    @classmethod
    def prepare(cls, paths: Paths, cfg: TrainConfig, dist: Dist) -> "TrainingJob":
        device = select_device(cfg.device, dist.local_rank)
        classes = ingested.read_classes(paths.ingested)
        train = augmented.read_train(paths.augmented, mmap=False)
        val = ingested.read_split(paths.ingested, "val", mmap=False)
        # class_weight and weighted_sampler left the data alone; their weights act here.
        weighting = balanced.read_weighting(paths.balanced)
        pipeline = augmented.load_pipeline(paths.augmented, cfg.seed) if cfg.augment_online else None
        sampler = weighting.sampler_by_label(classes)
        prior = class_prior(train.labels, len(classes), sampler)
        spec = model_spec(cfg, classes, train.images, ingested.read_preprocessing(paths.ingested), prior)
        model, origin = initial_model(spec, cfg, paths.root)
        batches = TrainBatches(train.images, train.labels, device, cfg.batch_size, sampler, pipeline, cfg.workers)
        # The DVC hashes of the data read fingerprint the checkpoint and go on the MLflow run.
        hashes = dvc_hashes(paths.dvc_lock, [paths.relative(p) for p in (paths.ingested, paths.balanced, paths.augmented)])
        names = {"training": paths.relative(paths.augmented), "validation": paths.relative(paths.ingested)}
        weights_file = file_digest(paths.root / cfg.weights_path if cfg.weights_path else None)
        checkpoint = Checkpoint(paths.checkpoints, fingerprint(cfg.model_dump(), hashes, code_digest(paths.root),
                                                                weights_file))
        return cls(cfg, dist, device, train, val, spec, model, origin, batches, weighting.loss_by_label(classes),
                   hashes, names, checkpoint, checkpoint.load())

    def data_inputs(self) -> dict[str, tuple[str, Split]]:
        """Each split the job reads, by MLflow context: its folder's dvc.yaml name and the split."""
        return {"training": (self.data_names["training"], self.train),
                "validation": (self.data_names["validation"], self.val)}

    def finished_training(self) -> bool:
        """The resumed checkpoint holds a run that trained to its end (saved or not)."""
        return bool(self.resume) and (len(self.resume["history"]) >= self.cfg.epochs
                                      or bool(self.resume.get("stopped_early")))

    def saved_before(self) -> bool:
        """The checkpoint's model was saved and logged already: it only needs writing out again."""
        return bool(self.resume) and bool(self.resume.get("complete"))

    def fit(self, on_epoch: Callable[..., None] = lambda result, seconds: None) -> FitResult:
        return fit(self.model, self.batches, (self.val.images, self.val.labels), self.cfg, self.loss_weights,
                   self.checkpoint, self.resume, self.dist, on_epoch, self.spec.class_prior)

    def facts(self) -> dict[str, Any]:
        """What the run was, beyond params: data sizes, model size and where weights came from."""
        return {"data.train_images": len(self.train), "data.val_images": len(self.val),
                "model.parameters": sum(p.numel() for p in self.model.parameters()),
                "model.trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
                "model.weights": self.origin}

    def describe(self) -> str:
        facts = self.facts()
        return (f"train: {self.cfg.model} from {self.origin}, {facts['model.trainable_parameters']:,} of "
                f"{facts['model.parameters']:,} parameters trainable, on {self.device} x{self.dist.world}; "
                f"{len(self.train)} images, {self.cfg.epochs} epochs")
