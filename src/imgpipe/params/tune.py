"""The ``tune`` section: the search ``imgpipe tune`` runs. No stage reads it or depends on it.

Its ``space`` maps a params key to the values to try::

    space:
      train.lr: {log_uniform: [1.0e-4, 1.0e-2]}
      train.optimizer: [adam, sgd]                   # a list: pick one
      train.freeze.unfreeze_last: {int: [0, 4]}
      train.dropout: {uniform: [0.0, 0.5]}
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from imgpipe.params.base import KeyedError, SectionConfig, Strict
from imgpipe.params.types import Seed, finite_data

# Sections a trial may change: those of the stages. Not mlflow (where runs are recorded)
# nor tune itself.
TUNABLE_SECTIONS = ("ingest", "balance", "augment", "train", "evaluate")


class Range(Strict):
    """A numeric range; exactly one of its keys is given."""

    uniform: Optional[tuple[float, float]] = None
    log_uniform: Optional[tuple[float, float]] = None
    # "int" in params.yaml; a field named int would hide the type in this class.
    integer: Optional[tuple[int, int]] = Field(default=None, alias="int")
    log_int: Optional[tuple[int, int]] = None
    step: Optional[float] = Field(default=None, gt=0)  # uniform and int only: a grid of this spacing

    @model_validator(mode="after")
    def _one_kind(self) -> Range:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, log_uniform, int, log_int (or a list of choices)")
        name, (low, high) = _KINDS[given[0]], getattr(self, given[0])
        if low > high:
            raise ValueError(f"{name}: the low end {low} is above the high end {high}")
        if name.startswith("log") and low <= 0:
            raise ValueError(f"{name}: both ends must be above 0 (got {low})")
        return self

    @property
    def kind(self) -> str:
        """uniform, log_uniform, int or log_int."""
        return next(_KINDS[k] for k in _KINDS if getattr(self, k) is not None)

    @property
    def bounds(self) -> tuple[Any, Any]:
        return next(getattr(self, k) for k in _KINDS if getattr(self, k) is not None)


_KINDS = {"uniform": "uniform", "log_uniform": "log_uniform", "integer": "int", "log_int": "log_int"}


def _dimension_kind(value: Any) -> str:
    return "choices" if isinstance(value, list) else "range"


# Tagged: an error names the one form the value was written in, not both forms' errors.
Dimension = Annotated[
    Union[Annotated[list[Any], Tag("choices")], Annotated[Range, Tag("range")]], Discriminator(_dimension_kind)
]


class PrunerConfig(Strict):
    # median: stop a trial whose metric at an epoch is below the median of earlier trials
    # at that epoch | successive_halving: keep the top 1/reduction at rungs | none
    name: Literal["median", "successive_halving", "none"] = "median"
    startup_trials: int = Field(default=3, ge=0, le=10_000)  # median: finished trials before any is pruned
    warmup_epochs: int = Field(default=2, ge=0, le=10_000)  # epochs every trial runs before it can be pruned


class TuneConfig(SectionConfig):
    section: ClassVar[str] = "tune"

    study: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # trials: tune-<study>-<n>
    metric: str = "val.balanced_accuracy"  # a key of metrics.json; never test.*
    direction: Literal["maximize", "minimize"] = "maximize"
    trials: int = Field(default=20, ge=1, le=10_000)  # per `imgpipe tune` (--trials overrides)
    timeout: Optional[float] = Field(default=None, gt=0)  # seconds; no new trial starts after it
    seed: Seed = 0  # Optuna's TPE sampler
    pruner: PrunerConfig = PrunerConfig()
    space: dict[str, Dimension] = Field(min_length=1)

    @field_validator("metric")
    @classmethod
    def _not_test(cls, metric: str) -> str:
        if metric.split(".")[0] == "test":
            raise ValueError(
                "choosing settings by their test score makes the test score optimistic; "
                "use a val.* metric (e.g. val.balanced_accuracy)"
            )
        if "." not in metric:
            raise ValueError("name a metrics.json key with its split, e.g. val.balanced_accuracy")
        return metric

    @field_validator("space")
    @classmethod
    def _known_sections(cls, space: dict[str, Dimension]) -> dict[str, Dimension]:
        for key, dim in space.items():
            if key.split(".")[0] not in TUNABLE_SECTIONS or "." not in key:
                raise KeyedError(
                    key,
                    f"a key of a stage's section ({', '.join(TUNABLE_SECTIONS)}), written section.key, e.g. train.lr",
                )
            if isinstance(dim, list) and not dim:
                raise KeyedError(key, "the list of choices is empty")
            try:
                finite_data(dim)
            except ValueError as exc:
                raise KeyedError(key, f"choice {exc}") from None
        return space

    @classmethod
    def is_defined(cls, raw: dict[str, Any]) -> bool:
        return cls.section in raw
