"""A trained model folder and its decision, on the best device: uint8 NHWC images in,
class probabilities out. The served model (``classifier.py``) and ``imgpipe predict``
both score through it, so the two cannot drift apart. No MLflow here: predicting from a
folder never pays for importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgpipe.models.decision import Decision
from imgpipe.models.spec import ModelSpec

BATCH = 64  # images per forward pass: small enough for any GPU at the input sizes imgpipe trains


@dataclass
class Scorer:
    spec: ModelSpec
    model: Any
    device: Any
    decision: Decision

    @classmethod
    def load(cls, folder: Path, decision: Decision | None = None) -> Scorer:
        """The model train wrote to ``folder``, on CUDA, MPS or the CPU, with ``decision`` (default: none)."""
        from imgpipe.device import select_device
        from imgpipe.models.saved import load_model

        spec, model = load_model(Path(folder))
        device = select_device("auto")
        return cls(spec, model.to(device), device, decision or Decision())

    def proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of a uint8 NHWC batch, the decision applied."""
        from imgpipe.models.inference import predict_proba

        return self.decision.apply(predict_proba(self.model, images, BATCH, self.device))
