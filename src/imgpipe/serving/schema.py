"""The served model's request and answer, as its MLflow signature declares them.

A request is a table with one row per image and one of two columns filled:

- ``image``: the encoded file (JPEG, PNG, ...; bytes, or base64 text), decoded by the served
  model exactly as ingest decoded the training images;
- ``pixels``: an image already decoded, uint8 height x width x channels at the model's size.

An answer has a row per request row: ``class``, its ``probability``, ``probabilities`` of
every class, and ``error`` (empty, or why the row could not be classified).
"""

from __future__ import annotations

from typing import Any

IMAGE, PIXELS = "image", "pixels"
ANSWER_COLUMNS = ["class", "probability", "probabilities", "error"]


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Map, Schema

    # Both columns optional: a row brings a file or pixels, and the model says which it lacks.
    # Pixels are Any, not Array(Array(Array(long))): MLflow checks a nested array value by
    # value, 150 s for 64 images of 224 x 224 x 3; the model checks their shape and range itself.
    # The image is Any, not binary: MLflow fails a whole request on one row's bad base64 or
    # empty image, and passes the `inputs` and `instances` forms' base64 on undecoded; the
    # model decodes base64 itself and answers a bad row in that row.
    request = Schema([ColSpec(AnyType(), IMAGE, required=False), ColSpec(AnyType(), PIXELS, required=False)])
    answer = Schema(
        [
            ColSpec(DataType.string, "class"),
            ColSpec(DataType.double, "probability"),
            ColSpec(Map(DataType.double), "probabilities"),
            ColSpec(DataType.string, "error"),
        ]
    )
    return ModelSignature(request, answer)


def is_served_signature(signature: Any) -> bool:
    """Whether a logged model takes this request (else it is an older imgpipe model:
    uint8 arrays in, logits out)."""
    return signature is not None and not signature.inputs.is_tensor_spec() and IMAGE in signature.inputs.input_names()
