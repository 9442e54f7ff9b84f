"""A trained model in its folder (``store/model_folder.py``'s files): saved, and rebuilt with its
spec validated, the network created and the weights loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from imgpipe.models.classifier import ImageClassifier
from imgpipe.models.factory import create_model
from imgpipe.models.spec import ModelSpec
from imgpipe.store import model_folder


def load_model(folder: Path) -> tuple[ModelSpec, ImageClassifier]:
    """The spec and model that the train stage wrote to ``folder``, on the CPU, in eval mode."""
    data, state, spec_file = model_folder.read(folder)
    spec = ModelSpec.from_dict(data, str(spec_file))
    model = create_model(spec)
    try:
        model.load_state_dict(state)
    except Exception as exc:
        raise model_folder.weights_error(folder, exc) from None
    return spec, model.eval()


def save_model(folder: Path, model: torch.nn.Module, spec: ModelSpec, run: dict[str, Any]) -> None:
    """``model``'s weights, its spec and its MLflow run, written to ``folder`` in one atomic step."""
    model_folder.write(folder, model.state_dict(), spec.to_dict(), run)
