"""Project paths and typed, validated params.

Every path the pipeline reads or writes is derived here from the project root, and the
layout mirrors ``dvc.yaml``. Each stage validates its own slice of ``params.yaml`` into a
frozen config object before doing any work; an unknown key, a wrong type or an
out-of-range value stops it with a message that names the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imgpipe.errors import ParamsError


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds ``dvc.yaml``.

    DVC runs every stage from the folder of ``dvc.yaml``, and tests run copies of the
    project elsewhere, so the root follows the working directory rather than the location
    of this file. ``IMGPIPE_ROOT`` overrides the search.
    """
    if env := os.environ.get("IMGPIPE_ROOT"):
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return here


@dataclass(frozen=True)
class Paths:
    """Where each stage's inputs and outputs live, as declared in ``dvc.yaml``."""

    root: Path

    @classmethod
    def discover(cls) -> "Paths":
        return cls(find_project_root())

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def raw(self) -> Path:
        """Where users keep (and `dvc add`) their own images; ingest depends on it."""
        return self.root / "raw"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def ingested(self) -> Path:
        return self.data / "ingest"

    @property
    def balanced(self) -> Path:
        return self.data / "balance"

    @property
    def augmented(self) -> Path:
        return self.data / "augment"

    @property
    def model_dir(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def ingest_report(self) -> Path:
        return self.reports / "ingest.json"

    @property
    def ingest_samples(self) -> Path:
        return self.reports / "ingest_samples.png"

    @property
    def balance_report(self) -> Path:
        return self.reports / "balance.json"

    @property
    def balance_counts(self) -> Path:
        return self.reports / "balance_counts.png"

    @property
    def balance_synthetic(self) -> Path:
        return self.reports / "balance_synthetic.png"

    @property
    def augment_preview(self) -> Path:
        return self.reports / "augment_preview.png"

    @property
    def train_history(self) -> Path:
        return self.reports / "train_history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def training_curves(self) -> Path:
        return self.reports / "training_curves.png"

    @property
    def roc_csv(self) -> Path:
        return self.reports / "roc.csv"

    @property
    def pr_csv(self) -> Path:
        return self.reports / "precision_recall.csv"

    @property
    def misclassified_png(self) -> Path:
        return self.reports / "misclassified.png"

    @property
    def per_class_csv(self) -> Path:
        return self.reports / "per_class.csv"

    @property
    def confusion_csv(self) -> Path:
        return self.reports / "confusion.csv"

    @property
    def confusion_png(self) -> Path:
        return self.reports / "confusion_matrix.png"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"


# ---------------------------------------------------------------------------- params


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SectionConfig(_Strict):
    """One top-level section of params.yaml; ``section`` names it."""

    section: ClassVar[str]

    @classmethod
    def load(cls: type[_C], params_path: Path | None = None) -> _C:
        path = params_path or Paths.discover().params
        raw = read_params(path)
        if cls.section not in raw:
            raise ParamsError(f"{path.name}: section '{cls.section}' is missing; add it (see README).")
        try:
            return cls.model_validate(raw[cls.section] or {})
        except ValidationError as exc:
            raise ParamsError(format_validation_error(exc, cls.section, path)) from None


_C = TypeVar("_C", bound=SectionConfig)

Fraction = Field(gt=0.0, lt=1.0)


TORCHVISION_NAMES = ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST")


class IngestConfig(SectionConfig):
    section: ClassVar[str] = "ingest"

    # digits | torchvision:<Name> | a folder of class folders | a .csv manifest
    source: str = Field(min_length=1)
    image_size: int = Field(ge=8, le=1024)
    channels: Literal[1, 3]
    resize: Literal["squash", "center_crop", "letterbox"]
    # Thins the trainable pool to a long tail (largest class / smallest); 1 keeps all.
    imbalance_ratio: float = Field(ge=1.0)
    # Which sources imbalance_ratio thins: builtin (digits, torchvision:*) takes a user's own
    # folder or manifest as it is; all thins those too, e.g. CIFAR-10-LT from image files.
    long_tail: Literal["builtin", "all"]
    val_fraction: float = Fraction
    test_fraction: float = Fraction
    seed: int = Field(ge=0)
    workers: int = Field(ge=0)  # decoding processes; 0 = every available core
    max_pixels: int = Field(ge=1)  # larger images are skipped as decompression bombs
    max_bad_fraction: float = Field(ge=0.0, le=1.0)
    torchvision_root: str = Field(min_length=1)
    download: bool

    @field_validator("source")
    @classmethod
    def _known_torchvision(cls, source: str) -> str:
        if source.startswith("torchvision:") and source.split(":", 1)[1] not in TORCHVISION_NAMES:
            raise ValueError(f"torchvision datasets are {', '.join('torchvision:' + n for n in TORCHVISION_NAMES)}")
        return source

    @field_validator("test_fraction")
    @classmethod
    def _room_for_train(cls, test: float, info: Any) -> float:
        val = info.data.get("val_fraction", 0.0)
        if val + test >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return test


class BalanceConfig(SectionConfig):
    section: ClassVar[str] = "balance"

    # none | imbalanced-learn resamplers | class_weight and weighted_sampler, which keep
    # the data and act in training (a weighted loss, or a WeightedRandomSampler).
    method: Literal[
        "none", "random_over", "random_under", "smote", "borderline_smote", "adasyn",
        "smote_tomek", "smote_enn", "class_weight", "weighted_sampler",
    ]
    # imbalanced-learn's sampling_strategy: a named strategy, a minority/majority ratio
    # (binary tasks), or target counts per class name.
    sampling_strategy: Union[
        Literal["auto", "minority", "not minority", "not majority", "all", "majority"],
        float,
        dict[str, int],
    ]
    k_neighbors: int = Field(ge=1)  # the SMOTE family's neighbours (ADASYN's n_neighbors)
    seed: int = Field(ge=0)


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


class SimpleCnnConfig(_Strict):
    filters: int = Field(ge=1)
    kernel_size: int = Field(ge=1)
    dense_units: int = Field(ge=1)


class BaseCnnConfig(_Strict):
    filters: list[int] = Field(min_length=1)
    kernel_size: int = Field(ge=1)
    padding: Literal["same", "valid"]
    dense_units: int = Field(default=0, ge=0)  # 0: straight from the last block to the output
    batch_norm: bool = False  # after each convolution: faster, steadier training of wider nets

    @field_validator("filters")
    @classmethod
    def _positive(cls, filters: list[int]) -> list[int]:
        if any(f < 1 for f in filters):
            raise ValueError("every filter count must be at least 1")
        return filters


class UnfreezeLast(_Strict):
    unfreeze_last: int = Field(ge=1)  # train the head and the last N feature blocks


class SchedulerConfig(_Strict):
    # cosine: linear warmup then cosine decay, per batch | step: x gamma every step_size
    # epochs | onecycle: torch's OneCycleLR peaking at lr | plateau: x gamma when the
    # early-stopping metric stalls for `patience` epochs
    name: Literal["none", "cosine", "step", "onecycle", "plateau"]
    warmup_epochs: float = Field(default=0.0, ge=0.0)
    step_size: int = Field(default=10, ge=1)
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)
    patience: int = Field(default=2, ge=0)


class EarlyStoppingConfig(_Strict):
    metric: Literal["val_loss", "val_accuracy", "val_balanced_accuracy"]
    patience: int = Field(ge=0)  # epochs without improvement before stopping; 0 = never stop early
    restore_best: bool  # end with the weights of the best epoch by `metric`


class DeviceAugmentConfig(_Strict):
    # Batched on the training device, on uint8 tensors: cheap enough for every epoch.
    hflip: bool = False
    crop_padding: int = Field(default=0, ge=0)  # random crop after padding by this many pixels


class TrainConfig(SectionConfig):
    section: ClassVar[str] = "train"

    model: Literal[
        "simple_cnn", "base_cnn", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0",
        "convnext_tiny", "efficientnet_lite0",
    ]
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
    grad_clip_norm: float = Field(ge=0.0)  # 0 = no clipping
    early_stopping: EarlyStoppingConfig
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    seed: int = Field(ge=0)
    device: Literal["auto", "cpu", "cuda", "mps"]
    precision: Literal["fp32", "bf16", "fp16"]  # mixed precision on CUDA; fp32 elsewhere
    channels_last: bool  # CUDA memory format for convolutions
    device_augment: DeviceAugmentConfig
    # Apply the augment stage's pipeline afresh each epoch, in `workers` loader processes.
    augment_online: bool
    workers: int = Field(ge=0)
    nproc: int = Field(ge=1)  # processes for DistributedDataParallel (torchrun); 1 = plain

    @field_validator("pretrained")
    @classmethod
    def _pretrained_needs_backbone(cls, pretrained: Union[bool, str], info: Any) -> Union[bool, str]:
        if pretrained is not False and info.data.get("model") in ("simple_cnn", "base_cnn"):
            raise ValueError(f"{info.data['model']} has no pretrained weights; use false, or a backbone "
                             "such as resnet18 or efficientnet_lite0 (or weights_path for your own)")
        return pretrained

    @field_validator("nesterov")
    @classmethod
    def _nesterov_needs_sgd(cls, nesterov: bool, info: Any) -> bool:
        if nesterov and (info.data.get("optimizer") != "sgd" or not info.data.get("momentum")):
            raise ValueError("nesterov needs optimizer: sgd with a momentum above 0")
        return nesterov

    def model_options(self) -> dict[str, Any]:
        """The chosen architecture's options, as ModelSpec records them."""
        options = getattr(self, self.model).model_dump() if self.model in ("simple_cnn", "base_cnn") else {}
        return {**options, "dropout": self.dropout}

    @property
    def unfrozen_blocks(self) -> Union[str, int]:
        return self.freeze.unfreeze_last if isinstance(self.freeze, UnfreezeLast) else self.freeze


class EvaluateConfig(SectionConfig):
    section: ClassVar[str] = "evaluate"

    batch_size: int = Field(ge=1)
    tta: bool  # test-time augmentation: average each image's prediction with its mirror's
    misclassified: int = Field(ge=0)  # how many of the most confident mistakes to show


class MlflowConfig(SectionConfig):
    section: ClassVar[str] = "mlflow"

    experiment_name: str = Field(min_length=1)
    # Register each trained model under this name in the MLflow model registry; null = don't.
    registered_model: Optional[str] = None


SECTIONS: dict[str, type[SectionConfig]] = {
    c.section: c
    for c in (IngestConfig, BalanceConfig, AugmentConfig, TrainConfig, EvaluateConfig, MlflowConfig)
}


def read_params(path: Path) -> dict[str, Any]:
    """params.yaml as a dict, with unknown top-level sections refused."""
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the project root, where params.yaml lives.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path.name} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path.name} must be a mapping of sections (ingest, balance, ...).")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(
            f"{path.name}: unknown section(s) {', '.join(unknown)}; "
            f"expected only {', '.join(SECTIONS)}."
        )
    return raw


def format_validation_error(exc: ValidationError, section: str, path: Path) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join([section, *(str(p) for p in err["loc"])])
        given = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        lines.append(f"{path.name}: {key}: {err['msg']}{given}")
    return "\n".join(lines)
