"""The params ``imgpipe init`` chooses for a profiled folder, each with the reason for it.

The rules are the lessons of BENCHMARKS.md: pretrained EfficientNet-Lite0 for images of
64 px or more (photos, scans, micrographs: ImageNet's features transfer even to gray
medical images when the set is small), a batch-normed CNN from scratch for small images
(characters, icons), the class prior corrected in the loss rather than by copying images
(balanced softmax: CIFAR-10-LT +8 points over cross-entropy), flips and crops on the
device rather than augmented copies on disk, and the last epoch kept, as the trial judges it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from imgpipe.init.profile import FolderProfile

TRANSFER_MIN_SIDE = 64  # below this, ImageNet's features have little to see
IMAGENET_SIZE = 224  # the size EfficientNet-Lite0's weights were trained at
# A backbone sees images of at least 64 px (smaller ones are upsampled: its stride-32
# feature map would be 1x1) and at most the size its ImageNet weights were trained at.
TRANSFER_SIZES = (64, IMAGENET_SIZE)
# A from-scratch CNN trains at the images' own size up to this: its cost grows with the
# square of the side, and a few hundred images cannot teach it more than 64 px show.
SCRATCH_MAX_SIDE = 64
IMBALANCED = 1.5  # largest/smallest class above which the loss corrects for the prior
# Images seen in a training run, so small folders still train long enough and large
# ones do not train for days: epochs = budget / training images, within the bounds.
TRANSFER_BUDGET, TRANSFER_EPOCHS = 6_000, (10, 30)
SCRATCH_BUDGET, SCRATCH_EPOCHS = 400_000, (15, 100)


# Knobs outside init's recipe, as an earlier experiment may have left them, and the value
# that turns each off: a leftover post-hoc adjustment on top of balanced softmax would
# correct for the prior twice, a leftover long tail would thin the user's folder.
NEUTRAL = {
    "ingest.long_tail": "builtin",
    "augment.mode": "copies",
    "train.weights_path": None,
    "train.drw_epoch": 0,
    "train.mix": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0},
    "train.ema": {"decay": 0.0},
    "train.retrain_head": {"epochs": 0},
    "train.augment_online": False,
    "train.grad_clip_norm": 0.0,
    "evaluate.logit_adjustment": 0.0,
    "evaluate.threshold": {"optimize": "none"},
}


@dataclass(frozen=True)
class Choice:
    key: str  # dotted params.yaml key, e.g. train.model
    value: Any
    reason: str


# The trial judges each candidate by its last epoch, so the full run keeps the same one. The
# schedules anneal to almost nothing there; the best of 30 epochs by a val split of a few
# dozen images is often an early one that a single image lifted (BENCHMARKS.md, #29: on
# brain-mri the best-val-balanced-accuracy epoch scored 0.897 on test, the last 0.932).
KEEP_LAST_EPOCH = Choice(
    "train.early_stopping",
    {"metric": "val_balanced_accuracy", "patience": 0, "restore_best": False},
    "keep the last epoch, the one the trial judged: picking the best of many epochs on a small val split "
    "picks noise (val balanced accuracy is still logged each epoch)",
)


def train_share(profile: FolderProfile, val_fraction: float = 0.15, test_fraction: float = 0.15) -> int:
    """About how many images the train split will hold after ingest's carve-outs."""
    total = sum(profile.counts.values())
    return max(
        1, round(total * (1 - val_fraction) * (1 if profile.presplit else 1 - test_fraction / (1 - val_fraction)))
    )


def choose(profile: FolderProfile, source: str, image_size: int | None = None) -> list[Choice]:
    """Every params.yaml value ``init`` sets for ``profile`` by the rule of thumb (transfer
    for images of 64 px or more), in params.yaml's order; the trial may replace some."""
    transfer = profile.short_side >= TRANSFER_MIN_SIDE
    size = image_size or _image_size(profile, transfer)
    n_train = train_share(profile)
    choices = [Choice("ingest.source", source, "the folder given"), *_ingest(profile, size, transfer, image_size)]
    choices += _balance(profile)
    choices.append(
        Choice(
            "augment.copies",
            0,
            "flips and crops are drawn afresh each epoch on the device "
            "(train.device_augment) instead of copies written to disk",
        )
    )
    choices += transfer_recipe(size, n_train) if transfer else scratch_recipe(size, n_train)
    choices.append(KEEP_LAST_EPOCH)
    return choices


def leftovers(current: dict[str, Any]) -> list[Choice]:
    """Turn off what ``current`` params (an earlier experiment's) set beyond init's recipe."""
    choices = []
    for key, off in NEUTRAL.items():
        section, name = key.split(".")
        value = current.get(section, {}).get(name)
        differs = (
            any(value.get(k) != v for k, v in off.items())
            if isinstance(off, dict) and isinstance(value, dict)
            else value != off
        )
        if differs:
            choices.append(Choice(key, off, f"not part of this recipe; was {value!r}"))
    return choices


def _image_size(profile: FolderProfile, transfer: bool) -> int:
    return transfer_size(profile) if transfer else scratch_size(profile)


def scratch_size(profile: FolderProfile) -> int:
    """The images' own size in steps of 4 px, at most SCRATCH_MAX_SIDE."""
    return max(16, min(SCRATCH_MAX_SIDE, 4 * round(profile.short_side / 4)))


def transfer_size(profile: FolderProfile) -> int:
    """The shorter side rounded down to a multiple of 32, within TRANSFER_SIZES."""
    low, high = TRANSFER_SIZES
    return max(low, min(high, 32 * (profile.short_side // 32)))


def _ingest(profile: FolderProfile, size: int, transfer: bool, asked: int | None) -> list[Choice]:
    channels = Choice(
        "ingest.channels",
        1 if profile.gray else 3,
        "the sampled images are gray: one channel loses nothing (backbones repeat it to three)"
        if profile.gray
        else "the images are in colour",
    )
    if asked:
        why = "as asked (--image-size)"
    elif not transfer:
        why = f"the images' own size (median shorter side {profile.short_side} px)"
    else:
        why = (
            f"median shorter side {profile.short_side} px, rounded down to a multiple of 32, at most "
            f"{IMAGENET_SIZE}, the size the ImageNet weights were trained at (--image-size 160 trains about "
            "twice as fast on a CPU)"
        )
    resize = Choice("ingest.resize", "squash", "keeps the whole image; objects near the border are not cut off")
    return [channels, Choice("ingest.image_size", size, why), resize]


def _balance(profile: FolderProfile) -> list[Choice]:
    ratio = f"largest/smallest class {profile.imbalance:.1f}"
    if profile.imbalance <= IMBALANCED:
        return [
            Choice("balance.method", "none", f"{ratio}: balanced enough"),
            Choice("train.loss", "cross_entropy", f"{ratio}: no prior to correct"),
        ]
    return [
        Choice("balance.method", "none", f"{ratio}: the loss corrects for it, no images copied or dropped"),
        Choice(
            "train.loss",
            "balanced_softmax",
            f"{ratio}: balanced softmax divides the class prior out "
            "(BENCHMARKS.md, CIFAR-10-LT: +8 points of balanced accuracy over cross-entropy)",
        ),
    ]


def epochs_choice(budget: int, bounds: tuple[int, int], n_train: int) -> Choice:
    epochs = min(bounds[1], max(bounds[0], math.ceil(budget / n_train)))
    return Choice(
        "train.epochs",
        epochs,
        f"about {n_train} training images: {epochs} epochs, "
        f"{epochs * n_train:,} images seen (aiming at {budget:,}, within {bounds[0]} to {bounds[1]} epochs)",
    )


def transfer_recipe(size: int, n_train: int) -> list[Choice]:
    why = f"images of {size} px: pretrained features transfer"
    return [
        Choice("train.model", "efficientnet_lite0", f"{why}; its ImageNet weights ship with imgpipe (offline)"),
        Choice("train.pretrained", True, "ImageNet weights: a small folder cannot teach a network to see"),
        Choice(
            "train.freeze",
            {"unfreeze_last": 2},
            "the head and the last 2 of 9 blocks learn; the early "
            "blocks' generic edges and textures stay as ImageNet taught them (the transfer recipe of docs/how-to/train.md, "
            "the strongest fixed recipe on every collection in BENCHMARKS.md, #29)",
        ),
        Choice("train.backbone_lr_mult", 0.1, "the unfrozen blocks move at 0.1x the new head's rate"),
        Choice("train.optimizer", "adamw", "AdamW with decoupled weight decay"),
        Choice("train.lr", 0.001, "the head's rate"),
        Choice("train.weight_decay", 0.01, "light: the pretrained weights are already a prior"),
        Choice("train.dropout", 0.2, "before the new head, as EfficientNet was trained"),
        Choice("train.label_smoothing", 0.1, "small sets overfit confident labels"),
        Choice(
            "train.scheduler",
            {"name": "cosine", "warmup_epochs": 1},
            "one warm-up epoch protects the pretrained weights from the new head's first gradients; cosine decay after",
        ),
        epochs_choice(TRANSFER_BUDGET, TRANSFER_EPOCHS, n_train),
        Choice("train.batch_size", 32 if n_train < 2000 else 64, "small sets take more, smaller steps"),
        Choice(
            "train.device_augment",
            {"hflip": True, "crop_padding": max(4, size // 10)},
            "random mirror images and shifted crops each epoch",
        ),
    ]


def scratch_recipe(size: int, n_train: int) -> list[Choice]:
    return [
        Choice(
            "train.model",
            "base_cnn",
            f"images of {size} px are too small for ImageNet features; a CNN "
            "with batch norm from scratch (BENCHMARKS.md: 0.81 on CIFAR-10 in 10 minutes on 2 CPUs)",
        ),
        Choice("train.pretrained", False, "trained from scratch"),
        Choice("train.freeze", "none", "every layer learns"),
        Choice(
            "train.base_cnn",
            {"filters": [32, 64, 128], "kernel_size": 3, "padding": "same", "dense_units": 256, "batch_norm": True},
            "three conv blocks of 32/64/128 filters",
        ),
        Choice("train.dropout", 0.3, "a dense layer trained from scratch overfits"),
        Choice("train.optimizer", "adamw", "AdamW with decoupled weight decay"),
        Choice("train.lr", 0.003, "the one-cycle schedule's peak"),
        Choice("train.weight_decay", 0.05, "a from-scratch network needs it"),
        Choice("train.label_smoothing", 0.1, "confident labels overfit"),
        Choice("train.scheduler", {"name": "onecycle"}, "one-cycle: fast and stable from scratch"),
        epochs_choice(SCRATCH_BUDGET, SCRATCH_EPOCHS, n_train),
        Choice("train.batch_size", 64 if n_train < 5000 else 128, "larger batches for larger sets"),
        Choice(
            "train.device_augment",
            {"hflip": False, "crop_padding": max(2, size // 8)},
            "shifted crops each epoch; no mirror images, which would change characters and symbols",
        ),
    ]
