"""The ``augment`` section: an albumentations pipeline, how many variants to write, and where."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Union

from pydantic import Field, field_validator, model_validator

from imgpipe.params.base import KeyedError, SectionConfig
from imgpipe.params.types import FiniteData, Seed

# The transforms imgpipe.augment.batched can run on a device (augment.device: cuda | auto).
# Named here, not there, so that params are checked without importing torch.
BATCHED_TRANSFORMS = (
    "Affine",
    "RandomBrightnessContrast",
    "GaussNoise",
    "HorizontalFlip",
    "VerticalFlip",
    "PadIfNeeded",
    "RandomCrop",
)


class AugmentConfig(SectionConfig):
    section: ClassVar[str] = "augment"

    # copies: `copies` variants of every image. balance: rarer classes get more variants,
    # until every class has (1 + copies) x as many images as the largest one had.
    mode: Literal["copies", "balance"]
    copies: int = Field(ge=0, le=100)
    seed: Seed
    # Each entry maps one albumentations transform name to its arguments, e.g.
    # ``- Affine: {rotate: [-10, 10], p: 0.8}``. Names and arguments are checked against
    # albumentations itself when the stage builds the pipeline.
    transforms: list[dict[str, Union[dict[str, FiniteData], None]]]
    # cpu: albumentations, one image at a time. cuda: the same transforms in batches on the
    # GPU (imgpipe.augment.batched; other random numbers, so other variants). auto: cuda when
    # torch sees a GPU, else cpu.
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    @field_validator("transforms")
    @classmethod
    def _one_name_per_entry(cls, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, entry in enumerate(entries):
            if len(entry) != 1:
                raise ValueError(
                    f"entry {i} must map exactly one transform name to its arguments, "
                    f"e.g. '- HorizontalFlip: {{p: 0.5}}'; got keys {sorted(entry)}"
                )
        return entries

    @model_validator(mode="after")
    def _batched_transforms_only_off_the_cpu(self) -> AugmentConfig:
        # auto is checked too: the same params must work on a machine with a GPU and without.
        if self.device == "cpu":
            return self
        for i, entry in enumerate(self.transforms):
            name = next(iter(entry))
            if name not in BATCHED_TRANSFORMS:
                raise KeyedError(
                    f"transforms[{i}]",
                    f"{name} has no batched equivalent for augment.device: "
                    f"{self.device} (which runs {', '.join(BATCHED_TRANSFORMS)}); use augment.device: cpu",
                )
        return self
