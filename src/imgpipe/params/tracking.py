"""The ``mlflow`` section: where runs are recorded. No stage's output depends on it."""

from __future__ import annotations

from typing import ClassVar, Optional

from pydantic import Field

from imgpipe.params.base import SectionConfig


class MlflowConfig(SectionConfig):
    section: ClassVar[str] = "mlflow"

    experiment_name: str = Field(min_length=1)
    # Register each trained model under this name in the MLflow model registry; null = don't.
    registered_model: Optional[str] = None
