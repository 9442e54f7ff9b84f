"""The ``evaluate`` section."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import ConfigDict, Field

from imgpipe.params.base import SectionConfig, Strict
from imgpipe.params.types import BatchSize, Seed


class ThresholdConfig(Strict):
    # Two classes only: predict `class` from the probability at which, on val, balanced
    # accuracy is best, or its recall reaches `at`.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )  # "class" in params.yaml, class_name here

    optimize: Literal["none", "balanced_accuracy", "recall"] = "none"
    class_name: Optional[str] = Field(default=None, alias="class")  # default: the second class
    at: float = Field(default=0.9, gt=0.0, le=1.0)


class EvaluateConfig(SectionConfig):
    section: ClassVar[str] = "evaluate"

    batch_size: BatchSize
    tta: bool  # test-time augmentation: average each image's prediction with its mirror's
    misclassified: int = Field(ge=0, le=1000)  # how many of the most confident mistakes to show
    # Percentile-bootstrap 95% intervals for test accuracy and balanced accuracy; 0 = none.
    bootstrap_resamples: int = Field(default=1000, ge=0, le=100_000)
    seed: Seed = 0  # the bootstrap's resampling
    # Decisions, fitted on val and kept with the model (imgpipe.evaluate.decide):
    logit_adjustment: float = Field(default=0.0, ge=0.0, le=5.0)  # tau: subtract tau x log(class prior)
    calibrate: bool = False  # temperature scaling on val; ECE before and after in metrics.json
    threshold: ThresholdConfig = ThresholdConfig()
