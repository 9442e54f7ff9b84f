"""The alternatives ``init``'s trial measures on the folder itself.

Which way of learning wins depends on how far the images are from ImageNet's photos, and
no rule read off sizes and colours can tell: a small CNN from scratch wins on textures
and surface defects, a pretrained backbone on photos of objects and on small medical
sets. So the trial trains each of these briefly and keeps the best by measurement:

- a CNN from scratch at the images' own size (at most 64 px), with shifted crops;
- EfficientNet-Lite0 pretrained on ImageNet, at 224 px (ImageNet's size, whatever the
  images' own), its last 2 of 9 blocks retrained;
- the same, every block retrained;
- a linear probe: only a new head on the frozen ImageNet features.

Then, where the largest class is more than ``LOSS_TRIAL_RATIO`` times the smallest, the
way the loss meets the imbalance, on the chosen architecture: balanced softmax (the log
prior added to the logits in training; the same as logit-adjusted cross-entropy at tau 1),
cross-entropy on class-balanced batches, or cross-entropy with the logits adjusted after
training (``evaluate.logit_adjustment``).

A candidate is a set of params.yaml choices: the one chosen replaces the rule's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgpipe.init.profile import FolderProfile
from imgpipe.init.recipe import IMAGENET_SIZE, Choice, scratch_recipe, scratch_size, train_share, transfer_recipe

LOSS_TRIAL_RATIO = 5.0
_NO_POSTHOC = Choice("evaluate.logit_adjustment", 0.0, "the prior is corrected in training, not again when deciding")


@dataclass(frozen=True)
class Candidate:
    name: str  # a row of the printed table
    kind: str  # "scratch" or "transfer": which epoch bounds and budget the full run gets
    choices: tuple[Choice, ...]  # what it sets in params.yaml when chosen

    @property
    def image_size(self) -> int:
        return self.value("ingest.image_size")

    @property
    def balanced_batches(self) -> bool:
        return self.value("balance.method") == "weighted_sampler"

    @property
    def posthoc_tau(self) -> float:
        return float(self.value("evaluate.logit_adjustment", 0.0))

    def value(self, key: str, default: Any = None) -> Any:
        return next((c.value for c in self.choices if c.key == key), default)

    def train_params(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` (params.yaml's train section) with this candidate's train keys set."""
        params = dict(base)
        for choice in self.choices:
            section, name = choice.key.split(".", 1)
            if section == "train":
                params[name] = choice.value
        return params

    def with_choices(self, name: str, *choices: Choice) -> Candidate:
        """This candidate under another name, ``choices`` replacing its own of the same keys."""
        keys = {c.key for c in choices}
        return Candidate(name, self.kind, tuple(c for c in self.choices if c.key not in keys) + choices)


def architectures(profile: FolderProfile, image_size: int | None = None) -> list[Candidate]:
    """The four ways of learning the trial compares, the rule of thumb's own first."""
    n_train = train_share(profile)
    small = scratch_size(profile)
    big = image_size or IMAGENET_SIZE
    scratch = Candidate(
        f"CNN from scratch, {small} px",
        "scratch",
        (
            Choice(
                "ingest.image_size",
                small,
                f"the images' own size (median shorter side {profile.short_side} px, "
                f"at most 64 px for a network trained from scratch)",
            ),
            *scratch_recipe(small, n_train),
        ),
    )
    tuned = Candidate(
        f"EfficientNet-Lite0, last 2 blocks, {big} px",
        "transfer",
        (
            Choice("ingest.image_size", big, _transfer_size_reason(profile, big, image_size)),
            *transfer_recipe(big, n_train),
        ),
    )
    full = tuned.with_choices(
        f"EfficientNet-Lite0, every block, {big} px",
        Choice(
            "train.freeze",
            "none",
            "every block of the backbone learns: these images are far enough from "
            "ImageNet's photos that its early features need retraining too",
        ),
    )
    probe = tuned.with_choices(
        f"linear probe on EfficientNet-Lite0, {big} px",
        Choice(
            "train.freeze",
            "backbone",
            "only a new head learns, on the frozen ImageNet features: the folder "
            "is too small to move the backbone without overfitting",
        ),
        Choice("train.lr", 0.01, "a head on fixed features takes a larger rate"),
        Choice(
            "train.backbone_lr_mult",
            0.1,
            "unused while the backbone is frozen; the rate its blocks would "
            "move at (0.1x the head's) if `train.freeze` unfreezes them later",
        ),
        Choice("train.scheduler", {"name": "cosine", "warmup_epochs": 0}, "cosine decay; no backbone to protect"),
    )
    rule = [scratch, tuned] if profile.short_side < 64 else [tuned, scratch]
    return [*rule, full, probe]


def losses(chosen: Candidate, profile: FolderProfile) -> list[Candidate]:
    """The ways the loss can meet the imbalance, on ``chosen``: first its own (balanced
    softmax, as the rule sets it above ``LOSS_TRIAL_RATIO``), under its own name."""
    ratio = f"largest/smallest class {profile.imbalance:.1f}"
    own = chosen.with_choices(
        chosen.name,
        Choice("balance.method", "none", f"{ratio}: the loss corrects for it, no images copied or dropped"),
        Choice(
            "train.loss",
            "balanced_softmax",
            f"{ratio}: balanced softmax divides the class prior out of the logits while training",
        ),
        _NO_POSTHOC,
    )
    sampled = chosen.with_choices(
        f"{chosen.name}, cross-entropy on class-balanced batches",
        Choice("balance.method", "weighted_sampler", f"{ratio}: every class drawn equally often into the batches"),
        Choice("train.loss", "cross_entropy", "plain cross-entropy: the batches are balanced already"),
        _NO_POSTHOC,
    )
    adjusted = chosen.with_choices(
        f"{chosen.name}, cross-entropy, logits adjusted after training",
        Choice("balance.method", "none", f"{ratio}: corrected when deciding, not in training"),
        Choice("train.loss", "cross_entropy", "plain cross-entropy; the prior is taken out afterwards"),
        Choice(
            "evaluate.logit_adjustment",
            1.0,
            f"{ratio}: the log class prior subtracted from the logits when "
            "deciding (post-hoc logit adjustment, Menon et al. 2021)",
        ),
    )
    return [own, sampled, adjusted]


def _transfer_size_reason(profile: FolderProfile, size: int, asked: int | None) -> str:
    if asked:
        return "as asked (--image-size)"
    return (
        f"the size the ImageNet weights were trained at, whatever the images' own (median shorter side "
        f"{profile.short_side} px): small images upsampled to it give the backbone's features far more to see "
        "(BENCHMARKS.md, CIFAR-10-LT at 32 px: 0.39 at 224 px against 0.27 at 64); --image-size 160 trains "
        "about twice as fast on a CPU"
    )
