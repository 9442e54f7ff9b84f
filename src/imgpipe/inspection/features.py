"""Penultimate-layer features: the input of the head's final layer, caught with a hook.

The hook sits on whatever module turns features into logits, so the same code serves a
plain ``Linear``, the cosine head of ``train.loss: ldam`` and every architecture's head
(which may pool, normalise or add a dense layer before it): what reaches the last layer
is, by construction, what the classifier separates the classes with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from imgpipe.errors import ImgpipeError
from imgpipe.store.dataset import Split

# Images per forward pass: the size imgpipe predict uses; inference holds no gradients.
BATCH_SIZE = 64


def logits_layer(head: nn.Module) -> nn.Module:
    """The head's last Linear-like module (one with ``in_features``): the one giving logits."""
    layers = [m for m in head.modules() if isinstance(getattr(m, "in_features", None), int)]
    if not layers:
        raise ImgpipeError(
            f"the model's head ({type(head).__name__}) has no Linear-like final layer to take "
            "features from; retrain it with `dvc repro --force train`."
        )
    return layers[-1]


@torch.no_grad()
def penultimate_features(
    model: Callable[[torch.Tensor], Any], layer: nn.Module, images: Any, device: torch.device, bar: tqdm | None = None
) -> np.ndarray:
    """(N, D) float32 features of uint8 NHWC ``images`` (an array or a lazy ``Stacked``),
    read and run a batch at a time so memory stays at one batch plus the result."""
    caught: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda module, args: caught.append(args[0].detach()))
    out = np.zeros((len(images), 0), dtype=np.float32)
    try:
        for start in range(0, len(images), BATCH_SIZE):
            batch = torch.from_numpy(np.array(images[start : start + BATCH_SIZE])).to(device)  # a writable copy
            caught.clear()
            model(batch)
            features = caught[-1].flatten(1).float().cpu().numpy()
            if start == 0:  # one array for the result, as inference.predict_proba does
                out = np.empty((len(images), features.shape[1]), dtype=np.float32)
            out[start : start + len(features)] = features
            if bar is not None:
                bar.update(1)
    finally:
        handle.remove()
    return out


def split_features(
    model: Callable[[torch.Tensor], Any],
    layer: nn.Module,
    splits: dict[str, Split],
    device: torch.device,
    desc: str = "embed",
) -> np.ndarray:
    """The features of every split, one after another, under one progress bar of batches."""
    if isinstance(model, nn.Module):
        model.eval()
    total = sum(math.ceil(len(split) / BATCH_SIZE) for split in splits.values())
    with tqdm(total=total, desc=desc, unit="batch", mininterval=1.0) as bar:
        parts = [penultimate_features(model, layer, split.images, device, bar) for split in splits.values()]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
