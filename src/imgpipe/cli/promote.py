"""``imgpipe promote``: make a registered model the champion, if it beats the champion."""

from __future__ import annotations

import argparse
import sys

from imgpipe.cli._project import project_root


def add_parser(commands) -> argparse.ArgumentParser:
    promote = commands.add_parser("promote", help="make a registered model the champion, if it beats the champion",
                                  description="Point the registered model's `champion` alias at a version (default: "
                                  "the one evaluate registered for models/ of this project) only when its val "
                                  "balanced accuracy beats the champion's on the same val data. Serve "
                                  "models:/<name>@champion. Exits 1, changing nothing, when it does not beat it.")
    promote.add_argument("--version", help="the version to promote (default: the one trained in the run of models/)")
    promote.add_argument("--run", help="the MLflow run that trained the model to promote (default: models/'s)")
    promote.add_argument("--name", help="the registered model (default: params.yaml's mlflow.registered_model)")
    promote.add_argument("--force", action="store_true", help="replace the champion even when it is not beaten or "
                         "was validated on other data")
    return promote


def run(args: argparse.Namespace) -> int:
    from imgpipe.evaluate.registry import CHAMPION, NotPromoted
    from imgpipe.serving.promote import promote_model

    try:
        done = promote_model(project_root(), args.name, args.version, args.run, args.force)
    except NotPromoted as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 1
    if not done.changed:
        print(f"promote: {done.name} version {done.version} is the {CHAMPION} already")
        return 0
    was = f"; it replaces version {done.replaced.version}" if done.replaced is not None else " (the first)"
    print(f"promote: {done.name} version {done.version} (val balanced accuracy {done.score:.4f}) is the "
          f"{CHAMPION}{was}. Serve or predict with models:/{done.name}@{CHAMPION}")
    return 0
