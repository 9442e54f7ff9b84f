"""The ``ingest`` section: where images come from and how they are decoded and split."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from imgpipe.params.base import Fraction, KeyedError, SectionConfig
from imgpipe.params.types import Channels, ImageSize, PixelLimit, ResizeMode, Seed, Workers

TORCHVISION_NAMES = ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST")


class IngestConfig(SectionConfig):
    section: ClassVar[str] = "ingest"

    # digits | torchvision:<Name> | a folder of class folders | a .csv manifest
    source: str = Field(min_length=1)
    image_size: ImageSize
    channels: Channels
    resize: ResizeMode
    # Thins the trainable pool to a long tail (largest class / smallest); 1 keeps all.
    imbalance_ratio: float = Field(ge=1.0, le=10_000)
    # Which sources imbalance_ratio thins: builtin (digits, torchvision:*) takes a user's own
    # folder or manifest as it is; all thins those too, e.g. CIFAR-10-LT from image files.
    long_tail: Literal["builtin", "all"]
    val_fraction: float = Fraction
    test_fraction: float = Fraction
    seed: Seed
    workers: Workers  # decoding processes; 0 = every available core
    # local: processes on this machine | ray: Ray tasks on the cluster at RAY_ADDRESS. The same output.
    engine: Literal["local", "ray"] = "local"
    # cpu: Pillow, as always | cuda: JPEGs decoded and resized in batches on the GPU (nvJPEG), other
    # files with Pillow; pixels a fraction of a level off cpu's (device_decoding.py) | auto: cuda if any.
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    # Val/test images that nearly copy a train image (or, for test, a val one): resized,
    # recompressed, slightly cropped. drop: out of val/test, so they cannot inflate scores.
    near_duplicates: Literal["drop", "keep"]
    near_duplicate_distance: int = Field(ge=0, le=64)  # bits of a 64-bit perceptual hash
    max_pixels: PixelLimit
    max_bad_fraction: float = Field(ge=0.0, le=1.0)
    torchvision_root: str = Field(min_length=1)
    download: bool

    @field_validator("source")
    @classmethod
    def _known_torchvision(cls, source: str) -> str:
        if source.startswith("torchvision:") and source.split(":", 1)[1] not in TORCHVISION_NAMES:
            raise ValueError(f"torchvision datasets are {', '.join('torchvision:' + n for n in TORCHVISION_NAMES)}")
        return source

    @model_validator(mode="after")
    def _room_for_train(self) -> IngestConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise KeyedError("test_fraction", "val_fraction + test_fraction must leave at least 10% for training")
        return self

    @model_validator(mode="after")
    def _device_is_local(self) -> IngestConfig:
        if self.engine == "ray" and self.device != "cpu":
            raise KeyedError(
                "device",
                "Ray tasks decode with Pillow on the cluster's CPUs; set ingest.device: cpu "
                "with ingest.engine: ray, or ingest.engine: local to decode on this machine's GPU",
            )
        return self
