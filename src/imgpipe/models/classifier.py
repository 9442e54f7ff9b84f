"""The module every imgpipe network is wrapped in: uint8 NHWC images in, logits out.

Every model takes uint8 images shaped (N, H, W, C), exactly as ingest stores them, and
normalises them itself. Training, evaluation, ``imgpipe predict`` and a served MLflow
model therefore share one preprocessing path, and it runs on whatever device the model
is on.

Each architecture is built as ``blocks`` (feature stages, input to output) and a
``head`` (the classifier), so that freezing, ``unfreeze_last: N`` and a lower backbone
learning rate mean the same thing for a two-layer CNN and for a ResNet.
"""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A network split into feature blocks and a classification head."""

    def __init__(self, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


class ImageClassifier(nn.Module):
    """uint8 NHWC images in, class logits out."""

    def __init__(self, net: Classifier, mean: list[float], std: list[float], in_channels: int):
        super().__init__()
        self.net = net
        self.in_channels = in_channels  # what the network expects; grayscale is repeated to RGB
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div(255.0)
        if x.shape[1] != self.in_channels:
            x = x.expand(-1, self.in_channels, -1, -1)
        return self.net((x - self.mean) / self.std)
