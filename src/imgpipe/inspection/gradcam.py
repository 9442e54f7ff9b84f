"""Where the model looks: Grad-CAM heat maps (pytorch_grad_cam) over test images.

The target layer is found from what the network does, not from its name, so one rule
serves the small CNNs and every backbone: the last module, in the order the modules
finish, whose output is a 4-D feature map larger than 1x1, inside the feature blocks
(``Classifier.blocks``; the stack as a whole is not one layer, and its output is its last
block's anyway). Containers finish after their children, so this is the block or stage
that ends in that map rather than the activation inside it. Modules called more than once
in a pass (ResNet's blocks reuse one ReLU) are passed over: they would give the target two
activations.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch import nn

from imgpipe.errors import ImgpipeError
from imgpipe.models.classifier import ImageClassifier

BATCH_SIZE = 32  # Grad-CAM keeps activations and gradients: smaller batches than inference


def find_target_layer(model: ImageClassifier, sample: torch.Tensor) -> nn.Module:
    """The Grad-CAM target of ``model``, found with forward hooks on one batch (uint8 NHWC)."""
    finished: list[nn.Module] = []
    calls: Counter = Counter()
    height, width = sample.shape[1:3]

    def note(module: nn.Module, args, output) -> None:
        calls[module] += 1
        # A map no larger than the image: the channels-last tensors inside ConvNeXt's
        # blocks, (N, H, W, channels), are 4-D too, but their last axis is channels.
        if (
            isinstance(output, torch.Tensor)
            and output.dim() == 4
            and output.shape[-2] * output.shape[-1] > 1
            and output.shape[-2] <= height
            and output.shape[-1] <= width
        ):
            finished.append(module)

    blocks = model.net.blocks
    handles = [m.register_forward_hook(note) for m in blocks.modules() if m is not blocks]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    once = [m for m in finished if calls[m] == 1]
    if not once:
        raise ImgpipeError(
            f"the model's feature maps are all 1x1 at {sample.shape[1]}px, so Grad-CAM has nothing "
            "to show; use a larger ingest.image_size."
        )
    return once[-1]


class ChannelsFirst(nn.Module):
    """The model with NCHW input. pytorch_grad_cam sizes its heat maps from the input's last
    two dimensions, which for imgpipe's NHWC images would be width and channels."""

    def __init__(self, model: ImageClassifier):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.permute(0, 2, 3, 1))


def heat_maps(
    model: ImageClassifier, target: nn.Module, images: np.ndarray, classes: np.ndarray, device: torch.device
) -> np.ndarray:
    """(N, H, W) Grad-CAM maps in 0..1 of uint8 NHWC ``images``, each for its class in ``classes``.

    The input stays uint8: GradCAM only asks for gradients at the input when
    ``compute_input_gradient`` is set (it is not), and needs them only at the target
    layer, whose output requires gradients because the layers before it have weights.
    It moves the input to the model's device itself.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    for parameter in model.parameters():  # a frozen model would leave the target without gradients
        parameter.requires_grad_(True)
    cam = GradCAM(model=ChannelsFirst(model).to(device), target_layers=[target])
    out = np.zeros((len(images), *np.asarray(images).shape[1:3]), dtype=np.float32)
    try:  # not `with GradCAM(...)`: its __exit__ prints and swallows IndexErrors
        for start in range(0, len(images), BATCH_SIZE):
            batch = torch.from_numpy(np.array(images[start : start + BATCH_SIZE])).permute(0, 3, 1, 2)
            targets = [ClassifierOutputTarget(int(c)) for c in classes[start : start + BATCH_SIZE]]
            with torch.enable_grad():
                out[start : start + len(batch)] = cam(input_tensor=batch, targets=targets)
    finally:
        cam.activations_and_grads.release()
    return out


def choose_examples(labels: np.ndarray, proba: np.ndarray, top: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the ``top`` most confident mistakes, most confident first; a seeded sample of each class).

    The sample takes ``top // classes`` images of each class (at least one), class by class.
    """
    from imgpipe.evaluate.metrics import most_confident_mistakes

    mistakes = most_confident_mistakes(labels, proba, top)
    rng = np.random.default_rng(seed)
    per_class = max(1, top // proba.shape[1])
    sample = [
        rng.choice(np.flatnonzero(labels == c), min(per_class, int((labels == c).sum())), replace=False)
        for c in range(proba.shape[1])
        if (labels == c).any()
    ]
    return mistakes, np.concatenate(sample).astype(np.int64) if sample else np.zeros(0, dtype=np.int64)
