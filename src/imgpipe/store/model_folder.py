"""``models/``: a trained model's weights, the spec to rebuild and feed it, and its MLflow run.

Files only: ``imgpipe.models.loading`` rebuilds the model from what ``read`` returns, so
the store layer never builds a network.

- ``model.pt``: the state dict;
- ``model.json``: the ``ModelSpec`` (architecture, classes, normalisation, preprocessing);
- ``run.json``: the MLflow run that trained it, which evaluate completes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from imgpipe.errors import ImgpipeError
from imgpipe.store.atomic import atomic_path, read_json, write_json

WEIGHTS_FILE = "model.pt"
SPEC_FILE = "model.json"
RUN_FILE = "run.json"


def write(folder: Path, state: dict[str, torch.Tensor], spec: dict[str, Any], run: dict[str, str]) -> None:
    """All three files in one atomic step: a model folder is whole or absent."""
    refuse_non_finite(state)
    with atomic_path(folder, replaces=is_model_folder) as tmp:  # train's previous model, not a user's folder
        tmp.mkdir()
        torch.save(state, tmp / WEIGHTS_FILE)
        write_json(tmp / SPEC_FILE, spec)
        write_json(tmp / RUN_FILE, run)


def refuse_non_finite(state: dict[str, torch.Tensor]) -> None:
    """A model with a NaN or infinite weight predicts NaN for every image: refuse to write it
    (and so to log or register it) rather than serve it."""
    bad = [name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ImgpipeError(
            f"training diverged: {len(bad)} weight tensor(s) ({', '.join(bad[:3])}) hold NaN or "
            "infinity, so no model is saved; lower train.lr or train.weight_decay (or set "
            "train.grad_clip_norm, or precision: fp32), then run `dvc repro` again."
        )


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a model that ``write`` wrote."""
    return (Path(folder) / SPEC_FILE).is_file()


def read(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    """The spec (as written) and the state dict that train wrote to ``folder``, and the spec's
    path for errors that name it; a missing or unreadable file is one sentence."""
    folder = Path(folder)
    if not (folder / SPEC_FILE).is_file():
        raise ImgpipeError(f"{folder} holds no trained model ({SPEC_FILE} is missing); run `dvc repro` first.")
    try:
        spec = json.loads((folder / SPEC_FILE).read_text())
    except ValueError as exc:
        raise ImgpipeError(
            f"{folder / SPEC_FILE} is not valid JSON ({exc}); restore it (`dvc checkout models`) "
            "or retrain (`dvc repro --force train`)."
        ) from None
    try:  # weights_only: a file that would run code when unpickled is refused, not run
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise weights_error(folder, exc) from None
    return spec, state, folder / SPEC_FILE


def weights_error(folder: Path, exc: Exception) -> ImgpipeError:
    """``model.pt`` cannot be read, or does not fit the model its spec describes."""
    return ImgpipeError(
        f"{Path(folder) / WEIGHTS_FILE} is not the plain state dict that train writes for this "
        f"model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); write it again "
        "with `dvc repro --force train` (from its checkpoint, else by retraining), or restore "
        "the folder with `dvc checkout models`."
    )


def read_run(folder: Path) -> dict[str, Any]:
    """``{"run_id", "experiment_id"}`` of the MLflow run that trained the model."""
    return read_json(Path(folder) / RUN_FILE)
