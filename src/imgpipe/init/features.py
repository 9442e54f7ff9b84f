"""A candidate's frozen blocks run once per image in the trial, not once per epoch.

A linear probe, or a backbone with only its last blocks retrained, computes the same
output from its frozen blocks every epoch. So the trial runs those blocks once over every
sampled image (a plain view, and ``VIEWS - 1`` mirrored and shifted crops drawn as
``train.device_augment`` draws them), keeps the output resident, and trains only what
learns (the retrained blocks and the head) on it. In the trial's equal seconds such a
candidate then gets several times the epochs: judged after 2 epochs, a fine-tune loses to
a linear probe that its full run beats (BENCHMARKS.md, #29).

The full run still trains on images with fresh crops each epoch; the trial's views are
fewer, which makes the trial, if anything, harder on candidates that overfit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from imgpipe.models.classifier import ImageClassifier
from imgpipe.params.train import DeviceAugmentConfig, TrainConfig
from imgpipe.train.data import augment_batch, epoch_order

VIEWS = 2  # per image: the plain view (also what validation sees) and one augmented view
_BATCH = 64


def frozen_blocks(cfg: TrainConfig, model: ImageClassifier) -> int:
    """How many leading blocks ``apply_freeze`` left frozen in ``model``, where the trial may
    cache their output: 0 where none are, or where Mixup/CutMix or an EMA need the whole model."""
    if cfg.mix.mixup_alpha or cfg.mix.cutmix_alpha or cfg.ema.decay:
        return 0
    blocks = list(model.net.blocks)
    return next((i for i, b in enumerate(blocks) if any(p.requires_grad for p in b.parameters())), len(blocks))


@dataclass(frozen=True)
class FeatureCache:
    views: torch.Tensor  # (VIEWS, N, ...) the frozen blocks' output for each sampled image
    frozen: int  # leading blocks it stands for
    seconds: float  # what computing it took


@torch.no_grad()
def cache_features(
    model: ImageClassifier,
    frozen: int,
    images: np.ndarray,
    augment: DeviceAugmentConfig,
    device: torch.device,
    generator: torch.Generator,
    autocast,
) -> FeatureCache:
    """The first ``frozen`` blocks' output over ``images`` (N, H, W, C), in ``VIEWS`` views."""
    began = time.perf_counter()
    model.eval()
    prefix = _prefix(model, frozen)
    views = []
    for view in range(VIEWS):
        parts = []
        for start in range(0, len(images), _BATCH):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + _BATCH])).to(device)
            x = augment_batch(x, augment, generator) if view else x
            with autocast():
                parts.append(prefix(x))
        views.append(torch.cat(parts))
    return FeatureCache(torch.stack(views), frozen, time.perf_counter() - began)


def _prefix(model: ImageClassifier, frozen: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` up to its first ``frozen`` blocks: its own ``forward`` (the preprocessing
    inside the model) on a stand-in whose network is those blocks, so that the trial uses
    the very preprocessing training does without train's code changing for it."""
    stand_in = SimpleNamespace(
        net=model.net.blocks[:frozen], mean=model.mean, std=model.std, in_channels=model.in_channels
    )
    return lambda images: ImageClassifier.forward(stand_in, images)


class Suffix(nn.Module):
    """The blocks after the frozen ones and the head, sharing ``model``'s parameters."""

    def __init__(self, model: ImageClassifier, frozen: int):
        super().__init__()
        self.blocks, self.head = model.net.blocks[frozen:], model.net.head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(features))


class FeatureBatches:
    """A fold's training rows of the cache as an epoch of batches, each row in a random view."""

    def __init__(
        self,
        cache: FeatureCache,
        rows: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        sampler_weights: list[float] | None = None,
    ):
        self.cache, self.batch_size = cache, batch_size
        self.rows = torch.from_numpy(rows.astype(np.int64)).to(cache.views.device)
        self.y = torch.from_numpy(labels.astype(np.int64)).to(cache.views.device)
        self.sample_weights = None
        if sampler_weights is not None:
            self.sample_weights = torch.tensor(sampler_weights, dtype=torch.float64)[
                torch.from_numpy(labels.astype(np.int64))
            ]

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def epoch(self, generator: torch.Generator) -> tuple[Iterable, int]:
        order = epoch_order(len(self.y), generator, self.sample_weights).to(self.y.device)
        view = torch.randint(0, VIEWS, (len(order),), generator=generator).to(self.y.device)
        return (
            (self.cache.views[v, self.rows[idx]], self.y[idx])
            for idx, v in zip(order.split(self.batch_size), view.split(self.batch_size))
        ), self.steps_per_epoch
