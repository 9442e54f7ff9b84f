"""What a trained model is, beyond its weights: the record needed to rebuild and feed it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, ValidationError, field_validator, model_validator

from imgpipe.errors import ImgpipeError
from imgpipe.params.base import Strict
from imgpipe.params.model_names import MODEL_NAMES
from imgpipe.params.types import Channels, FiniteData, ImageSize, PixelLimit, ResizeMode


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model from its weights, and to feed it."""

    name: str
    options: dict[str, Any]
    classes: list[str]
    image_size: int
    channels: int
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    # How ingest made the images, so `imgpipe predict` prepares new files identically.
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # How often training drew each class (in `classes` order): what post-hoc logit
    # adjustment divides out. Empty in specs written before it existed.
    class_prior: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        where: str,
        remedy: str = "restore it (`dvc checkout models`) or retrain (`dvc repro --force train`)",
    ) -> ModelSpec:
        """A spec read from ``where`` (a model folder's file, a registered model's metadata),
        checked with the limits params.yaml is held to: a tampered file is refused, not trusted."""
        try:
            _SpecSchema.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(the whole spec)"
            raise ImgpipeError(
                f"{where}: {key}: {err['msg']} (got {err['input']!r}); it was edited or is damaged: {remedy}."
            ) from None
        for key in ("image_size", "channels"):
            # The model was built for one of them and new images are decoded to the other:
            # a shape error deep in the network, or silently wrong answers.
            done = (data.get("preprocessing") or {}).get(key, data[key])
            if done != data[key]:
                raise ImgpipeError(
                    f"{where}: preprocessing.{key} is {done!r} but {key} is {data[key]!r}, and they "
                    f"must agree; it was edited or is damaged: {remedy}."
                )
        return cls(**data)


class _Preprocessing(Strict):
    image_size: ImageSize
    channels: Channels
    resize: ResizeMode
    max_pixels: PixelLimit


class _SpecSchema(Strict):
    name: Literal[MODEL_NAMES]  # type: ignore[valid-type]
    options: dict[str, FiniteData]
    classes: list[str] = Field(min_length=2)
    image_size: ImageSize
    channels: Channels
    mean: list[float] = Field(default_factory=list, max_length=3)
    std: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list, max_length=3)
    preprocessing: Optional[_Preprocessing] = None  # empty in specs written before it existed
    class_prior: list[Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _a_prior_per_class(self) -> _SpecSchema:
        if self.class_prior and len(self.class_prior) != len(self.classes):
            raise ValueError(f"class_prior has {len(self.class_prior)} entries for {len(self.classes)} classes")
        return self

    @field_validator("preprocessing", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == {} else value
