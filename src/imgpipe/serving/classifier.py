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
from imgpipe.serving.budget import MB, ByteBudget, Limits
from imgpipe.serving.decode import decode_row, decode_settings, decoding_cost, row_source
from imgpipe.serving.schema import ANSWER_COLUMNS, IMAGE, PIXELS
from imgpipe.serving.scorer import Scorer


class ServedClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from imgpipe.store.atomic import read_json

        self.scorer = Scorer.load(Path(context.artifacts["model"]))
        self.spec = self.scorer.spec
        decision = context.artifacts.get("decision")
        if decision:
            self.scorer.decision = Decision.from_dict(read_json(Path(decision)), decision, len(self.spec.classes))
        self.settings = decode_settings(self.spec)
        self.limits = Limits.from_env()
        # One per process (a server process serves one model): requests run in threads.
        self.budget = ByteBudget(self.limits.process)

    # A DataFrame hint, the one MLflow neither infers a signature from nor warns about: the
    # signature is stated when logging (``schema``).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """A table of request rows (``schema``) -> a table of answers, one per row."""
        frame = columns_as_rows(model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input))
        if IMAGE not in frame.columns and PIXELS not in frame.columns:
            # MLflow drops columns its signature does not name: a misnamed one leaves none.
            raise refused(
                f"the request has no {IMAGE} column (an encoded file, base64 in JSON) and no {PIXELS} "
                f"column (decoded uint8 pixels); name one of them in each row (other columns are ignored)"
            )
        rows = [
            row_source(getattr(row, IMAGE, None), getattr(row, PIXELS, None), self.settings)
            for row in frame.itertuples(index=False)
        ]
        costs = [decoding_cost(source, self.settings) if isinstance(source, bytes) else 0 for source, _ in rows]
        total = sum(cost for cost in costs if cost <= self.limits.image)  # larger ones are refused on their own
        if total > self.limits.request:
            raise refused(
                f"decoding this request's images would take about {total // MB} MB, over "
                f"IMGPIPE_SERVE_MAX_REQUEST_MB ({self.limits.request // MB}); send them in smaller requests"
            )
        pixels, errors = [], []
        for (source, error), cost in zip(rows, costs):
            image, reason = decode_row(source, cost, self.settings, self.limits, self.budget)
            pixels.append(image)
            errors.append(error or reason)
        good = [i for i, p in enumerate(pixels) if p is not None]
        proba = (
            self.scorer.proba(np.stack([pixels[i] for i in good])) if good else np.zeros((0, len(self.spec.classes)))
        )
        return answer_table(len(frame), dict(zip(good, proba)), errors, self.spec.classes)


def columns_as_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The request's rows. MLflow reads the column form of ``inputs`` and ``instances``,
    ``{"image": ["<base64>", ...]}``, as ONE row holding the list (a dict of string lists
    is a single record to it): a row per file is what the client meant."""
    if (
        len(frame) == 1
        and list(frame.columns) == [IMAGE]
        and isinstance(frame[IMAGE].iloc[0], (list, tuple, np.ndarray))
    ):
        return pd.DataFrame({IMAGE: list(frame[IMAGE].iloc[0])})
    return frame


def refused(message: str) -> Exception:
    """A request the server answers with 400 and ``message``, in process an MlflowException."""
    from mlflow.exceptions import MlflowException

    return MlflowException.invalid_parameter_value(message)


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
