"""Classifier re-training (cRT, Kang et al. 2020): the second of two training stages.

Features learnt from the data as it comes are good even on a long tail; it is the
classifier that leans towards the frequent classes. With ``train.retrain_head.epochs``
above 0, after ``train.epochs`` the feature blocks are frozen, the head's final layer is
re-initialised, and the head trains again on class-balanced batches (``sampler:
class_balanced``) or square-root sampled ones (``square_root``), with plain
cross-entropy and none of the first stage's mixing, weight average or re-weighting. The
head stage checkpoints to a file of its own, so a kill in either stage resumes there, and
its epochs continue the first stage's numbering.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.freeze import apply_freeze
from imgpipe.params.train import EmaConfig, MixConfig, RetrainHeadConfig, TrainConfig
from imgpipe.train.state import EpochResult

CHECKPOINT_FILE = "head.pt"  # beside the first stage's last.pt


def head_config(cfg: TrainConfig) -> TrainConfig:
    """The train params of the head stage: its epochs, cross-entropy, nothing mixed or averaged."""
    return cfg.model_copy(
        update={
            "epochs": cfg.retrain_head.epochs,
            "loss": "cross_entropy",
            "drw_epoch": 0,
            "mix": MixConfig(),
            "ema": EmaConfig(),
            "retrain_head": RetrainHeadConfig(),
        }
    )


def head_sampler_weights(labels: np.ndarray, num_classes: int, sampler: str) -> list[float]:
    """Per-class weights of a weighted sampler: each class drawn equally (``class_balanced``),
    or in proportion to the square root of its size (``square_root``)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    power = 1.0 if sampler == "class_balanced" else 0.5
    return [float(c**-power) if c else 0.0 for c in counts]


def prepare_head(model: ImageClassifier, seed: int) -> None:
    """Freeze the feature blocks and re-initialise the head's final layer, seeded."""
    apply_freeze(model, "backbone")
    torch.manual_seed(seed)
    model.net.head[-1].reset_parameters()


def continued(results: list[EpochResult], after: int) -> list[EpochResult]:
    """The head stage's epochs numbered on from the first stage's ``after`` epochs."""
    return [dataclasses.replace(r, epoch=r.epoch + after) for r in results]
