"""The model factory: the architecture a ModelSpec names, untrained, with its preprocessing."""

from __future__ import annotations

from torch import nn

from imgpipe.errors import ImgpipeError
from imgpipe.models.architectures import base_cnn, simple_cnn, timm_efficientnet_lite0, torchvision_backbone
from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.heads import use_cosine_head
from imgpipe.models.spec import ModelSpec
from imgpipe.params.model_names import BACKBONES, MODEL_NAMES, TIMM_BACKBONES, TORCHVISION_BACKBONES


def create_model(spec: ModelSpec) -> ImageClassifier:
    """The architecture ``spec`` names, untrained (weights come from a file or pretraining)."""
    n = len(spec.classes)
    options = dict(spec.options)
    cosine = options.pop("cosine_head", False)  # train.loss: ldam
    if spec.name == "simple_cnn":
        net, in_ch = simple_cnn(spec.channels, n, spec.image_size, **options), spec.channels
    elif spec.name == "base_cnn":
        net, in_ch = base_cnn(spec.channels, n, spec.image_size, **options), spec.channels
    elif spec.name in TORCHVISION_BACKBONES:
        net, in_ch = torchvision_backbone(spec.name, n, options.get("dropout", 0.0)), 3
    elif spec.name in TIMM_BACKBONES:
        net, in_ch = timm_efficientnet_lite0(n, options.get("dropout", 0.0)), 3
    else:
        raise ImgpipeError(f"unknown model '{spec.name}'; choose one of {', '.join(MODEL_NAMES)}")
    if spec.name in BACKBONES:
        # A new head starts small. timm's TF-style init scales by 1/sqrt(classes), which for
        # two classes gives logits of +-30 on pretrained features and wrecks fine-tuning.
        nn.init.normal_(net.head[-1].weight, std=0.01)
        nn.init.zeros_(net.head[-1].bias)
    if cosine:
        use_cosine_head(net.head)
    mean = spec.mean or [0.5] * in_ch
    std = spec.std or [0.5] * in_ch
    if len(mean) != in_ch:  # grayscale statistics for an RGB backbone
        mean, std = mean[:1] * in_ch, std[:1] * in_ch
    return ImageClassifier(net, mean, std, in_ch)
