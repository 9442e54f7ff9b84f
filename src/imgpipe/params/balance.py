"""The ``balance`` section, and the one list of balancing methods."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field

from imgpipe.params.base import SectionConfig
from imgpipe.params.types import Seed

# imbalanced-learn samplers: they change the training set.
RESAMPLERS = ("random_over", "random_under", "smote", "borderline_smote", "adasyn", "smote_tomek", "smote_enn")
# These keep the data and act in training: a weighted loss, or a WeightedRandomSampler.
WEIGHTING = ("class_weight", "weighted_sampler")
METHODS = ("none", *RESAMPLERS, *WEIGHTING)


class BalanceConfig(SectionConfig):
    section: ClassVar[str] = "balance"

    method: Literal[METHODS]  # type: ignore[valid-type]
    # imbalanced-learn's sampling_strategy: a named strategy, a minority/majority ratio
    # (binary tasks), or target counts per class name.
    sampling_strategy: Union[
        Literal["auto", "minority", "not minority", "not majority", "all", "majority"],
        float,
        dict[str, Annotated[int, Field(ge=0, le=1_000_000_000)]],
    ]
    k_neighbors: int = Field(ge=1, le=1000)  # the SMOTE family's neighbours (ADASYN's n_neighbors)
    # A bound on the training images a resampler may write: {class: 1000000} is a typo
    # more often than a plan, and would fill the disk without a word.
    max_images: int = Field(default=1_000_000, ge=1, le=1_000_000_000)
    seed: Seed
