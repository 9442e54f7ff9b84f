"""``imgpipe promote``: the registered model's champion changes only for a better model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imgpipe.errors import ImgpipeError
from imgpipe.paths import Paths

if TYPE_CHECKING:
    from imgpipe.evaluate.registry import Promotion


def promote_model(root: Path, name: str | None, version: str | None, run: str | None, force: bool) -> Promotion:
    """Make the version (default: the one trained for models/ of ``root``) the champion if it
    beats the champion; return the ``Promotion``. Raises ``NotPromoted`` when it does not."""
    import mlflow

    from imgpipe.evaluate.registry import promote
    from imgpipe.params.tracking import MlflowConfig
    from imgpipe.store.model_folder import read_run
    from imgpipe.tracking.store import check_reachable, tracking_uri

    paths = Paths(root)
    name = name or MlflowConfig.load(paths.params).registered_model
    if not name:
        raise ImgpipeError("no registered model to promote: set mlflow.registered_model in params.yaml (and run "
                           "`dvc repro`, which registers the model), or pass --name.")
    if version is None and run is None:
        run = read_run(paths.model_dir)["run_id"]
    uri = tracking_uri(root)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    return promote(name, version, run, force)
