"""Model architectures, and the wrapper that makes them take stored images directly.

Every model takes uint8 images shaped (N, H, W, C), exactly as ingest stores them, and
normalises them itself. Training, evaluation and a served MLflow model therefore share
one preprocessing path, and it runs on whatever device the model is on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from imgpipe.config import TrainConfig


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model from its weights."""

    name: str
    options: dict[str, Any]
    classes: list[str]
    image_size: int
    channels: int
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_train_config(cls, cfg: TrainConfig, classes: list[str], image_shape: tuple[int, ...]) -> "ModelSpec":
        options = getattr(cfg, cfg.model).model_dump()
        return cls(name=cfg.model, options=options, classes=list(classes), image_size=image_shape[0], channels=image_shape[2])


class ImageClassifier(nn.Module):
    """uint8 NHWC images in, class logits out."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div(255.0)
        return self.net((x - self.mean) / self.std)


def simple_cnn(channels: int, num_classes: int, image_size: int, filters: int, kernel_size: int, dense_units: int) -> nn.Module:
    """Conv + ReLU, max-pool 2, flatten, dense + ReLU, output: the classic first CNN."""
    features = nn.Sequential(nn.Conv2d(channels, filters, kernel_size), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    flat = _flat_size(features, channels, image_size)
    return nn.Sequential(features, nn.Linear(flat, dense_units), nn.ReLU(), nn.Linear(dense_units, num_classes))


def base_cnn(channels: int, num_classes: int, image_size: int, filters: list[int], kernel_size: int, padding: str) -> nn.Module:
    """One conv + ReLU + max-pool block per entry of ``filters``, then the output layer."""
    layers: list[nn.Module] = []
    in_ch = channels
    for out_ch in filters:
        layers += [nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding), nn.ReLU(), nn.MaxPool2d(2)]
        in_ch = out_ch
    features = nn.Sequential(*layers, nn.Flatten())
    return nn.Sequential(features, nn.Linear(_flat_size(features, channels, image_size), num_classes))


def _flat_size(features: nn.Module, channels: int, image_size: int) -> int:
    with torch.no_grad():
        try:
            out = features(torch.zeros(1, channels, image_size, image_size))
        except RuntimeError as exc:
            raise ValueError(f"the layers shrink a {image_size}px image to nothing: {exc}") from None
    if out.shape[1] == 0:
        raise ValueError(f"the layers shrink a {image_size}px image to nothing")
    return int(out.shape[1])


ARCHITECTURES = {"simple_cnn": simple_cnn, "base_cnn": base_cnn}


def build_model(spec: ModelSpec) -> ImageClassifier:
    make = ARCHITECTURES[spec.name]
    net = make(spec.channels, len(spec.classes), spec.image_size, **spec.options)
    mean = spec.mean or [0.5] * spec.channels
    std = spec.std or [0.5] * spec.channels
    return ImageClassifier(net, mean, std)


@torch.no_grad()
def predict_proba(model: nn.Module, images: Any, batch_size: int, device: torch.device) -> "np.ndarray":
    """Class probabilities for uint8 NHWC images (a numpy array, memory-mapped or not)."""
    import numpy as np

    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.array(images[start : start + batch_size])).to(device)
        out.append(torch.softmax(model(batch), dim=1).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
