"""Training losses for long-tailed data, and the class prior they are built on.

``train.loss`` picks one; each takes the class weights that balance left (``class_weight``)
and ``train.label_smoothing``:

- ``cross_entropy``: plain cross-entropy.
- ``focal`` (Lin et al. 2017): each example's loss times (1 - p)^gamma, so examples the
  model already gets right count for less (``train.focal_gamma``).
- ``balanced_softmax`` (Ren et al. 2020) and ``logit_adjusted`` (Menon et al. 2021): the
  logits are shifted by tau * log(prior) during training only, so the model itself learns
  scores for balanced classes; balanced softmax is tau = 1, logit adjustment takes
  ``train.logit_tau``.
- ``ldam`` (Cao et al. 2019): the true class must win by a margin that grows for rarer
  classes (proportional to n^-1/4, the largest ``train.ldam_max_margin``), on a cosine
  classifier head (``imgpipe.models.heads``) whose logits are 30 times a cosine.

``train.drw_epoch`` (deferred re-weighting, Cao et al.) switches any of them to
class-balanced weights (the effective number of samples, Cui et al. 2019) from that epoch
on: first learn features from the data as it comes, then even out the classes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from imgpipe.models.heads import COSINE_SCALE
from imgpipe.params.train import TrainConfig

# Cui et al.'s beta for the effective number of samples, (1 - beta^n) / (1 - beta).
EFFECTIVE_NUMBER_BETA = 0.9999


def class_prior(labels: np.ndarray, num_classes: int, sampler_weights: list[float] | None = None) -> list[float]:
    """How often training draws each class: the label counts, times a weighted sampler's
    per-class weights when there is one (that is the distribution the batches follow)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    if sampler_weights is not None:
        counts = counts * np.asarray(sampler_weights, dtype=np.float64)
    return (counts / max(counts.sum(), 1e-12)).round(8).tolist()


def class_balanced_weights(prior: list[float], total: int) -> list[float]:
    """Cui et al.'s weights, (1 - beta) / (1 - beta^n) per class, scaled to average 1."""
    counts = np.maximum(np.asarray(prior, dtype=np.float64) * total, 1.0)
    weights = (1.0 - EFFECTIVE_NUMBER_BETA) / (1.0 - EFFECTIVE_NUMBER_BETA**counts)
    return (weights / weights.mean()).tolist()


class TrainLoss(nn.Module):
    """The loss ``train.loss`` names, on (logits, labels); ``start_epoch`` applies DRW."""

    def __init__(self, cfg: TrainConfig, prior: list[float], weights: list[float] | None, total: int):
        super().__init__()
        self.kind, self.gamma, self.smoothing = cfg.loss, cfg.focal_gamma, cfg.label_smoothing
        self.drw_epoch, self.drw_weights = cfg.drw_epoch, class_balanced_weights(prior, total)
        log_prior = torch.log(torch.tensor(prior, dtype=torch.float32).clamp_min(1e-12))
        tau = {"balanced_softmax": 1.0, "logit_adjusted": cfg.logit_tau}.get(cfg.loss, 0.0)
        self.register_buffer("shift", tau * log_prior)
        # LDAM margins, n^-1/4 scaled so the rarest class gets ldam_max_margin (in cosine units).
        margins = torch.exp(-0.25 * log_prior)
        self.register_buffer("margins", cfg.ldam_max_margin * margins / margins.max() * COSINE_SCALE)
        self.register_buffer(
            "weight", torch.tensor(weights, dtype=torch.float32) if weights else torch.ones(len(prior))
        )
        self.weighted = bool(weights)  # unweighted is a plain mean, bit for bit as before

    def start_epoch(self, epoch: int) -> None:
        """Deferred re-weighting: class-balanced weights from ``train.drw_epoch`` on."""
        if self.drw_epoch and epoch >= self.drw_epoch:
            self.weight.copy_(torch.tensor(self.drw_weights, dtype=torch.float32))
            self.weighted = True

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.kind == "ldam":
            logits = logits - F.one_hot(labels, logits.shape[1]) * self.margins[labels].unsqueeze(1)
        if self.kind in ("balanced_softmax", "logit_adjusted"):
            logits = logits + self.shift
        if self.kind != "focal":
            weight = self.weight if self.weighted else None
            return F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.smoothing)
        each = F.cross_entropy(logits, labels, reduction="none", label_smoothing=self.smoothing)
        p_true = torch.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
        w = self.weight[labels]
        return (w * (1.0 - p_true).pow(self.gamma) * each).sum() / w.sum()
