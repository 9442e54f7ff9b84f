"""The trained model in MLflow: a pyfunc that takes image files, with its signature, an
example request and the imgpipe spec; and the registered version that evaluate names."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

import imgpipe
from imgpipe.serving.schema import IMAGE, signature

PACKAGE = Path(imgpipe.__file__).parent
# Loaded by MLflow as code, not imported here: a stage that logs a model does not run it.
MODEL_CODE = PACKAGE / "serving" / "model_code.py"
# What loading the model and decoding a file import, pinned to the versions it was trained with.
SERVING_DISTRIBUTIONS = (
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "pandas",
    "pillow",
    "scipy",
    "pydantic",
    "pyyaml",
    "tqdm",
)


def log_model(
    model_dir: Path, example: Any, spec: dict[str, Any], name: str = "model", decision: dict[str, Any] | None = None
) -> Any:
    """Log the model in ``model_dir`` (as train writes it) as a pyfunc that serves image files.

    The imgpipe package travels inside the model (``code_paths``), so the served model
    decodes with the very code and settings ingest used; ``decision`` (evaluate's) goes in
    with it. ``example`` holds training images; the first becomes the logged example
    request, a PNG. Returns MLflow's ``ModelInfo``.
    """
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "imgpipe"
        shutil.copytree(PACKAGE, code, ignore=shutil.ignore_patterns("__pycache__"))
        artifacts = {"model": str(model_dir)}
        if decision:
            from imgpipe.store.atomic import write_json

            write_json(Path(tmp) / "decision.json", decision)
            artifacts["decision"] = str(Path(tmp) / "decision.json")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            code_paths=[str(code)],
            signature=signature(),
            input_example=example_request(example),
            pip_requirements=requirements(),
            metadata={"imgpipe_spec": spec, **({"imgpipe_decision": decision} if decision else {})},
        )


def example_request(images: Any) -> Any:
    """One training image as a client sends it: an encoded file in the ``image`` column."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    pixels = np.asarray(images[0])
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return pd.DataFrame({IMAGE: [buffer.getvalue()]})


def requirements() -> list[str]:
    """Stated rather than inferred: MLflow infers them by loading the model in a fresh
    process (seconds a training on 2 cores)."""
    from importlib.metadata import PackageNotFoundError, version

    import mlflow

    pinned = []
    for dist in SERVING_DISTRIBUTIONS:
        try:
            pinned.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return [*mlflow.pyfunc.get_default_pip_requirements(), *pinned]


def logged_model(run_id: str, name: str) -> Any:
    """The newest model called ``name`` that run ``run_id`` logged, or None."""
    import mlflow

    run = mlflow.get_run(run_id)
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        output_format="list",
        filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
        order_by=[{"field_name": "creation_time", "ascending": False}],
        max_results=1,
    )
    return found[0] if found else None
