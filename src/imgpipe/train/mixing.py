"""Mixup and CutMix on whole batches, on the device (``train.mix``).

Mixup (Zhang et al. 2018) blends each image with another of the batch; CutMix (Yun et
al. 2019) pastes a box of another image in. Either way the loss is lam x the loss for the
image's own label plus (1 - lam) x the loss for the other's, so any ``train.loss`` works
(torchvision's MixUp and CutMix return soft labels instead, which LDAM's margins and the
focal loss cannot take). Every draw comes from the run's seeded generator, as the flips
do, so runs repeat and resume exactly.
"""

from __future__ import annotations

import math

import torch
from scipy.special import betaincinv

from imgpipe.params.train import MixConfig


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand(1, generator=generator))


def mix_batch(
    x: torch.Tensor, y: torch.Tensor, cfg: MixConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix a uint8 NHWC batch; returns the images, the partner labels and lam (1: unmixed)."""
    if not (cfg.mixup_alpha or cfg.cutmix_alpha) or len(y) < 2 or _uniform(generator) >= cfg.p:
        return x, y, 1.0
    # Both on: each batch gets one of the two, half the time each (timm's rule).
    cutmix = bool(cfg.cutmix_alpha) and (not cfg.mixup_alpha or _uniform(generator) < 0.5)
    alpha = cfg.cutmix_alpha if cutmix else cfg.mixup_alpha
    lam = float(betaincinv(alpha, alpha, _uniform(generator)))  # Beta(alpha, alpha), from the generator
    partner = torch.randperm(len(y), generator=generator).to(y.device)
    if not cutmix:
        return x.float() * lam + x[partner].float() * (1.0 - lam), y[partner], lam
    _, h, w, _ = x.shape
    cut_h, cut_w = int(h * math.sqrt(1.0 - lam)), int(w * math.sqrt(1.0 - lam))
    cy, cx = int(_uniform(generator) * h), int(_uniform(generator) * w)
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = x.clone()
    mixed[:, top:bottom, left:right] = x[partner, top:bottom, left:right]
    # The box may be clipped at the border: lam is the share of the image left as it was.
    return mixed, y[partner], 1.0 - (bottom - top) * (right - left) / (h * w)
