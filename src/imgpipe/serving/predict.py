"""Predictions for new image files, from a trained model folder or an MLflow model.

New files go through the very decoding ingest used (the settings travel with the model
in its spec), so a photo predicted here is prepared exactly like the training images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imgpipe.errors import ImgpipeError
from imgpipe.ingest.decoding import decode_file
from imgpipe.ingest.sources import walk_images
from imgpipe.models.decision import Decision
from imgpipe.models.spec import ModelSpec
from imgpipe.paths import Paths
from imgpipe.serving.decode import decode_settings
from imgpipe.serving.schema import PIXELS, is_served_signature


@dataclass
class Predictor:
    spec: ModelSpec
    proba: Callable[[np.ndarray], np.ndarray]  # uint8 NHWC batch -> class probabilities
    source: str


def load_predictor(ref: str | None, root: Path) -> Predictor:
    """``ref``: a model folder as train writes it (default: the project's), or an MLflow
    model URI (``models:/<name>/<version>``, ``runs:/<run_id>/model``)."""
    if ref is None:
        ref = str(Paths(root).model_dir)
    if ref.startswith(("models:/", "runs:/")):
        return _mlflow_predictor(ref, root)
    from imgpipe.serving.scorer import Scorer

    folder = root / ref  # an absolute ref stays as it is
    try:
        scorer = Scorer.load(folder)
    except ImgpipeError as exc:  # here a registered model is the other way out
        raise ImgpipeError(f"{exc} Or pass --model models:/<name>/<version>.") from None
    scorer.decision = project_decision(root, folder, len(scorer.spec.classes))
    return Predictor(scorer.spec, scorer.proba, str(folder))


def project_decision(root: Path, folder: Path, classes: int) -> Decision:
    """The decision evaluate fitted for the model in ``folder``: the project's, when it was
    fitted for this very model (the same training run), else none."""
    from imgpipe.store.atomic import read_json
    from imgpipe.store.model_folder import read_run

    path = Paths(root).decision
    if not path.is_file():
        return Decision()
    decision = Decision.from_dict(read_json(path), str(path), classes)
    return decision if decision.run_id == read_run(folder).get("run_id") else Decision()


def _mlflow_predictor(uri: str, root: Path) -> Predictor:
    import mlflow

    from imgpipe.tracking.store import check_reachable, tracking_uri

    check_reachable(tracking_uri(root))  # MLflow's client would retry an absent server for minutes
    mlflow.set_tracking_uri(tracking_uri(root))
    try:
        info = mlflow.models.get_model_info(uri)
        model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise ImgpipeError(f"cannot load MLflow model {uri} from {tracking_uri(root)}: {exc}") from None
    spec_dict = (info.metadata or {}).get("imgpipe_spec")
    if not spec_dict:
        raise ImgpipeError(f"{uri} was not logged by imgpipe (its metadata has no imgpipe_spec).")

    spec = ModelSpec.from_dict(
        spec_dict, f"{uri} (its imgpipe_spec)", "register a model logged by a current train stage"
    )
    if is_served_signature(info.signature):

        def proba(images: np.ndarray) -> np.ndarray:
            # The served model takes decoded pixels too, with its decision inside.
            answer = model.predict(pd.DataFrame({PIXELS: list(images)}))
            return np.array([[row[c] for c in spec.classes] for row in answer["probabilities"]])

        return Predictor(spec, proba, uri)

    def logits_proba(images: np.ndarray) -> np.ndarray:
        from scipy.special import softmax

        # A model logged by imgpipe before it served image files: uint8 arrays in, logits out.
        logits = np.concatenate([np.asarray(model.predict(images[i : i + 64])) for i in range(0, len(images), 64)])
        return softmax(logits, axis=1)

    return Predictor(spec, logits_proba, uri)


def image_paths(paths: list[str]) -> list[Path]:
    """Files as given, and the image files inside folders, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(walk_images(path))
        elif path.is_file():
            found.append(path)
        else:
            raise ImgpipeError(f"{raw}: no such file or folder")
    return found


def predict_files(predictor: Predictor, files: list[Path], batch_size: int = 256) -> pd.DataFrame:
    """One row per file: the predicted class and its probability, or why it was skipped."""
    spec = predictor.spec
    settings = decode_settings(spec)
    rows = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        decoded = [decode_file(path, settings) for path in chunk]
        good = [i for i, d in enumerate(decoded) if d.pixels is not None]
        proba = (
            predictor.proba(np.stack([decoded[i].pixels for i in good])) if good else np.zeros((0, len(spec.classes)))
        )
        by_index = dict(zip(good, proba))
        for i, path in enumerate(chunk):
            if i in by_index:
                p = by_index[i]
                rows.append(
                    {
                        "file": str(path),
                        "class": spec.classes[int(p.argmax())],
                        "probability": round(float(p.max()), 6),
                        "error": "",
                    }
                )
            else:
                rows.append({"file": str(path), "class": "", "probability": float("nan"), "error": decoded[i].reason})
    return pd.DataFrame(rows, columns=["file", "class", "probability", "error"])
