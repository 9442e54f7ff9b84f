"""The ``augment`` section: an albumentations pipeline and how many variants to write."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Union

from pydantic import Field, field_validator

from imgpipe.params.base import SectionConfig


class AugmentConfig(SectionConfig):
    section: ClassVar[str] = "augment"

    # copies: `copies` variants of every image. balance: rarer classes get more variants,
    # until every class has (1 + copies) x as many images as the largest one had.
    mode: Literal["copies", "balance"]
    copies: int = Field(ge=0, le=100)
    seed: int = Field(ge=0)
    # Each entry maps one albumentations transform name to its arguments, e.g.
    # ``- Affine: {rotate: [-10, 10], p: 0.8}``. Names and arguments are checked against
    # albumentations itself when the stage builds the pipeline.
    transforms: list[dict[str, Union[dict[str, Any], None]]]

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
