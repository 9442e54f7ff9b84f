"""The model a training run starts from: its spec, architecture, first weights and freezing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.factory import create_model
from imgpipe.models.freeze import apply_freeze
from imgpipe.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, initialise
from imgpipe.models.spec import ModelSpec
from imgpipe.params.train import TrainConfig
from imgpipe.train.data import channel_stats
from imgpipe.train.state import seed_everything


def model_spec(
    cfg: TrainConfig, classes: list[str], images: np.ndarray, preprocessing: dict[str, Any], prior: list[float]
) -> ModelSpec:
    """The spec of the model to train on ``images`` (N, H, W, C), drawn with class ``prior``."""
    # Pretrained backbones expect the statistics of their ImageNet training images.
    transfer = cfg.pretrained is not False
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if transfer else channel_stats(images)
    return ModelSpec(
        cfg.model,
        cfg.model_options(),
        classes,
        images.shape[1],
        images.shape[3],
        mean,
        std,
        preprocessing=preprocessing,
        class_prior=prior,
    )


def initial_model(spec: ModelSpec, cfg: TrainConfig, root: Path) -> tuple[ImageClassifier, str]:
    """The seeded, untrained model with its backbone weights loaded and frozen as asked;
    and a note of where the weights came from."""
    seed_everything(cfg.seed)
    model = create_model(spec)
    origin = initialise(model, cfg.model, cfg.pretrained, root / cfg.weights_path if cfg.weights_path else None)
    apply_freeze(model, cfg.unfrozen_blocks)
    return model, origin
