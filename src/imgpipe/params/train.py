"""The ``train`` section: the network, transfer learning, the optimiser and the loop."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import Field, model_validator

from imgpipe.params.base import KeyedError, SectionConfig, Strict
from imgpipe.params.model_names import MODEL_NAMES, SMALL_CNNS
from imgpipe.params.types import BatchSize, Epochs, Seed, Width, Workers

Kernel = Field(ge=1, le=64)  # pixels per side of a convolution's window


class SimpleCnnConfig(Strict):
    filters: Width
    kernel_size: int = Kernel
    dense_units: Width


class BaseCnnConfig(Strict):
    filters: list[Width] = Field(min_length=1, max_length=32)  # one block each
    kernel_size: int = Kernel
    padding: Literal["same", "valid"]
    dense_units: int = Field(default=0, ge=0, le=65_536)  # 0: straight from the last block to the output
    batch_norm: bool = False  # after each convolution: faster, steadier training of wider nets


class UnfreezeLast(Strict):
    unfreeze_last: int = Field(ge=0, le=1000)  # train the head and the last N feature blocks (0: the head only)


class SchedulerConfig(Strict):
    # cosine: linear warmup then cosine decay, per batch | step: x gamma every step_size
    # epochs | onecycle: torch's OneCycleLR peaking at lr | plateau: x gamma when the
    # early-stopping metric stalls for `patience` epochs
    name: Literal["none", "cosine", "step", "onecycle", "plateau"]
    warmup_epochs: float = Field(default=0.0, ge=0.0, le=10_000)
    step_size: int = Field(default=10, ge=1, le=10_000)
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)
    patience: int = Field(default=2, ge=0, le=10_000)


class EarlyStoppingConfig(Strict):
    metric: Literal["val_loss", "val_accuracy", "val_balanced_accuracy"]
    patience: int = Field(ge=0, le=10_000)  # epochs without improvement before stopping; 0 = never stop early
    restore_best: bool  # end with the weights of the best epoch by `metric`


class DeviceAugmentConfig(Strict):
    # Batched on the training device, on uint8 tensors: cheap enough for every epoch.
    hflip: bool = False
    crop_padding: int = Field(default=0, ge=0, le=1024)  # random crop after padding by this many pixels


class MixConfig(Strict):
    # Mixup / CutMix on batches (imgpipe.train.mixing); an alpha of 0 turns that one off.
    mixup_alpha: float = Field(default=0.0, ge=0.0, le=10.0)
    cutmix_alpha: float = Field(default=0.0, ge=0.0, le=10.0)
    p: float = Field(default=1.0, ge=0.0, le=1.0)  # the share of batches mixed


class EmaConfig(Strict):
    # An exponential moving average of the weights, validated and saved in their place.
    decay: float = Field(default=0.0, ge=0.0, lt=1.0)  # 0 = off; 0.999 is usual


class RetrainHeadConfig(Strict):
    # cRT: after `epochs`, re-train only the head on class-balanced batches (train/retrain_head.py).
    epochs: int = Field(default=0, ge=0, le=10_000)  # 0 = off
    sampler: Literal["class_balanced", "square_root"] = "class_balanced"


class TrainConfig(SectionConfig):
    section: ClassVar[str] = "train"

    model: Literal[MODEL_NAMES]  # type: ignore[valid-type]
    simple_cnn: SimpleCnnConfig
    base_cnn: BaseCnnConfig
    dropout: float = Field(ge=0.0, lt=1.0)  # before the output layer, for every model
    # Transfer learning: true = the default ImageNet weights, or a torchvision weights name.
    pretrained: Union[bool, str]
    weights_path: Optional[str] = None  # a local state dict for the backbone, instead of a download
    freeze: Union[Literal["none", "backbone"], UnfreezeLast]
    backbone_lr_mult: float = Field(gt=0.0, le=1.0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"]
    lr: float = Field(gt=0.0, le=10.0)
    weight_decay: float = Field(ge=0.0)
    momentum: float = Field(ge=0.0, lt=1.0)
    nesterov: bool
    scheduler: SchedulerConfig
    label_smoothing: float = Field(ge=0.0, lt=1.0)
    # Long-tail losses (imgpipe.train.losses): which classes the training errors cost most.
    loss: Literal["cross_entropy", "focal", "balanced_softmax", "logit_adjusted", "ldam"] = "cross_entropy"
    focal_gamma: float = Field(default=2.0, ge=0.0, le=10.0)
    logit_tau: float = Field(default=1.0, ge=0.0, le=5.0)
    ldam_max_margin: float = Field(default=0.5, gt=0.0, le=1.0)
    drw_epoch: int = Field(default=0, ge=0, le=10_000)  # class-balanced weights from this epoch on; 0 = never
    grad_clip_norm: float = Field(ge=0.0)  # 0 = no clipping
    early_stopping: EarlyStoppingConfig
    epochs: Epochs
    batch_size: BatchSize
    seed: Seed
    device: Literal["auto", "cpu", "cuda", "mps"]
    precision: Literal["fp32", "bf16", "fp16"]  # mixed precision on CUDA; fp32 elsewhere
    channels_last: bool  # CUDA memory format for convolutions
    device_augment: DeviceAugmentConfig
    mix: MixConfig = MixConfig()
    ema: EmaConfig = EmaConfig()
    retrain_head: RetrainHeadConfig = RetrainHeadConfig()
    # Apply the augment stage's pipeline afresh each epoch, in `workers` loader processes.
    augment_online: bool
    workers: Workers
    # Train and val splits up to this size sit whole in memory (on the GPU with CUDA);
    # bigger ones are read from disk batch by batch. The same batches either way.
    resident_max_gb: float = Field(default=4.0, ge=0.0)
    nproc: int = Field(ge=1, le=1024)  # processes for DistributedDataParallel (torchrun); 1 = plain
    # torchrun: processes on this machine (or machines joined by PET_* variables) | ray:
    # train.nproc Ray Train workers on the cluster at RAY_ADDRESS.
    launcher: Literal["torchrun", "ray"] = "torchrun"

    @model_validator(mode="after")
    def _pretrained_needs_backbone(self) -> TrainConfig:
        if self.pretrained is not False and self.model in SMALL_CNNS:
            raise KeyedError(
                "pretrained",
                f"{self.model} has no pretrained weights; use false, or a backbone "
                "such as resnet18 or efficientnet_lite0 (or weights_path for your own)",
            )
        return self

    @model_validator(mode="after")
    def _nesterov_needs_sgd(self) -> TrainConfig:
        if self.nesterov and (self.optimizer != "sgd" or not self.momentum):
            raise KeyedError("nesterov", "nesterov needs optimizer: sgd with a momentum above 0")
        return self

    @model_validator(mode="after")
    def _drw_within_the_run(self) -> TrainConfig:
        if self.drw_epoch > self.epochs:
            raise KeyedError(
                "drw_epoch",
                f"re-weighting from epoch {self.drw_epoch} never starts in a run of "
                f"{self.epochs} epochs; use 0 (off) or an epoch up to train.epochs",
            )
        return self

    def model_options(self) -> dict[str, Any]:
        """The chosen architecture's options, as ModelSpec records them."""
        options = getattr(self, self.model).model_dump() if self.model in SMALL_CNNS else {}
        # LDAM's margins are in cosine units: its classifier scores cosines, scaled.
        return {**options, "dropout": self.dropout, **({"cosine_head": True} if self.loss == "ldam" else {})}

    @property
    def unfrozen_blocks(self) -> Union[str, int]:
        return self.freeze.unfreeze_last if isinstance(self.freeze, UnfreezeLast) else self.freeze
