"""Where a study is kept: the MLflow store's neighbour, so whoever sees the runs sees the study.

- ``--storage`` or ``IMGPIPE_TUNE_STORAGE`` when given (any Optuna storage URL);
- ``sqlite:///optuna.db`` beside ``mlflow.db`` when MLflow uses its local SQLite file;
- with a tracking server, its PostgreSQL: ``imgpipe server`` creates the database
  ``<database>_optuna`` and prints the ``IMGPIPE_TUNE_STORAGE`` line for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from imgpipe.errors import ImgpipeError
from imgpipe.tracking.store import hide_password, store_root, tracking_uri

ENV = "IMGPIPE_TUNE_STORAGE"


def study_storage(root: Path, explicit: str | None = None) -> str:
    """The Optuna storage URL for this project's studies."""
    if chosen := explicit or os.environ.get(ENV):
        return chosen
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):
        return f"sqlite:///{(store_root(root) / 'optuna.db').resolve().as_posix()}"
    raise ImgpipeError(
        f"MLflow records runs at {hide_password(uri)}, and imgpipe tune cannot tell which database beside it should "
        f"hold the study: set {ENV} (or --storage) to an Optuna storage URL, e.g. the team PostgreSQL "
        "database that `imgpipe server` creates, postgresql+psycopg://mlflow:PASSWORD@HOST:5432/mlflow_optuna."
    )
