"""Which blocks train: frozen backbones, ``unfreeze_last: N``, and a slower backbone."""

from __future__ import annotations

from typing import Any

from imgpipe.errors import ImgpipeError
from imgpipe.models.classifier import ImageClassifier


def apply_freeze(model: ImageClassifier, freeze: str | int) -> None:
    """``none`` trains everything; ``backbone`` only the head; an int N the head and the
    last N feature blocks. Frozen batch-norm layers keep their ImageNet statistics too."""
    blocks = list(model.net.blocks)
    trainable = len(blocks) if freeze == "none" else 0 if freeze == "backbone" else int(freeze)
    if trainable > len(blocks):
        raise ImgpipeError(
            f"params.yaml: train.freeze.unfreeze_last: {trainable} is more than the "
            f"{len(blocks)} blocks this model has; use at most {len(blocks)}."
        )
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
