"""The trained model in MLflow: logged with a signature, an example and the imgpipe spec."""

from __future__ import annotations

from typing import Any


def log_model(model: Any, example: Any, spec: dict[str, Any], registered_model: str | None = None, name: str = "model",
              decision: dict[str, Any] | None = None) -> None:
    """Log a torch model with a signature, an input example and the imgpipe spec.

    MLflow exports torch models with torch.export, which fixes any dimension that the
    example shows with size 1; an example of two images keeps the batch size free. The
    spec (classes, preprocessing) rides in the model's metadata, so ``imgpipe predict
    models:/<name>/<version>`` needs nothing else; so does the decision evaluate fitted,
    when ``model`` has it inside. ``registered_model`` also registers it.
    """
    import mlflow
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    example = np.ascontiguousarray(example[:2])
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    signature = infer_signature(example, output)
    # Stated rather than inferred: MLflow infers them by loading the model in a fresh
    # process (8 s a training on 2 cores), and the exported program needs only these.
    requirements = [*mlflow.pytorch.get_default_pip_requirements(), f"numpy=={np.__version__}"]
    mlflow.pytorch.log_model(model, name=name, signature=signature, input_example=example, pip_requirements=requirements,
                             metadata={"imgpipe_spec": spec, **({"imgpipe_decision": decision} if decision else {})},
                             registered_model_name=registered_model)
