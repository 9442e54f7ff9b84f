"""The served model as an MLflow pyfunc: a trained model folder, the decision evaluate
fitted for it, and ingest's decoding, so a client sends a photo and never reimplements
the preprocessing (size, channels, resize mode, EXIF, palettes) the model was trained with.

MLflow loads it from ``model_code.py`` with the imgpipe package beside it (``code_paths``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from imgpipe.models.decision import Decision
from imgpipe.serving.decode import decode_settings, row_pixels
from imgpipe.serving.schema import ANSWER_COLUMNS, IMAGE, PIXELS


class ServedClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from imgpipe.models.device import select_device
        from imgpipe.store import model_folder
        from imgpipe.store.atomic import read_json

        self.spec, self.model = model_folder.load(Path(context.artifacts["model"]))
        self.device = select_device("auto")
        self.model.to(self.device)
        decision = context.artifacts.get("decision")
        self.decision = Decision.from_dict(read_json(Path(decision)), decision, len(self.spec.classes)) \
            if decision else Decision()
        self.settings = decode_settings(self.spec)

    # A DataFrame hint, the one MLflow neither infers a signature from nor warns about: the
    # signature is stated when logging (``schema``).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """A table of request rows (``schema``) -> a table of answers, one per row."""
        from imgpipe.models.inference import predict_proba

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)  # unwrapped use
        pixels, errors = [], []
        for row in frame.itertuples(index=False):
            image, error = row_pixels(getattr(row, IMAGE, None), getattr(row, PIXELS, None), self.settings)
            pixels.append(image)
            errors.append(error)
        good = [i for i, p in enumerate(pixels) if p is not None]
        proba = self.decision.apply(predict_proba(self.model, np.stack([pixels[i] for i in good]), 64, self.device)) \
            if good else np.zeros((0, len(self.spec.classes)))
        return answer_table(len(frame), dict(zip(good, proba)), errors, self.spec.classes)


def answer_table(rows: int, proba: dict[int, np.ndarray], errors: list[str], classes: list[str]) -> pd.DataFrame:
    """A row per request row: the class, its probability, every class's, or why not."""
    answer = []
    for i in range(rows):
        if i in proba:
            p = proba[i]
            answer.append([classes[int(p.argmax())], float(p.max()), dict(zip(classes, map(float, p))), ""])
        else:
            answer.append(["", 0.0, {}, errors[i]])
    return pd.DataFrame(answer, columns=ANSWER_COLUMNS)
