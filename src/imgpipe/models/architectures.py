"""The architectures: two small CNNs to train from scratch, and torchvision/timm backbones."""

from __future__ import annotations

import torch
from torch import nn

from imgpipe.errors import ImgpipeError
from imgpipe.models.classifier import Classifier

# --- the small CNNs ------------------------------------------------------------------------


def simple_cnn(
    channels: int,
    num_classes: int,
    image_size: int,
    filters: int,
    kernel_size: int,
    dense_units: int,
    dropout: float = 0.0,
) -> Classifier:
    """Conv + ReLU, max-pool 2, flatten, dense + ReLU, output: the classic first CNN."""
    block = nn.Sequential(nn.Conv2d(channels, filters, kernel_size), nn.ReLU(), nn.MaxPool2d(2))
    flat = _flat_size([block], channels, image_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(flat, dense_units), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dense_units, num_classes)
    )
    return Classifier([block], head)


def base_cnn(
    channels: int,
    num_classes: int,
    image_size: int,
    filters: list[int],
    kernel_size: int,
    padding: str,
    dense_units: int = 0,
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> Classifier:
    """One conv (+ batch norm) + ReLU + max-pool block per entry of ``filters``, then an
    optional dense layer, then the output layer."""
    blocks: list[nn.Module] = []
    in_ch = channels
    for out_ch in filters:
        conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, bias=not batch_norm)
        norm = [nn.BatchNorm2d(out_ch)] if batch_norm else []
        blocks.append(nn.Sequential(conv, *norm, nn.ReLU(), nn.MaxPool2d(2)))
        in_ch = out_ch
    flat = _flat_size(blocks, channels, image_size)
    layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(dropout)]
    if dense_units:
        layers += [nn.Linear(flat, dense_units), nn.ReLU(), nn.Dropout(dropout)]
        flat = dense_units
    return Classifier(blocks, nn.Sequential(*layers, nn.Linear(flat, num_classes)))


def _flat_size(blocks: list[nn.Module], channels: int, image_size: int) -> int:
    with torch.no_grad():
        try:
            out = nn.Sequential(*blocks)(torch.zeros(1, channels, image_size, image_size))
        except RuntimeError as exc:
            raise ImgpipeError(
                f"the layers shrink a {image_size}px image to nothing ({exc}); "
                "use fewer filters entries, padding: same, or a larger ingest.image_size"
            ) from None
    if out.numel() == 0:
        raise ImgpipeError(
            f"the layers shrink a {image_size}px image to nothing; "
            "use fewer filters entries, padding: same, or a larger ingest.image_size"
        )
    return int(out.numel())


# --- backbones -----------------------------------------------------------------------------


def torchvision_backbone(name: str, num_classes: int, dropout: float = 0.0) -> Classifier:
    """A torchvision architecture, untrained, with a new head for ``num_classes``."""
    import torchvision

    net = torchvision.models.get_model(name, weights=None)
    if name.startswith("resnet"):
        blocks = [
            nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        ]
        head = nn.Sequential(net.avgpool, nn.Flatten(), nn.Dropout(dropout), nn.Linear(net.fc.in_features, num_classes))
    elif name.startswith(("mobilenet", "efficientnet")):
        last = net.classifier[-1]
        classifier = list(net.classifier[:-1])
        if dropout:
            classifier = [m for m in classifier if not isinstance(m, nn.Dropout)] + [nn.Dropout(dropout)]
        blocks = list(net.features)
        head = nn.Sequential(net.avgpool, nn.Flatten(), *classifier, nn.Linear(last.in_features, num_classes))
    elif name.startswith("convnext"):
        norm, flatten, last = net.classifier
        blocks = list(net.features)
        head = nn.Sequential(net.avgpool, norm, flatten, nn.Dropout(dropout), nn.Linear(last.in_features, num_classes))
    else:  # pragma: no cover - guarded by the config's Literal
        raise ValueError(f"no head rule for {name}")
    return Classifier(blocks, head)


def timm_efficientnet_lite0(num_classes: int, dropout: float = 0.0) -> Classifier:
    """timm's EfficientNet-Lite0 (the mobile EfficientNet without squeeze-excite or swish)."""
    import timm

    net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes, drop_rate=dropout)
    blocks = [nn.Sequential(net.conv_stem, net.bn1), *net.blocks, nn.Sequential(net.conv_head, net.bn2)]
    head = nn.Sequential(net.global_pool, nn.Dropout(dropout), net.classifier)
    return Classifier(blocks, head)
