"""Where files go inside an MLflow run, named once for the stages that log them and the
report that reads them back."""

from __future__ import annotations

from pathlib import Path

REPORTS = "reports"  # what the data stages and train wrote about the data and the training
EVALUATION = "evaluation"  # evaluate's metrics, tables and pictures


def log_files(paths: list[Path], folder: str) -> None:
    """Attach each existing file to the active run under ``folder``."""
    import mlflow

    for path in paths:
        if Path(path).is_file():
            mlflow.log_artifact(str(path), artifact_path=folder)


def artifact_path(file: Path, folder: str) -> str:
    """Where ``file``, logged under ``folder``, sits in the run's artifacts."""
    return f"{folder}/{Path(file).name}"
