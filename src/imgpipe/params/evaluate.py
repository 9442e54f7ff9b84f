"""The ``evaluate`` section."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from imgpipe.params.base import SectionConfig


class EvaluateConfig(SectionConfig):
    section: ClassVar[str] = "evaluate"

    batch_size: int = Field(ge=1)
    tta: bool  # test-time augmentation: average each image's prediction with its mirror's
    misclassified: int = Field(ge=0)  # how many of the most confident mistakes to show
    # Percentile-bootstrap 95% intervals for test accuracy and balanced accuracy; 0 = none.
    bootstrap_resamples: int = Field(default=1000, ge=0, le=100_000)
    seed: int = Field(default=0, ge=0)  # the bootstrap's resampling
