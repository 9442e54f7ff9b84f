"""``imgpipe promote``: the registered model's champion changes only for a better model."""

from __future__ import annotations

import sys
from pathlib import Path

from imgpipe.errors import ImgpipeError
from imgpipe.paths import Paths


def run_promote(root: Path, name: str | None, version: str | None, run: str | None, force: bool) -> int:
    import mlflow

    from imgpipe.evaluate.registry import CHAMPION, NotPromoted, promote
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
    try:
        done = promote(name, version, run, force)
    except NotPromoted as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 1
    if not done.changed:
        print(f"promote: {name} version {done.version} is the {CHAMPION} already")
        return 0
    was = f"; it replaces version {done.replaced.version}" if done.replaced is not None else " (the first)"
    print(f"promote: {name} version {done.version} (val balanced accuracy {done.score:.4f}) is the {CHAMPION}{was}. "
          f"Serve or predict with models:/{name}@{CHAMPION}")
    return 0
