"""Classifier heads other than a plain linear layer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# The cosine head's logit scale (Cao et al.'s s = 30): cosines alone, in [-1, 1], are too
# flat a softmax to train.
COSINE_SCALE = 30.0


class CosineLinear(nn.Module):
    """Logits as ``scale`` times the cosine between features and each class's weight vector.

    LDAM's margins are cosine distances (Cao et al. 2019 use this head, their NormedLinear):
    with a plain linear layer the logits' scale, and so what a margin means, drifts with
    training.
    """

    def __init__(self, in_features: int, out_features: int, scale: float):
        super().__init__()
        self.scale, self.in_features, self.out_features = scale, in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Cao et al.'s initialisation: uniform, each class's vector renormalised."""
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


def use_cosine_head(head: nn.Sequential, scale: float = COSINE_SCALE) -> None:
    """Replace the head's final linear layer with a ``CosineLinear`` of the same shape."""
    last = head[-1]
    head[-1] = CosineLinear(last.in_features, last.out_features, scale)
