"""What a trained model is, beyond its weights: the record needed to rebuild and feed it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

