"""``imgpipe promote``: make a registered model the champion, if it beats the champion.

The rule (beat the champion on the same val data) lives beside registration, in
``evaluate/registry.py``, so what the registry's tags mean is written in one module.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imgpipe.cli._project import project_root
from imgpipe.errors import ImgpipeError
from imgpipe.paths import Paths

if TYPE_CHECKING:
    from imgpipe.evaluate.registry import Promotion


def add_parser(commands) -> argparse.ArgumentParser:
    promote = commands.add_parser(
        "promote",
        help="make a registered model the champion, if it beats the champion",
        description="Point the registered model's `champion` alias at a version (default: "
        "the one evaluate registered for models/ of this project) only when its val "
        "balanced accuracy beats the champion's on the same val data. Serve "
        "models:/<name>@champion. Exits 1, changing nothing, when it does not beat it.",
    )
    promote.add_argument("--version", help="the version to promote (default: the one trained in the run of models/)")
    promote.add_argument("--run", help="the MLflow run that trained the model to promote (default: models/'s)")
    promote.add_argument("--name", help="the registered model (default: params.yaml's mlflow.registered_model)")
    promote.add_argument(
        "--force",
        action="store_true",
        help="replace the champion even when it is not beaten or was validated on other data",
    )
    return promote


def run(args: argparse.Namespace) -> int:
    from imgpipe.evaluate.registry import CHAMPION, NotPromoted

    try:
        done = promote_model(project_root(), args.name, args.version, args.run, args.force)
    except NotPromoted as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 1
    if not done.changed:
        print(f"promote: {done.name} version {done.version} is the {CHAMPION} already")
        return 0
    was = f"; it replaces version {done.replaced.version}" if done.replaced is not None else " (the first)"
    print(
        f"promote: {done.name} version {done.version} (val balanced accuracy {done.score:.4f}) is the "
        f"{CHAMPION}{was}. Serve or predict with models:/{done.name}@{CHAMPION}"
    )
    return 0


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
        raise ImgpipeError(
            "no registered model to promote: set mlflow.registered_model in params.yaml (and run "
            "`dvc repro`, which registers the model), or pass --name."
        )
    if version is None and run is None:
        run = read_run(paths.model_dir)["run_id"]
    uri = tracking_uri(root)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    return promote(name, version, run, force)
