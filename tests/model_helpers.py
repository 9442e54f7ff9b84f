"""Models and training runs sized for tests: the shipped train params, small digit models."""

from __future__ import annotations

import torch
import yaml

from helpers import REPO
from imgpipe.models.factory import create_model
from imgpipe.models.spec import ModelSpec
from imgpipe.params.train import TrainConfig
from imgpipe.train.data import TrainBatches
from imgpipe.train.loop import fit

CPU = torch.device("cpu")


def spec(name: str, options: dict, channels: int = 1, size: int = 32, classes: int = 3) -> ModelSpec:
    return ModelSpec(
        name=name, options=options, classes=[f"c{i}" for i in range(classes)], image_size=size, channels=channels
    )


def train_cfg(**changes) -> TrainConfig:
    """The shipped params.yaml train section, with test-sized changes."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    base.update(
        simple_cnn={"filters": 8, "kernel_size": 3, "dense_units": 32},
        base_cnn={"filters": [4, 8], "kernel_size": 3, "padding": "same"},
        lr=0.003,
        epochs=4,
        batch_size=32,
        seed=0,
        device="cpu",
        workers=0,
    )
    return TrainConfig(**{**base, **changes})


def train(model, train_split, val_split, cfg: TrainConfig, augment=None, sampler_weights=None, **fit_options):
    """``fit`` on (images, labels) pairs on the CPU, with the stage's batching."""
    batches = TrainBatches(train_split[0], train_split[1], CPU, cfg.batch_size, sampler_weights, augment, cfg.workers)
    return fit(model, batches, val_split, cfg, **fit_options)


def seeded_model(model_spec: ModelSpec):
    """Built after seeding, as the train stage does, so repeated runs start from the same weights."""
    torch.manual_seed(0)
    return create_model(model_spec)


def digits_spec(name="simple_cnn", options=None) -> ModelSpec:
    options = options or {"filters": 8, "kernel_size": 3, "dense_units": 32}
    return ModelSpec(name=name, options=options, classes=[str(i) for i in range(10)], image_size=8, channels=1)
