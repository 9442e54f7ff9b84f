"""The ``mlflow`` section: where runs are recorded. No stage's output depends on it."""

from __future__ import annotations

from typing import ClassVar, Optional

from pydantic import Field, field_validator

from imgpipe.params.base import SectionConfig


def _mlflow_rule(check: str, name: str) -> str:
    """Apply MLflow's own check of a name now, so a bad one stops train before it trains
    (MLflow itself would refuse it only when the model is registered, after the last epoch)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils import validation

    rule = getattr(validation, check, None)  # a private helper of MLflow's: absent in another version, skip
    try:
        if rule is not None:
            rule(name)
    except MlflowException as exc:
        raise ValueError(exc.message) from None
    return name


class MlflowConfig(SectionConfig):
    section: ClassVar[str] = "mlflow"

    experiment_name: str = Field(min_length=1)
    # Register each trained model under this name in the MLflow model registry; null = don't.
    registered_model: Optional[str] = None

    @field_validator("experiment_name")
    @classmethod
    def _valid_experiment(cls, name: str) -> str:
        return _mlflow_rule("_validate_experiment_name", name)

    @field_validator("registered_model")
    @classmethod
    def _valid_model_name(cls, name: Optional[str]) -> Optional[str]:
        return name if name is None else _mlflow_rule("_validate_model_name", name)
