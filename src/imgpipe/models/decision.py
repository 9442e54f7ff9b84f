"""How a trained model's scores become decisions, as one affine map of its log-probabilities:

    decided = softmax(log p / temperature + logit_bias)

``temperature`` calibrates (temperature scaling, Guo et al. 2017); ``logit_bias`` holds
-tau x log(class prior) / temperature (post-hoc logit adjustment, Menon et al. 2021) and,
for two classes, the shift that puts the decision boundary at a chosen threshold. The
evaluate stage fits it on val (``imgpipe.evaluate.decide``) and writes it beside the
model; ``imgpipe predict`` applies it to the model it was fitted for, and the MLflow model
evaluate logs has it inside (``DecidedClassifier``), so every route decides as evaluate
scored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from imgpipe.errors import ImgpipeError


@dataclass
class Decision:
    temperature: float = 1.0
    logit_bias: list[float] = field(default_factory=list)  # one per class; empty: none
    run_id: str = ""  # the MLflow run that trained the model it was fitted for
    fitted: dict[str, Any] = field(default_factory=dict)  # what was asked for and found, for people

    @property
    def is_identity(self) -> bool:
        return self.temperature == 1.0 and not any(self.logit_bias)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Decided class probabilities from the model's own."""
        if self.is_identity:
            return proba
        from scipy.special import softmax

        z = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, None)) / self.temperature
        return softmax(z + np.asarray(self.logit_bias or 0.0), axis=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str, classes: int) -> Decision:
        """A decision read from ``where``, checked: a damaged file is refused, not applied."""
        try:
            decision = cls(
                float(data["temperature"]),
                [float(b) for b in data["logit_bias"]],
                str(data["run_id"]),
                dict(data.get("fitted", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ImgpipeError(f"{where} is not a decision evaluate wrote ({exc}); run `dvc repro evaluate`.") from None
        finite = math.isfinite(decision.temperature) and all(math.isfinite(b) for b in decision.logit_bias)
        if not finite or decision.temperature <= 0 or len(decision.logit_bias) not in (0, classes):
            raise ImgpipeError(
                f"{where}: temperature {decision.temperature} or logit_bias "
                f"{decision.logit_bias} is not a decision for {classes} classes; it was edited or is "
                "damaged: run `dvc repro evaluate`."
            )
        return decision


class DecidedClassifier(nn.Module):
    """A model with its decision inside: uint8 images in, decided logits out (what MLflow serves)."""

    def __init__(self, model: nn.Module, decision: Decision, classes: int):
        super().__init__()
        self.model = model
        self.register_buffer("temperature", torch.tensor(decision.temperature, dtype=torch.float32))
        self.register_buffer("logit_bias", torch.tensor(decision.logit_bias or [0.0] * classes, dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.model(images), dim=1) / self.temperature + self.logit_bias
