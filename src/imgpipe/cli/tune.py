"""``imgpipe tune``: an Optuna study in which every trial is a DVC experiment."""

from __future__ import annotations

import argparse

from imgpipe.cli._project import project_root
from imgpipe.errors import ImgpipeError


def add_parser(commands) -> argparse.ArgumentParser:
    tune = commands.add_parser(
        "tune",
        help="search settings with Optuna; every trial is a DVC experiment",
        description="Run an Optuna study over the search space in params.yaml's tune "
        "section (or tune.yaml): each trial is `dvc exp run --temp -n tune-<study>-<n> -S ...`, "
        "scored by tune.metric from its metrics.json, logged to MLflow under one parent run "
        "for the study, and stopped early when clearly behind. Keep the best with "
        "`dvc exp apply`.",
    )
    tune.add_argument("--trials", type=int, help="trials to run now (default: tune.trials)")
    tune.add_argument("--timeout", type=float, help="seconds after which no new trial starts (default: tune.timeout)")
    tune.add_argument("--resume", action="store_true", help="continue the study (it must exist)")
    tune.add_argument("--study", help="the study's name (default: tune.study); trials are named tune-<study>-<n>")
    tune.add_argument(
        "--storage", help="an Optuna storage URL (default: $IMGPIPE_TUNE_STORAGE, else optuna.db beside mlflow.db)"
    )
    return tune


def run(args: argparse.Namespace) -> int:
    from imgpipe.tune.study import TuneRequest, tune

    for flag, value in (("--trials", args.trials), ("--timeout", args.timeout)):
        if value is not None and value <= 0:
            raise ImgpipeError(f"{flag} must be above 0 (got {value})")
    tune(project_root(), TuneRequest(args.trials, args.timeout, args.resume, args.storage, args.study))
    return 0
